"""A BERT masked-LM read out of a TorchScript graph by the role each constant plays in it, not by its name.

The module is frozen first (`torch.jit.freeze`; a module eland already froze stays as it is): every weight becomes
a graph constant and every wrapper, prefix and submodule call is inlined away, so a frozen and an unfrozen trace
of the same model read the same. The reader then follows the data flow from the inputs, in the order Elasticsearch
passes them (input_ids, attention_mask, token_type_ids, position_ids; two to four of them):

- embeddings: the three `embedding` lookups, told apart by what indexes them: input_ids → word, token_type_ids or
  a constant of zeros → token type, position_ids or a constant 0…n−1 → position; then a LayerNorm of their sum;
- each encoder layer: three dense projections of the hidden state, named query, key and value by where they meet
  in the attention (the arguments of `scaled_dot_product_attention`, or the two sides of the score `matmul` and
  the right side of the probability `matmul`), the attention output dense, a LayerNorm, the feed-forward dense,
  GELU, dense and a LayerNorm;
- the masked-LM head: dense, GELU, LayerNorm and the vocabulary projection (its bias in the linear or added
  after it); a projection that is the word-embedding constant is a tied decoder.

A dense is an `aten::linear` with a constant weight, or an `aten::matmul` by a constant followed by the addition
of a constant bias. The number of attention heads comes from the reshape of the query into heads. Whatever the
reader cannot see (the attention scale, the mask handling, the pooling after the projection) is checked by running
the TorchScript model itself against the converted one."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from elser_server.model.checkpoint import BertConfig, CheckpointError
from elser_server.model.torchscript import ES_INPUT_NAMES as ES_INPUTS
from elser_server.model.torchscript import first_line

# Ops that only reshape, retype, copy or (in eval mode) pass a tensor through.
TRANSPARENT = frozenset(
    {
        "aten::view",
        "aten::reshape",
        "aten::transpose",
        "aten::permute",
        "aten::contiguous",
        "aten::to",
        "aten::type_as",
        "aten::clone",
        "aten::detach",
        "aten::dropout",
        "aten::unsqueeze",
        "aten::squeeze",
        "aten::expand",
        "aten::expand_as",
        "aten::slice",
        "aten::flatten",
    }
)
# Scaling by a constant on the way from a projection into the attention (some models scale the query).
_SCALE = frozenset({"aten::mul", "aten::div"})
_ATTENTION = frozenset({"aten::scaled_dot_product_attention", "aten::matmul", "aten::bmm"})
_GELU = frozenset({"aten::gelu", "aten::erf"})
# What SPLADE max pooling after the vocabulary projection is made of, whatever the spelling.
_POOL_MAX = frozenset({"aten::max", "aten::amax"})


@dataclass(frozen=True)
class _Dense:
    node: Any
    input: Any  # torch Value
    output: Any  # after the bias addition, when the bias is a separate add
    weight: np.ndarray  # [out, in], as torch.nn.Linear and Hugging Face store it
    bias: np.ndarray
    weight_id: int  # the weight constant's value id (a tied decoder reuses the word embeddings')

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.weight.shape
        return int(rows), int(cols)


@dataclass(frozen=True)
class _LayerNorm:
    node: Any
    input: Any
    output: Any
    weight: np.ndarray
    bias: np.ndarray
    eps: float


@dataclass(frozen=True)
class GraphBert:
    """A BERT masked-LM's weights under Hugging Face BertForMaskedLM names, and what the graph says about it."""

    config: BertConfig
    weights: dict[str, np.ndarray]
    tied_decoder: bool
    num_inputs: int
    heads_from_graph: bool  # False: the graph did not show the head count; hidden size / 64 was assumed
    # Ops between the vocabulary projection and the output, for telling pooled from per-position output.
    tail_ops: frozenset[str] = field(default_factory=frozenset)

    @property
    def pooled_in_graph(self) -> bool:
        return bool(self.tail_ops & _POOL_MAX)


def _not_bert(found: str, expected: str) -> CheckpointError:
    return CheckpointError(f"the TorchScript graph is not a BERT masked-LM: {found}; expected {expected}")


