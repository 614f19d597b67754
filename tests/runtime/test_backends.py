"""Every backend behind the seam, on the tiny model: the same vectors as onnxruntime fp32 one text at a time, the
same batching, cancellation before and during a run, one set of weights for all sessions, int8 made at load."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from elser_server.model.package import ModelPackage
from elser_server.runtime.backends import (
    LoadedRuntime,
    RunCancelled,
    RunHandle,
    load_runtime,
)
from elser_server.runtime.backends.onnxruntime import SpladeSession, quantize_int8
from elser_server.runtime.layout import BACKENDS, CpuFeatures, Layout
from elser_server.runtime.tokenizer import Tokenizer

# Through the backend module, which keeps OpenVINO's telemetry from loading (see the no-fork test below).
ov = pytest.importorskip("elser_server.runtime.backends.openvino").ov

TEXTS = [f"the dog {'and the cat ' * (i % 7)} water {i}" for i in range(24)]
HANG_GUARD_S = 60.0  # only against hangs: nothing here asserts on timing


def runtime(
    package: ModelPackage, backend: str, precision: str = "fp32", processors: int = 2
) -> LoadedRuntime:
    return load_runtime(
        package.model_path,
        Layout(backend, precision),  # type: ignore[arg-type]
        max_sequence_length=package.max_sequence_length,
        processors=processors,
        share_weights=True,
    )


def ids_of(package: ModelPackage, texts: list[str]) -> list[np.ndarray]:
    return [e.ids for e in Tokenizer.from_file(package.tokenizer_path).encode_batch(texts)]


@pytest.fixture(scope="module")
def reference(tiny_package: ModelPackage) -> np.ndarray:
    session = SpladeSession(tiny_package)
    return np.stack([session.run([i])[0] for i in ids_of(tiny_package, TEXTS)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_fp32_batches_match_one_by_one_onnxruntime(
    tiny_package: ModelPackage, reference: np.ndarray, backend: str
) -> None:
    session = runtime(tiny_package, backend).new_session(2)
    assert session.layout == Layout(backend, "fp32") and session.num_threads == 2  # type: ignore[arg-type]
    assert session.vocab_size == tiny_package.vocab_size
    ids = ids_of(tiny_package, TEXTS)
    assert len({len(i) for i in ids}) > 3, "inputs of different lengths, so padding is exercised"
    session.warm_up(256, 8)
    np.testing.assert_allclose(session.run(ids), reference, atol=1e-5)
    np.testing.assert_allclose(
        session.run_batched(ids, token_budget=64, max_batch_size=4), reference, atol=1e-5
    )
    # Shapes growing and shrinking from call to call, with and without a handle (the server always passes one).
    for i in sorted(range(len(ids)), key=lambda i: (i % 3, len(ids[i]) * (-1) ** i)):
        handle = RunHandle() if i % 2 else None
        np.testing.assert_allclose(session.run([ids[i]], run_options=handle)[0], reference[i], atol=1e-5)
    assert session.run([]).shape == (0, tiny_package.vocab_size)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_cancelled_handle_never_runs_and_the_session_stays_usable(
    tiny_package: ModelPackage, backend: str
) -> None:
    session = runtime(tiny_package, backend).new_session(1)
    handle = RunHandle()
    handle.cancel()
    with pytest.raises(RunCancelled):
        session.run([np.arange(2, 500, dtype=np.int64)] * 4, run_options=handle)
    assert session.run([np.array([2, 40, 3], dtype=np.int64)], run_options=RunHandle()).shape[0] == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancel_of_a_running_batch_returns_no_rows(tiny_package: ModelPackage, backend: str) -> None:
    """A batch long enough to take seconds is cancelled from another thread once it runs: it raises RunCancelled
    (instead of returning rows; onnxruntime aborts it, OpenVINO lets it finish), and the next run on the same
    session works."""
    session = runtime(tiny_package, backend).new_session(1)
    handle = RunHandle()
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(
                session.run([np.arange(2, 514, dtype=np.int64) % 90 + 2] * 512, run_options=handle)
            )
        except RunCancelled as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + HANG_GUARD_S
    while not handle.running and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    handle.cancel()
    worker.join(HANG_GUARD_S)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], RunCancelled), "the cancelled batch returned rows"
    assert not handle.running
    assert session.run([np.array([2, 40, 3], dtype=np.int64)]).shape[0] == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancels_racing_runs_never_yield_wrong_rows(
    tiny_package: ModelPackage, reference: np.ndarray, backend: str
) -> None:
    """Cancels land at random moments of a stream of runs of different shapes on one session, late ones too (after
    their run ended, while the next one runs): every run either raises RunCancelled, for its own cancelled handle
    only, or returns exactly its own rows. (OpenVINO's own cancel failed this: runs after a cancelled one failed
    shape inference or returned the previous run's output.)"""
    session = runtime(tiny_package, backend).new_session(1)
    ids = ids_of(tiny_package, TEXTS)
    rng = np.random.default_rng(11)
    handles: list[RunHandle] = []
    done = threading.Event()

    def cancel_at_random() -> None:
        while not done.is_set():
            time.sleep(float(rng.random()) * 0.002)
            if handles:
                handles[
                    -1 - int(rng.integers(0, min(2, len(handles))))
                ].cancel()  # the current or the last one

    canceller = threading.Thread(target=cancel_at_random)
    canceller.start()
    outcomes = {"rows": 0, "cancelled": 0}
    try:
        for _ in range(400):
            rows = sorted(rng.choice(len(TEXTS), size=int(rng.integers(1, 9)), replace=False))
            handle = RunHandle()
            handles.append(handle)
            try:
                out = session.run([ids[i] for i in rows], run_options=handle)
            except RunCancelled:
                assert handle.cancelled, "a run was aborted by another run's cancel"
                outcomes["cancelled"] += 1
                continue
            np.testing.assert_allclose(out, reference[rows], atol=1e-4)
            outcomes["rows"] += 1
    finally:
        done.set()
        canceller.join(HANG_GUARD_S)
    assert outcomes["rows"] and outcomes["cancelled"], outcomes  # both paths were exercised


def test_openvino_sessions_share_one_compiled_model_per_thread_count(tiny_package: ModelPackage) -> None:
    loaded = runtime(tiny_package, "openvino", processors=4)
    sessions = [loaded.new_session(1) for _ in range(4)] + [loaded.new_session(2)]
    assert loaded.compiled_thread_counts == (1, 2)  # type: ignore[attr-defined]
    ids = ids_of(tiny_package, TEXTS[:3])
    outs = [s.run(ids) for s in sessions]
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


@pytest.mark.parametrize("share_weights", [False, True])
def test_openvino_query_sessions_run_beside_busy_allocations_on_small_models(
    tiny_package: ModelPackage, reference: np.ndarray, share_weights: bool
) -> None:
    """A query runner's session: on a compiled model of its own for a small model (the allocations' model has no
    stream to spare), on the allocations' compiled model for a large one (no second copy of its weights)."""
    loaded = load_runtime(
        tiny_package.model_path,
        Layout("openvino", "fp32"),
        max_sequence_length=tiny_package.max_sequence_length,
        processors=1,
        share_weights=share_weights,
    )
    session = loaded.new_session(1)
    query = session.concurrent_session()
    assert query is not session
    assert loaded.compiled_models == (1 if share_weights else 2)  # type: ignore[attr-defined]
    ids = ids_of(tiny_package, TEXTS[:2])
    np.testing.assert_allclose(query.run(ids), reference[:2], atol=1e-4)


def test_openvino_runs_the_precision_it_reports(tiny_package: ModelPackage) -> None:
    """fp32 is compiled as f32 even where OpenVINO's CPU default is bf16; bf16 as bf16 where the CPU can run it
    (natively or emulated), else the session reports the fp32 it really runs."""
    assert runtime(tiny_package, "openvino").compiled_precision(1) == "f32"  # type: ignore[attr-defined]
    loaded = runtime(tiny_package, "openvino", "bf16")
    can_bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert loaded.compiled_precision(1) == ("bf16" if can_bf16 else "f32")  # type: ignore[attr-defined]
    assert loaded.new_session(1).layout.precision == ("bf16" if can_bf16 else "fp32")


@pytest.mark.parametrize("backend", BACKENDS)
def test_int8_is_made_at_load_for_the_vocabulary_projection(
    tiny_package: ModelPackage, reference: np.ndarray, backend: str
) -> None:
    loaded = runtime(tiny_package, backend, "int8")
    assert loaded.layout.precision == "int8"
    out = loaded.new_session(1).run(ids_of(tiny_package, TEXTS))
    assert not np.array_equal(out, reference), "int8 changes the weights slightly"
    cosine = (out * reference).sum(1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(reference, axis=1))
    assert cosine.min() > 0.99


def test_onnxruntime_int8_quantizes_only_the_vocabulary_projection(
    tiny_package: ModelPackage, tmp_path: Path
) -> None:
    out = tmp_path / "int8.onnx"
    quantize_int8(tiny_package.model_path, out)
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    fp32_ops = [n.op_type for n in onnx.load(str(tiny_package.model_path)).graph.node]
    vocab_slices = sum(
        n.op_type == "MatMul" and n.input[1].startswith("vocab_projection.weight")
        for n in onnx.load(str(tiny_package.model_path)).graph.node
    )
    assert vocab_slices >= 1 and ops.count("MatMulInteger") == vocab_slices
    assert ops.count("MatMul") == fp32_ops.count("MatMul") - vocab_slices  # the encoder MatMuls stay fp32


def test_openvino_int8_keeps_the_rest_in_bf16_only_where_it_is_native(tiny_package: ModelPackage) -> None:
    from elser_server.runtime.backends.openvino import OpenVinoRuntime

    for cpu, rest in ((CpuFeatures(frozenset({"amx_bf16"})), "bf16"), (CpuFeatures(frozenset()), "f32")):
        can_bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        loaded = OpenVinoRuntime(
            tiny_package.model_path,
            Layout("openvino", "int8"),
            max_sequence_length=512,
            processors=1,
            cpu=cpu,
        )
        assert loaded.compiled_precision(1) == (rest if can_bf16 else "f32")
        assert f"the rest in {'bf16' if rest == 'bf16' and can_bf16 else 'fp32'}" in loaded.layout.reason


def test_openvino_neither_forks_nor_loads_its_telemetry(tiny_package: ModelPackage) -> None:
    """`import openvino` would send a usage event from a forked process; the server process must not fork."""
    script = textwrap.dedent(
        f"""
        import os, sys
        forks = []
        os.register_at_fork(before=lambda: forks.append(1))
        import numpy as np
        from elser_server.runtime.backends import load_runtime
        from elser_server.runtime.layout import Layout
        loaded = load_runtime({str(tiny_package.model_path)!r}, Layout("openvino", "fp32"), max_sequence_length=512,
                              processors=1, share_weights=False)
        loaded.new_session(1).run([np.array([2, 40, 3])])
        print(len(forks), sys.modules["openvino_telemetry"])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["0", "None"], out.stdout + out.stderr


def test_openvino_first_runs_in_many_threads_at_once_do_not_deadlock(tiny_package: ModelPackage) -> None:
    """The first infer calls of a process, made by several threads at once (allocations and a query runner
    warming up together), once deadlocked inside OpenVINO's bindings (a static dtype table filled without the
    GIL; a replica hung for good). The race is narrow: without the fix about one fresh process in twelve hung, so
    this runs twelve, each with a timeout."""
    script = textwrap.dedent(
        f"""
        import threading
        import numpy as np
        from elser_server.runtime.backends import load_runtime
        from elser_server.runtime.layout import Layout
        loaded = load_runtime({str(tiny_package.model_path)!r}, Layout("openvino", "fp32"), max_sequence_length=512,
                              processors=4, share_weights=False)
        sessions = [loaded.new_session(1) for _ in range(4)]
        start = threading.Barrier(len(sessions))
        def first_run(session):
            start.wait()
            session.run([np.array([2, 40, 3])])
        threads = [threading.Thread(target=first_run, args=(s,)) for s in sessions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print("done")
        """
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(12)
    ]
    hung = 0
    for run in runs:
        try:
            out, err = run.communicate(timeout=HANG_GUARD_S)
        except subprocess.TimeoutExpired:
            run.kill()
            run.communicate()
            hung += 1
            continue
        assert run.returncode == 0 and out.strip() == "done", err
    assert hung == 0, f"{hung} of {len(runs)} processes hung in their first runs"
