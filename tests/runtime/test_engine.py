"""The offline engine: results in input order, identical to one text at a time on one session."""

from __future__ import annotations

import numpy as np
import pytest
from elser_server.model.package import ModelPackage
from elser_server.runtime.backends.onnxruntime import SpladeSession
from elser_server.runtime.engine import Engine
from elser_server.runtime.tokenizer import Tokenizer

TEXTS = [f"the dog {'and the cat ' * (i % 11)} water {i}" for i in range(60)]


@pytest.mark.parametrize(("allocations", "budget"), [(1, 64), (2, 256), (2, 4096)])
def test_engine_order_matches_one_by_one(tiny_package: ModelPackage, allocations: int, budget: int) -> None:
    single = SpladeSession(tiny_package)
    tok = Tokenizer.from_file(tiny_package.tokenizer_path)
    with Engine(tiny_package, allocations, 1, token_budget=budget, max_batch_size=8) as engine:
        seen: list[int] = []
        results = engine.embed(TEXTS, progress=seen.append)
    assert sum(seen) == len(TEXTS)
    for text, r in zip(TEXTS, results, strict=True):
        row = single.run([tok.encode_batch([text])[0].ids])[0]
        assert set(r.ids.tolist()) == set(np.flatnonzero(row > 0).tolist())
        np.testing.assert_allclose(r.weights, row[r.ids], atol=1e-5)
        assert not r.is_truncated and r.n_tokens == len(tok.encode_batch([text])[0])