def freeze(module: Any) -> Any:
    """The module with every weight a graph constant and every submodule inlined."""
    module.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frozen = torch.jit.freeze(module)
    except (RuntimeError, AttributeError) as e:
        raise CheckpointError(
            f"the TorchScript module cannot be frozen to read its graph ({first_line(e)}); expected a module "
            "whose forward torch.jit.freeze accepts"
        ) from e
    torch._C._jit_pass_inline(frozen.graph)
    return frozen


def read_bert(module: Any, num_heads: int | None = None) -> GraphBert:
    """Read a BERT masked-LM out of a loaded TorchScript module (frozen or not)."""
    return _Reader(freeze(module).graph).read(num_heads)


class _Reader:
    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.nodes = list(graph.nodes())
        self.inputs = list(graph.inputs())[1:]  # the first is the module itself
        self.word_weight_id = -1  # the word-embedding constant (a tied decoder projects with it too)
        self.word_output: Any = None

    # --- values ---------------------------------------------------------------------------------------------

    def const(self, value: Any) -> np.ndarray | None:
        node = value.node()
        if node.kind() != "prim::Constant" or not isinstance(value.type(), torch._C.TensorType):
            return None
        tensor = value.toIValue()
        return None if tensor is None else tensor.detach().cpu().float().numpy()

    @staticmethod
    def scalar(value: Any) -> Any:
        node = value.node()
        return value.toIValue() if node.kind() == "prim::Constant" else None

    def int_list(self, value: Any) -> list[Any] | None:
        node = value.node()
        if node.kind() == "prim::ListConstruct":
            return [self.scalar(x) for x in node.inputs()]
        constant = self.scalar(value)
        return list(constant) if isinstance(constant, list | tuple) else None

    @staticmethod
    def strip(value: Any) -> Any:
        """Back through ops that only reshape or retype."""
        while value.node().kind() in TRANSPARENT:
            value = value.node().inputsAt(0)
        return value

    def input_index(self, value: Any) -> int | None:
        target = id_of(value)
        return next((i for i, v in enumerate(self.inputs) if id_of(v) == target), None)

    def depends(self, value: Any, on: Any) -> bool:
        """Whether `value` is computed from `on`."""
        target, seen, todo = id_of(on), set(), [value]
        while todo:
            v = todo.pop()
            if id_of(v) == target:
                return True
            if id_of(v) in seen:
                continue
            seen.add(id_of(v))
            todo.extend(v.node().inputs())
        return False

    def nodes_between(self, start: Any, stop_node: Any) -> list[Any]:
        """The nodes computed from `start`, up to (not including) `stop_node`."""
        found: dict[int, Any] = {}
        stop = None if stop_node is None else node_key(stop_node)
        todo = [start]
        while todo:
            v = todo.pop()
            for use in v.uses():
                user = use.user
                key = node_key(user)
                if key == stop or key in found or user.kind() == "prim::Return":
                    continue
                found[key] = user
                todo.extend(user.outputs())
        return list(found.values())

    # --- ops ------------------------------------------------------------------------------------------------

    def dense(self, node: Any) -> _Dense | None:
        kind = node.kind()
        if kind == "aten::linear":
            weight = self.const(node.inputsAt(1))
            if weight is None or weight.ndim != 2:
                return None
            bias = self.const(node.inputsAt(2))
        elif kind == "aten::matmul":
            transposed = self.const(node.inputsAt(1))
            if transposed is None or transposed.ndim != 2:
                return None
            weight, bias = np.ascontiguousarray(transposed.T), None
        else:
            return None
        out_features = weight.shape[0]
        output = node.output()
        uses = output.uses()
        # A bias added after the projection (a bias-free linear, or a matmul) belongs to the dense.
        if len(uses) == 1 and uses[0].user.kind() in ("aten::add", "aten::add_"):
            add = uses[0].user
            other = add.inputsAt(1 - uses[0].offset) if uses[0].offset < 2 else None
            extra = None if other is None else self.const(other)
            if extra is not None and extra.shape == (out_features,):
                bias = extra if bias is None else bias + extra
                output = add.output()
        if bias is None:
            bias = np.zeros(out_features, dtype=np.float32)
        return _Dense(node, node.inputsAt(0), output, weight, bias, id_of(node.inputsAt(1)))

    def layer_norm(self, node: Any) -> _LayerNorm | None:
        if node.kind() != "aten::layer_norm":
            return None
        weight, bias = self.const(node.inputsAt(2)), self.const(node.inputsAt(3))
        eps = self.scalar(node.inputsAt(4))
        shape = self.int_list(node.inputsAt(1))
        width = shape[-1] if shape and isinstance(shape[-1], int) else None
        if width is None and weight is not None:
            width = weight.shape[0]
        if width is None or not isinstance(eps, float):
            return None
        weight = np.ones(width, np.float32) if weight is None else weight
        bias = np.zeros(width, np.float32) if bias is None else bias
        return _LayerNorm(node, node.inputsAt(0), node.output(), weight, bias, eps)

    # --- the model ------------------------------------------------------------------------------------------

    def read(self, num_heads: int | None) -> GraphBert:
        if not 2 <= len(self.inputs) <= 4:
            raise _not_bert(
                f"forward takes {len(self.inputs)} input(s)",
                f"2 to 4 in Elasticsearch's order ({', '.join(ES_INPUTS)})",
            )
        embeddings = self.embeddings()
        ops: list[_Dense | _LayerNorm] = []
        for node in self.nodes:
            op = self.dense(node) or self.layer_norm(node)
            if op is not None:
                ops.append(op)
        counts = (
            f"{sum(isinstance(o, _Dense) for o in ops)} dense projections and "
            f"{sum(isinstance(o, _LayerNorm) for o in ops)} LayerNorms ({_sequence(ops)})"
        )
        weights: dict[str, np.ndarray] = dict(embeddings)
        word = embeddings["embeddings.word_embeddings.weight"]
        vocab_size, hidden = word.shape
        if (
            not ops
            or not isinstance(ops[0], _LayerNorm)
            or ops[0].weight.shape != (hidden,)
            or not self.depends(ops[0].input, self.word_output)
        ):
            raise _not_bert(
                f"{counts} after the embeddings",
                "a LayerNorm of the embeddings first",
            )
        self.put_layer_norm(weights, "embeddings", ops[0])
        hidden_state, i, layer = ops[0].output, 1, 0
        heads_seen: set[int] = set()
        while i + 2 < len(ops) and all(
            isinstance(o, _Dense) and id_of(self.strip(o.input)) == id_of(hidden_state)
            for o in ops[i : i + 3]
        ):
            projections = [o for o in ops[i : i + 3] if isinstance(o, _Dense)]
            block = ops[i + 3 : i + 8]
            shapes = (_Dense, _LayerNorm, _Dense, _Dense, _LayerNorm)
            if len(block) < 5 or not all(isinstance(o, t) for o, t in zip(block, shapes, strict=True)):
                raise _not_bert(
                    f"encoder layer {layer} continues with {_sequence(block) or 'nothing'} after its three "
                    "attention projections",
                    "attention output dense, LayerNorm, intermediate dense, output dense, LayerNorm "
                    f"(found {counts})",
                )
            out, ln1, inter, ffn_out, ln2 = block
            assert isinstance(out, _Dense) and isinstance(inter, _Dense) and isinstance(ffn_out, _Dense)
            assert isinstance(ln1, _LayerNorm) and isinstance(ln2, _LayerNorm)
            query, key, value = self.attention_roles(projections, layer)
            heads = self.heads(query, hidden)
            if heads is not None:
                heads_seen.add(heads)
            self.check_flow(layer, out, ln1, inter, ffn_out, ln2, hidden_state, value)
            p = f"encoder.layer.{layer}"
            for name, dense in (
                ("attention.self.query", query),
                ("attention.self.key", key),
                ("attention.self.value", value),
                ("attention.output.dense", out),
                ("intermediate.dense", inter),
                ("output.dense", ffn_out),
            ):
                self.put_dense(weights, f"{p}.{name}", dense, hidden if name != "output.dense" else None)
            self.put_layer_norm(weights, f"{p}.attention.output", ln1)
            self.put_layer_norm(weights, f"{p}.output", ln2)
            hidden_state, i, layer = ln2.output, i + 8, layer + 1
        if layer == 0:
            raise _not_bert(
                f"no encoder layer: {counts}",
                "after the embedding LayerNorm, three dense projections of its output (query, key, value)",
            )
        head = ops[i:]
        if (
            len(head) != 3
            or not isinstance(head[0], _Dense)
            or not isinstance(head[1], _LayerNorm)
            or not isinstance(head[2], _Dense)
        ):
            raise _not_bert(
                f"{layer} encoder layer(s), then {_sequence(head) or 'nothing'}",
                "the masked-LM head after the last layer: dense, LayerNorm, vocabulary projection",
            )
        transform, transform_ln, decoder = head
        assert isinstance(transform, _Dense) and isinstance(transform_ln, _LayerNorm)
        assert isinstance(decoder, _Dense)
        if id_of(self.strip(transform.input)) != id_of(hidden_state) or transform.shape != (hidden, hidden):
            raise _not_bert(
                f"a {transform.shape[0]}×{transform.shape[1]} dense after the last encoder layer",
                f"the masked-LM head's {hidden}×{hidden} transform of the last hidden state",
            )
        self.require_gelu(transform.output, transform_ln.node, "the masked-LM head")
        if id_of(self.strip(decoder.input)) != id_of(transform_ln.output):
            raise _not_bert("a vocabulary projection that does not read the head's LayerNorm", "it to")
        if decoder.weight.shape[1] != hidden:
            raise _not_bert(
                f"a vocabulary projection of shape {list(decoder.weight.shape)}",
                f"[vocabulary, {hidden}]",
            )
        if decoder.weight.shape[0] != vocab_size:
            raise CheckpointError(
                f"the vocabulary projection has {decoder.weight.shape[0]} rows but the word embeddings "
                f"{vocab_size}: expected one row per vocabulary token in both"
            )
        self.put_dense(weights, "cls.predictions.transform.dense", transform, hidden)
        self.put_layer_norm(weights, "cls.predictions.transform", transform_ln)
        tied = decoder.weight_id == self.word_weight_id or np.array_equal(decoder.weight, word)
        if not tied:
            weights["cls.predictions.decoder.weight"] = decoder.weight
        weights["cls.predictions.bias"] = decoder.bias
        epsilons = {o.eps for o in ops if isinstance(o, _LayerNorm)}
        if len(epsilons) != 1:
            raise _not_bert(f"LayerNorms with different epsilons {sorted(epsilons)}", "one epsilon")
        if len(heads_seen) > 1:
            raise _not_bert(f"layers with {sorted(heads_seen)} attention heads", "one head count")
        if num_heads is None and heads_seen:
            num_heads = heads_seen.pop()
        from_graph = num_heads is not None
        heads = num_heads or max(1, hidden // 64)
        if hidden % heads:
            raise _not_bert(
                f"{heads} attention heads for hidden size {hidden}", "a divisor of the hidden size"
            )
        config = BertConfig(
            vocab_size=int(vocab_size),
            hidden_size=int(hidden),
            num_layers=layer,
            num_heads=heads,
            intermediate_size=int(weights["encoder.layer.0.intermediate.dense.weight"].shape[0]),
            max_position_embeddings=int(weights["embeddings.position_embeddings.weight"].shape[0]),
            type_vocab_size=int(weights["embeddings.token_type_embeddings.weight"].shape[0]),
            layer_norm_eps=float(epsilons.pop()),
        )
        return GraphBert(
            config=config,
            weights=weights,
            tied_decoder=tied,
            num_inputs=len(self.inputs),
            heads_from_graph=from_graph,
            tail_ops=frozenset(n.kind() for n in self.nodes_between(decoder.output, None)),
        )

    def embeddings(self) -> dict[str, np.ndarray]:
        lookups = [n for n in self.nodes if n.kind() == "aten::embedding"]
        roles: dict[str, np.ndarray] = {}
        found = []
        for node in lookups:
            table = self.const(node.inputsAt(0))
            indices = self.strip(node.inputsAt(1))
            index = self.input_index(indices)
            role = None
            if index == 0:
                role = "word_embeddings"
            elif index == 2:
                role = "token_type_embeddings"
            elif index == 3:
                role = "position_embeddings"
            elif index is None and (constant := self.const(indices)) is not None:
                # A wrapper that does not take the input uses the model's buffer: zeros or 0…n−1.
                flat = constant.reshape(-1)
                if not flat.any():
                    role = "token_type_embeddings"
                elif np.array_equal(flat, np.arange(flat.size)):
                    role = "position_embeddings"
            found.append(ES_INPUTS[index] if index is not None else "a computed index")
            if role is None or table is None or table.ndim != 2 or role in roles:
                raise _not_bert(
                    f"embedding lookups indexed by {', '.join(found)}",
                    "three: by input_ids (word), token_type_ids or zeros (token type), position_ids or 0…n−1 "
                    "(position)",
                )
            roles[role] = table
            if role == "word_embeddings":
                self.word_weight_id = id_of(node.inputsAt(0))
                self.word_output = node.output()
        if len(roles) != 3:
            raise _not_bert(
                f"{len(lookups)} embedding lookup(s){' indexed by ' + ', '.join(found) if found else ''}",
                "three: word (indexed by input_ids), token type and position",
            )
        widths = {t.shape[1] for t in roles.values()}
        if len(widths) != 1:
            raise _not_bert(f"embedding tables of widths {sorted(widths)}", "one hidden size")
        return {f"embeddings.{name}.weight": table for name, table in roles.items()}

    def attention_roles(self, projections: list[_Dense], layer: int) -> tuple[_Dense, _Dense, _Dense]:
        """(query, key, value) by where each projection enters the attention."""
        entries = {id(d): list(self.attention_entries(d.output)) for d in projections}
        described = "; ".join(
            f"projection {n} → {', '.join(f'{u.kind()}[{k}]' for u, k in entries[id(d)]) or 'no attention op'}"
            for n, d in enumerate(projections)
        )
        error = _not_bert(
            f"encoder layer {layer}'s three projections of the hidden state enter {described}",
            "scaled_dot_product_attention(query, key, value), or matmul(query, key) → softmax → "
            "matmul(probabilities, value)",
        )
        by_role: dict[str, _Dense] = {}
        for d in projections:
            spots = entries[id(d)]
            if len(spots) != 1:
                raise error
            user, offset = spots[0]
            if user.kind() == "aten::scaled_dot_product_attention" and offset < 3:
                role = ("query", "key", "value")[offset]
            elif user.kind() in ("aten::matmul", "aten::bmm") and offset < 2:
                other = user.inputsAt(1 - offset)
                from_projection = any(
                    p is not d and self.reaches_through_reshapes(p.output, other) for p in projections
                )
                if from_projection:
                    role = ("query", "key")[offset]
                elif offset == 1 and "aten::softmax" in self.ancestor_kinds(other):
                    role = "value"
                else:
                    raise error
            else:
                raise error
            if role in by_role:
                raise error
            by_role[role] = d
        return by_role["query"], by_role["key"], by_role["value"]

    def attention_entries(self, value: Any) -> Iterator[tuple[Any, int]]:
        """(node, argument position) where `value` enters an attention op, through reshapes and scaling."""
        todo: list[Any] = [value]
        seen: set[int] = set()
        while todo:
            v = todo.pop()
            for use in v.uses():
                user = use.user
                if node_key(user) in seen:
                    continue
                if use.offset == 0 and self.passes_through(user):
                    seen.add(node_key(user))
                    todo.append(user.output())
                elif user.kind() in _ATTENTION:
                    yield user, use.offset

    def passes_through(self, node: Any) -> bool:
        """A reshape, retype or scaling by a constant: the role of its first input carries over."""
        kind = node.kind()
        return kind in TRANSPARENT or (kind in _SCALE and self.scalar(node.inputsAt(1)) is not None)

    def reaches_through_reshapes(self, source: Any, value: Any) -> bool:
        target = id_of(source)
        while id_of(value) != target:
            if not self.passes_through(value.node()):
                return False
            value = value.node().inputsAt(0)
        return True

    def ancestor_kinds(self, value: Any, limit: int = 64) -> set[str]:
        kinds: set[str] = set()
        seen: set[int] = set()
        todo = [value]
        while todo and len(seen) < limit:
            v = todo.pop()
            node = v.node()
            if node_key(node) in seen:
                continue
            seen.add(node_key(node))
            kinds.add(node.kind())
            todo.extend(node.inputs())
        return kinds

    def heads(self, query: _Dense, hidden: int) -> int | None:
        """The head count from the reshape of the query's output into [..., heads, head_dim]."""
        todo = [query.output]
        while todo:
            v = todo.pop()
            for use in v.uses():
                user = use.user
                if user.kind() in ("aten::view", "aten::reshape") and use.offset == 0:
                    dims = self.int_list(user.inputsAt(1)) or []
                    head_dim = dims[-1] if len(dims) >= 3 else None
                    if isinstance(head_dim, int) and head_dim > 0 and hidden % head_dim == 0:
                        return hidden // head_dim
                if user.kind() in TRANSPARENT and use.offset == 0:
                    todo.append(user.output())
        return None

    def check_flow(
        self,
        layer: int,
        out: _Dense,
        ln1: _LayerNorm,
        inter: _Dense,
        ffn_out: _Dense,
        ln2: _LayerNorm,
        residual: Any,
        value: _Dense,
    ) -> None:
        where = f"encoder layer {layer}"
        if not self.depends(out.input, value.output):
            raise _not_bert(f"{where}'s attention output dense does not read the attention", "it to")
        if not (self.depends(ln1.input, out.output) and self.depends(ln1.input, residual)):
            raise _not_bert(
                f"{where}'s first LayerNorm is not applied to attention output + residual", "post-LN BERT"
            )
        if id_of(self.strip(inter.input)) != id_of(ln1.output):
            raise _not_bert(f"{where}'s intermediate dense does not read the first LayerNorm", "it to")
        self.require_gelu(inter.output, ffn_out.node, where)
        if not (self.depends(ln2.input, ffn_out.output) and self.depends(ln2.input, ln1.output)):
            raise _not_bert(
                f"{where}'s second LayerNorm is not applied to feed-forward output + residual", "post-LN BERT"
            )

    def require_gelu(self, start: Any, stop_node: Any, where: str) -> None:
        nodes = self.nodes_between(start, stop_node)
        kinds = {n.kind() for n in nodes}
        if not kinds & _GELU:
            raise _not_bert(
                f"{where} activates with {', '.join(sorted(kinds)) or 'nothing'}", "GELU (exact, erf)"
            )
        for node in nodes:
            approximate = self.scalar(node.inputsAt(1)) if node.kind() == "aten::gelu" else None
            if approximate not in (None, "none"):
                raise _not_bert(
                    f"{where} activates with GELU approximate={approximate!r}", "the exact (erf) GELU"
                )

    # --- weights --------------------------------------------------------------------------------------------

    @staticmethod
    def put_dense(weights: dict[str, np.ndarray], name: str, dense: _Dense, square: int | None) -> None:
        if square is not None and dense.shape[1] != square:
            raise _not_bert(f"{name} of shape {list(dense.weight.shape)}", f"[…, {square}]")
        weights[f"{name}.weight"] = dense.weight
        weights[f"{name}.bias"] = dense.bias

    @staticmethod
    def put_layer_norm(weights: dict[str, np.ndarray], prefix: str, ln: _LayerNorm) -> None:
        weights[f"{prefix}.LayerNorm.weight"] = ln.weight
        weights[f"{prefix}.LayerNorm.bias"] = ln.bias


def id_of(value: Any) -> int:
    return int(value.unique())


def node_key(node: Any) -> int:
    """A stable identity for a node: Python wrappers of one graph node are not always the same object."""
    return id_of(node.outputsAt(0)) if node.outputsSize() else -1


def _sequence(ops: Iterable[_Dense | _LayerNorm]) -> str:
    return " ".join("dense" if isinstance(o, _Dense) else "LayerNorm" for o in ops)
