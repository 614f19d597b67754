"""onnxruntime sessions: padding per batch, session options, shared weights, warm-up and aborted runs."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from elser_server.model.package import ModelPackage
from elser_server.runtime.backends import RunCancelled, RunHandle
from elser_server.runtime.backends.onnxruntime import SharedWeights, SpladeSession
from elser_server.runtime.batching import plan_batches
from elser_server.runtime.tokenizer import Tokenizer

TEXTS = [f"the dog {'and the cat ' * (i % 11)} water {i}" for i in range(60)]


@pytest.fixture
def fed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[np.ndarray, np.ndarray]]:
    """What every onnxruntime run is fed (input ids, attention mask); the real run still happens."""
    calls: list[tuple[np.ndarray, np.ndarray]] = []
    run = ort.InferenceSession.run

    def spy(self: ort.InferenceSession, output_names: Any, feeds: dict[str, np.ndarray], *rest: Any) -> Any:
        calls.append((feeds["input_ids"].copy(), feeds["attention_mask"].copy()))
        return run(self, output_names, feeds, *rest)

    monkeypatch.setattr(ort.InferenceSession, "run", spy)
    return calls


def _check_padding(fed: list[tuple[np.ndarray, np.ndarray]], batch: list[np.ndarray]) -> None:
    """Each call is padded to its own longest row, with zero ids and a zero mask after each row's tokens; together the
    calls feed every input exactly once."""
    rows = []
    for input_ids, mask in fed:
        assert input_ids.shape == mask.shape and input_ids.dtype == mask.dtype == np.int64
        lengths = mask.sum(axis=1)
        assert input_ids.shape[1] == lengths.max(), "padded beyond this batch's longest input"
        for row, n in zip(input_ids, lengths, strict=True):
            assert (row[n:] == 0).all()
            rows.append(row[:n].tolist())
        np.testing.assert_array_equal(mask, np.arange(mask.shape[1]) < lengths[:, None])
    assert sorted(rows) == sorted(ids.tolist() for ids in batch)


def test_session_pads_to_batch_longest(
    tiny_package: ModelPackage, fed: list[tuple[np.ndarray, np.ndarray]]
) -> None:
    session = SpladeSession(tiny_package, num_threads=1)
    ids = [e.ids for e in Tokenizer.from_file(tiny_package.tokenizer_path).encode_batch(TEXTS[:5])]
    assert len({len(i) for i in ids}) == 5, "inputs of different lengths, so padding is exercised"
    out = session.run(ids)
    assert out.shape == (5, tiny_package.vocab_size) and out.dtype == np.float32
    assert len(fed) == 1
    _check_padding(fed, ids)
    fed.clear()
    assert session.run([]).shape == (0, tiny_package.vocab_size)
    assert not fed
    for budget in (16, 32):
        np.testing.assert_allclose(out, session.run_batched(ids, token_budget=budget), atol=1e-5)
        assert len(fed) == len(plan_batches([len(i) for i in ids], budget))
        _check_padding(fed, ids)
        if budget == 32:  # groups of two inputs of different lengths: the shorter one is padded
            assert any(len(set(mask.sum(axis=1).tolist())) > 1 for _, mask in fed)
        fed.clear()


@pytest.mark.parametrize("threads", [1, 3])
def test_session_options(tiny_package: ModelPackage, threads: int) -> None:
    for shared in (None, SharedWeights(tiny_package.model_path)):
        opts = SpladeSession(tiny_package, num_threads=threads, shared=shared).session_options
        assert opts.intra_op_num_threads == threads
        assert opts.inter_op_num_threads == 1
        assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
        assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if shared is None:
            with pytest.raises(RuntimeError, match="does not have configuration"):
                opts.get_session_config_entry("session.disable_prepacking")
        else:  # shared weights: pre-packing would make private copies of them
            assert opts.get_session_config_entry("session.disable_prepacking") == "1"


def test_shared_weights_give_same_results(tiny_package: ModelPackage) -> None:
    shared = SharedWeights(tiny_package.model_path)
    assert shared.values, "the embedding and vocabulary matrices should be shared"
    data = [p for p in shared.model_path.parent.iterdir() if p != shared.model_path]
    assert [p.stat().st_blocks for p in data] == [0]  # a sparse placeholder: sessions never read it
    ids = [np.array([2, 40, 50, 3], dtype=np.int64)]
    a = SpladeSession(tiny_package, shared=shared).run(ids)
    b = SpladeSession(tiny_package, shared=shared).run(ids)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, SpladeSession(tiny_package).run(ids), atol=1e-6)


def test_warm_up_and_terminate(tiny_package: ModelPackage) -> None:
    session = SpladeSession(tiny_package, num_threads=1)
    session.warm_up(1024)
    handle = RunHandle()
    handle.cancel()  # set before the call: the run never starts
    assert handle.cancelled
    with pytest.raises(RunCancelled):
        session.run([np.arange(2, 500, dtype=np.int64)] * 4, run_options=handle)
    # A fresh handle from another thread works too, and the session stays usable.
    other = RunHandle()
    t = threading.Thread(target=other.cancel)
    t.start()
    t.join()
    assert other.cancelled
    assert session.run([np.array([2, 3], dtype=np.int64)]).shape[0] == 1
