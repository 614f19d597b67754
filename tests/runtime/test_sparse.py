from __future__ import annotations

import numpy as np
from elser_server.runtime.sparse import sparsify


def test_positive_only_descending_ties_by_id() -> None:
    row = np.array([0.0, 0.5, -1.0, 2.0, 0.5, 0.0, 1e-9], dtype=np.float32)
    ids, weights = sparsify(row)
    assert ids.dtype == np.uint32 and weights.dtype == np.float32
    assert ids.tolist() == [3, 1, 4, 6]
    assert weights.tolist() == [2.0, 0.5, 0.5, np.float32(1e-9)]


def test_top_k_and_min_weight() -> None:
    row = np.array([0.1, 0.3, 0.2, 0.4], dtype=np.float32)
    assert sparsify(row, top_k=2)[0].tolist() == [3, 1]
    assert sparsify(row, min_weight=0.2)[0].tolist() == [3, 1, 2]
    assert sparsify(np.zeros(4, np.float32))[0].size == 0
