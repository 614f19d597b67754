"""JSON text exactly as Elasticsearch prints it: compact (`{"a":1}`) or Jackson's pretty style (`"a" : 1`),
float32 weights in Java's `Float.toString` form, and a direct text builder for the inference hot path."""

from __future__ import annotations

import functools
import json
import math
import operator
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
from elser_server.core.errors import internal
from elser_server.core.types import SparseEmbedding

_string = functools.partial(json.dumps, ensure_ascii=False)


class RawNumber:
    """A JSON number already rendered (so float32 weights are never widened to float64 digits)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawNumber) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"RawNumber({self.text})"


def java_float(value: np.float32) -> str:
    """Java's Float.toString (JDK 19+: shortest digits that round-trip the float32): decimal notation for
    1e-3 <= |x| < 1e7, otherwise `d.dddE±n`. Non-finite values (never produced by the model) print as null
    so the body stays valid JSON."""
    magnitude = abs(float(value))
    if not math.isfinite(magnitude):
        return "null"
    if magnitude == 0.0 or 1e-3 <= magnitude < 1e7:
        return np.format_float_positional(value, unique=True, trim="0")
    mantissa, exponent = np.format_float_scientific(value, unique=True, trim="-").split("e")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}E{int(exponent)}"


def weights_text(weights: npt.NDArray[np.float32]) -> list[str]:
    """Each weight as Java's Float.toString writes it (java_float), the text ES renders weights with."""
    if weights.size and weights.min() >= 1e-3 and weights.max() < 1e6:
        # The common case, and faster: below 1e6 numpy's str() is the same shortest positional text.
        return list(map(str, weights))
    return [java_float(w) for w in weights]


# `"token":` texts with ES's `.` → `__` rewrite (dots would read as object paths in an index mapping). Tokens come
# from the model vocabulary, so the cache stays small; the bound only guards against unexpected vocabularies.
_KEYS: dict[str, str] = {}
_MAX_KEYS = 1 << 17


def _token_keys(tokens: tuple[str, ...]) -> Iterator[str]:
    missing = set(tokens).difference(_KEYS)
    if missing:
        if len(_KEYS) + len(missing) > _MAX_KEYS:
            _KEYS.clear()
            missing = set(tokens)
        for token in missing:
            _KEYS[token] = _string(token.replace(".", "__")) + ":"
    return map(_KEYS.__getitem__, tokens)  # C-level lookups: this runs once per weight


def _tokens(embedding: SparseEmbedding) -> tuple[str, ...]:
    if embedding.tokens is None:
        raise internal("the core returned an embedding without token strings")
    return embedding.tokens


def sparse_embedding_text(results: Sequence[SparseEmbedding]) -> str:
    """`{"sparse_embedding":[{"is_truncated":…,"embedding":{token:weight,…}},…]}` built as text directly:
    the core already sorted each row by descending weight, so no dict is ever materialised."""
    parts = ['{"sparse_embedding":[']
    for index, row in enumerate(results):
        if index:
            parts.append(",")
        parts.append(
            '{"is_truncated":true,"embedding":{'
            if row.is_truncated
            else '{"is_truncated":false,"embedding":{'
        )
        parts.append(",".join(map(operator.add, _token_keys(_tokens(row)), weights_text(row.weights))))
        parts.append("}}")
    parts.append("]}")
    return "".join(parts)


def sparse_embedding_tree(results: Sequence[SparseEmbedding]) -> dict[str, object]:
    """The same response as a tree (for filter_path and pretty printing); weights stay exact RawNumbers."""
    return {
        "sparse_embedding": [
            {
                "is_truncated": row.is_truncated,
                "embedding": {
                    t.replace(".", "__"): RawNumber(w)
                    for t, w in zip(_tokens(row), weights_text(row.weights), strict=True)
                },
            }
            for row in results
        ]
    }


def dumps(value: object, *, pretty: bool = False) -> str:
    out: list[str] = []
    if pretty:
        _pretty(value, out, "")
        out.append("\n")  # ES ends pretty bodies with a line feed
    else:
        _compact(value, out)
    return "".join(out)


def encode(text: str) -> bytes:
    # A lone surrogate can only sit inside a JSON string, where `\udXXX` is exactly its JSON escape.
    return text.encode("utf-8", "backslashreplace")


def _scalar(value: object) -> str:
    if isinstance(value, RawNumber):
        return value.text
    if isinstance(value, float) and not math.isfinite(value):
        return "null"
    return _string(value)


def _compact(value: object, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _compact(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _compact(item, out)
        out.append("]")
    else:
        out.append(_scalar(value))


def _pretty(value: object, out: list[str], indent: str) -> None:
    """Jackson's DefaultPrettyPrinter as ES configures it: two-space indent, `"key" : value`, arrays one
    element per line, empty containers as `{ }` and `[ ]`."""
    inner = indent + "  "
    if isinstance(value, dict):
        if not value:
            out.append("{ }")
            return
        out.append("{\n")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",\n")
            out.append(inner + _string(key) + " : ")
            _pretty(item, out, inner)
        out.append("\n" + indent + "}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[ ]")
            return
        out.append("[\n")
        for index, item in enumerate(value):
            if index:
                out.append(",\n")
            out.append(inner)
            _pretty(item, out, inner)
        out.append("\n" + indent + "]")
    else:
        out.append(_scalar(value))
