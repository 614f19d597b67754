from __future__ import annotations

import threading

import numpy as np
import pytest
from elser_server.model.package import ModelPackage
from elser_server.runtime.engine import Engine
from elser_server.runtime.session import RunHandle, SharedWeights, SpladeSession
from elser_server.runtime.tokenizer import Tokenizer

TEXTS = [f"the dog {'and the cat ' * (i % 11)} water {i}" for i in range(60)]


def test_session_pads_to_batch_longest(tiny_package: ModelPackage) -> None:
    session = SpladeSession(tiny_package, num_threads=1)
    ids = [e.ids for e in Tokenizer.from_file(tiny_package.tokenizer_path).encode_batch(TEXTS[:5])]
    out = session.run(ids)
    assert out.shape == (5, tiny_package.vocab_size) and out.dtype == np.float32
    assert session.run([]).shape == (0, tiny_package.vocab_size)
    np.testing.assert_allclose(out, session.run_batched(ids, token_budget=16), atol=1e-5)


def test_shared_weights_give_same_results(tiny_package: ModelPackage) -> None:
    shared = SharedWeights(tiny_package.model_path)
    assert shared.values, "the embedding and vocabulary matrices should be shared"
    ids = [np.array([2, 40, 50, 3], dtype=np.int64)]
    a = SpladeSession(tiny_package, shared=shared).run(ids)
    b = SpladeSession(tiny_package, shared=shared).run(ids)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, SpladeSession(tiny_package).run(ids), atol=1e-6)


def test_warm_up_and_terminate(tiny_package: ModelPackage) -> None:
    session = SpladeSession(tiny_package, num_threads=1)
    session.warm_up(1024)
    handle = RunHandle()
    handle.cancel()  # set before the call: onnxruntime aborts at its first check
    assert handle.cancelled
    with pytest.raises(Exception, match=r"(?i)terminat|exiting"):
        session.run([np.arange(2, 500, dtype=np.int64)] * 4, run_options=handle)
    # A fresh handle from another thread works too, and the session stays usable.
    other = RunHandle()
    t = threading.Thread(target=other.cancel)
    t.start()
    t.join()
    assert other.cancelled
    assert session.run([np.array([2, 3], dtype=np.int64)]).shape[0] == 1


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
