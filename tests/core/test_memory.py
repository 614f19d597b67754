"""Memory admission (core/memory.py): the estimate against measured resident memory, the budget's all-or-nothing
reservations with ES's 429 texts, and scaling that stays within the budget."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from elser_server.core.deployment import Deployment
from elser_server.core.errors import Code, ElserError
from elser_server.core.memory import (
    ALLOCATION_OVERHEAD,
    ARENA_FACTOR,
    MODEL_OVERHEAD,
    TOKENIZER_FACTOR,
    Footprint,
    MemoryBudget,
    estimate_footprint,
    shares_weights,
)
from elser_server.core.model_manager import ModelManager
from elser_server.model.package import ModelPackage
from elser_server.runtime.layout import BACKENDS, Layout

MIB = 1 << 20
TOKEN_BUDGET = 1024
FOOTPRINT = Footprint(model_bytes=100 * MIB, allocation_bytes=50 * MIB)

MEASURE = textwrap.dedent(
    """
    import asyncio, json, random, sys, time
    from pathlib import Path

    from elser_server.core.deployment import Deployment
    from elser_server.core.model_manager import ModelManager
    from elser_server.core.queue import RowOptions
    from elser_server.core.types import Priority

    def rss_bytes():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    async def main(repo, cache, budget, runtime):
        baseline = rss_bytes()
        model = await ModelManager(repo, Path(cache), runtime=runtime, processors=4).get(".elser_model_2")
        assert model.layout.backend == runtime, model.layout
        deployment = Deployment("m", ".elser_model_2", num_threads=1, target_allocations=4, queue_capacity=1000,
                                interactive_queue_capacity=10, token_budget=budget, max_batch_size=32, processors=4)
        await deployment.start(model.new_session)
        assert deployment.allocation_count == 4, deployment.allocation_count
        # Traffic of many shapes: backends keep per-shape state (OpenVINO's kernel caches).
        rng = random.Random(7)
        for _ in range(20):
            texts = [" ".join(["dog water cat"] * rng.randint(1, 150)) for _ in range(rng.randint(1, 32))]
            await asyncio.gather(*(
                deployment.embed(model.tokenizer.encode_batch(texts[i::4]), priority=Priority.BULK,
                                 deadline=time.monotonic() + 300, options=RowOptions(top_k=5))
                for i in range(4) if texts[i::4]
            ))
        print(json.dumps({"baseline": baseline, "four": rss_bytes(), "layout": str(model.layout)}))
        await deployment.stop(1.0)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    """
)
ONNXRUNTIME_FP32 = Layout("onnxruntime", "fp32")


def test_estimate_of_a_small_model(tiny_package: ModelPackage) -> None:
    """Small models keep a private copy of their weights in each onnxruntime session (no shared weights)."""
    weights = tiny_package.model_path.stat().st_size
    tokenizer = tiny_package.tokenizer_path.stat().st_size
    assert not shares_weights(tiny_package)
    footprint = estimate_footprint(tiny_package, TOKEN_BUDGET, ONNXRUNTIME_FP32)
    assert footprint.model_bytes == tokenizer * TOKENIZER_FACTOR + MODEL_OVERHEAD
    arena = int(ARENA_FACTOR * TOKEN_BUDGET * tiny_package.vocab_size * 4)
    assert footprint.allocation_bytes == weights + arena + ALLOCATION_OVERHEAD
    bigger = estimate_footprint(tiny_package, 2 * TOKEN_BUDGET, ONNXRUNTIME_FP32)
    assert bigger.allocation_bytes > footprint.allocation_bytes


def test_openvino_estimate_is_mostly_per_model(tiny_package: ModelPackage) -> None:
    """OpenVINO's infer requests share the compiled model's buffers: the budget grows the model's share, and bf16
    (larger compiled buffers) more than fp32."""
    fp32 = estimate_footprint(tiny_package, TOKEN_BUDGET, Layout("openvino", "fp32"))
    bf16 = estimate_footprint(tiny_package, TOKEN_BUDGET, Layout("openvino", "bf16"))
    assert fp32.allocation_bytes == bf16.allocation_bytes < fp32.model_bytes < bf16.model_bytes
    bigger = estimate_footprint(tiny_package, 2 * TOKEN_BUDGET, Layout("openvino", "fp32"))
    assert bigger.model_bytes > fp32.model_bytes and bigger.allocation_bytes == fp32.allocation_bytes


@pytest.mark.parametrize("runtime", BACKENDS)
def test_estimate_bounds_the_measured_memory(
    tiny_repository: Path, tiny_package: ModelPackage, tmp_path: Path, runtime: str
) -> None:
    """Four allocations of the tiny model after traffic of many shapes, measured in a fresh process: the estimate
    is above what they take, and not far above (a generous estimate refuses deployments that would fit)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURE,
            str(tiny_repository),
            str(tmp_path / "cache"),
            str(TOKEN_BUDGET),
            runtime,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rss = json.loads(out.stdout.strip().splitlines()[-1])
    measured = rss["four"] - rss["baseline"]
    backend, precision = rss["layout"].split()
    estimated = estimate_footprint(tiny_package, TOKEN_BUDGET, Layout(backend, precision)).deployment_bytes(4)  # type: ignore[arg-type]
    print(
        f"{rss['layout']}, 4 allocations: measured {measured / MIB:.1f} MiB, estimated {estimated / MIB:.1f} MiB"
    )
    assert measured <= estimated <= 1.6 * measured


