"""Dense [vocab] SPLADE rows → sparse (token id, weight) lists in ES's order."""

from __future__ import annotations

import numpy as np


def sparsify(
    row: np.ndarray, top_k: int | None = None, min_weight: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Keep weights > 0 (and ≥ min_weight), sorted by descending weight, ties by ascending id; at most top_k.
    Returns (ids uint32, weights float32)."""
    keep = row > 0
    if min_weight is not None:
        keep &= row >= min_weight
    ids = np.flatnonzero(keep)
    weights = row[ids]
    # lexsort sorts by its last key first: descending weight, then ascending id.
    order = np.lexsort((ids, -weights))
    if top_k is not None:
        order = order[:top_k]
    return ids[order].astype(np.uint32), weights[order].astype(np.float32)
