"""Helpers over SparseEmbedding messages."""

from __future__ import annotations

from typing import Any


def token_weights(embedding: Any) -> dict[str, float]:
    """`{token: weight}` in descending weight order, like ES's `embedding` object.

    Needs the tokens: call infer with `return_tokens=True`.
    """
    if len(embedding.tokens) != len(embedding.weights):
        raise ValueError("embedding has no token strings; request them with return_tokens=True")
    return dict(zip(embedding.tokens, embedding.weights, strict=True))


def id_weights(embedding: Any) -> dict[int, float]:
    """`{vocabulary id: weight}` in descending weight order."""
    return dict(zip(embedding.token_ids, embedding.weights, strict=True))