def test_admission_is_all_or_nothing_with_es_texts() -> None:
    budget = MemoryBudget(300 * MIB)
    budget.admit("a", "m", FOOTPRINT, 2)  # 100 + 2 × 50
    assert budget.used_bytes == 200 * MIB
    with pytest.raises(ElserError) as exc:
        budget.admit("b", "other", FOOTPRINT, 1)  # another model: 100 + 50 > 100 free
    assert (exc.value.code, exc.value.http_status, exc.value.es_type) == (
        Code.RESOURCE_EXHAUSTED,
        429,
        "status_exception",
    )
    assert (
        exc.value.reason
        == "Could not start deployment because no ML nodes with sufficient capacity were found"
    )
    with pytest.raises(ElserError) as exc:
        budget.admit("c", "m", FOOTPRINT, 3)  # the same model: its weights are there, 2 of 3 allocations fit
    assert exc.value.reason == (
        "Could not start deployment because there are not enough resources to provide all requested allocations"
    )
    assert budget.used_bytes == 200 * MIB and not budget.holds("b") and not budget.holds("c")
    budget.admit("d", "m", FOOTPRINT, 2)  # the model's weights are counted once
    assert budget.used_bytes == 300 * MIB
    budget.release("a")
    budget.release("d")
    assert budget.used_bytes == 0


def test_growing_is_all_or_nothing_and_fitting_caps() -> None:
    budget = MemoryBudget(300 * MIB)
    budget.admit("a", "m", FOOTPRINT, 1)
    assert not budget.grow("a", 5)  # 4 more × 50 > 150 free
    assert budget.reserved_allocations("a") == 1
    assert budget.grow("a", 3)
    assert budget.reserved_allocations("a") == 3
    budget.fit("a", 1)
    assert budget.fit("a", 10) == 4  # as many as fit
    assert budget.fit("a", 0) == 0  # scaled to zero: the model's share stays reserved
    assert budget.used_bytes == 100 * MIB


async def test_scaling_stays_within_the_budget(
    tiny_repository: Path, tiny_package: ModelPackage, tmp_path: Path
) -> None:
    model = await ModelManager(str(tiny_repository), tmp_path).get(".elser_model_2")
    footprint = estimate_footprint(tiny_package, TOKEN_BUDGET, model.layout)
    budget = MemoryBudget(footprint.deployment_bytes(2))
    deployment = Deployment(
        "capped",
        ".elser_model_2",
        num_threads=1,
        target_allocations=1,
        queue_capacity=10,
        interactive_queue_capacity=10,
        token_budget=TOKEN_BUDGET,
        max_batch_size=32,
        processors=8,
        memory=budget,
    )
    budget.admit(deployment, ".elser_model_2", footprint, 1)
    await deployment.start(model.new_session)
    try:
        await deployment.scale_to(4)  # as the adaptive scaler does: capped, not refused
        assert (deployment.target_allocations, deployment.allocation_count) == (4, 2)
        assert deployment.reason == "[4] allocations requested; the memory limit leaves room for [2]"
        assert budget.used_bytes == footprint.deployment_bytes(2)
        await deployment.scale_to(1)
        assert deployment.allocation_count == 1 and deployment.reason is None
        assert budget.used_bytes == footprint.deployment_bytes(1)
    finally:
        await deployment.stop(1.0)
