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

MIB = 1 << 20
TOKEN_BUDGET = 1024
FOOTPRINT = Footprint(model_bytes=100 * MIB, allocation_bytes=50 * MIB)

MEASURE = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path

    from elser_server.core.deployment import Deployment
    from elser_server.core.model_manager import ModelManager

    def rss_bytes():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    async def main(repo, cache, budget):
        baseline = rss_bytes()
        model = await ModelManager(repo, Path(cache)).get(".elser_model_2")
        deployment = Deployment("m", ".elser_model_2", num_threads=1, target_allocations=4, queue_capacity=10,
                                interactive_queue_capacity=10, token_budget=budget, max_batch_size=32, processors=4)
        await deployment.start(model.new_session)
        assert deployment.allocation_count == 4, deployment.allocation_count
        print(json.dumps({"baseline": baseline, "four": rss_bytes()}))
        await deployment.stop(1.0)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


def test_estimate_of_a_small_model(tiny_package: ModelPackage) -> None:
    """Small models keep a private copy of their weights in each session (no shared weights)."""
    weights = tiny_package.model_path.stat().st_size
    tokenizer = tiny_package.tokenizer_path.stat().st_size
    assert not shares_weights(tiny_package)
    footprint = estimate_footprint(tiny_package, TOKEN_BUDGET)
    assert footprint.model_bytes == tokenizer * TOKENIZER_FACTOR + MODEL_OVERHEAD
    arena = int(ARENA_FACTOR * TOKEN_BUDGET * tiny_package.vocab_size * 4)
    assert footprint.allocation_bytes == weights + arena + ALLOCATION_OVERHEAD
    assert estimate_footprint(tiny_package, 2 * TOKEN_BUDGET).allocation_bytes > footprint.allocation_bytes


def test_estimate_bounds_the_measured_memory(
    tiny_repository: Path, tiny_package: ModelPackage, tmp_path: Path
) -> None:
    """Four allocations of the tiny model, measured in a fresh process: the estimate is above what they take, and
    not far above (a generous estimate refuses deployments that would fit)."""
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tiny_repository), str(tmp_path / "cache"), str(TOKEN_BUDGET)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rss = json.loads(out.stdout.strip().splitlines()[-1])
    measured = rss["four"] - rss["baseline"]
    estimated = estimate_footprint(tiny_package, TOKEN_BUDGET).deployment_bytes(4)
    print(f"4 allocations: measured {measured / MIB:.1f} MiB, estimated {estimated / MIB:.1f} MiB")
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
    footprint = estimate_footprint(tiny_package, TOKEN_BUDGET)
    budget = MemoryBudget(footprint.deployment_bytes(2))
    model = await ModelManager(str(tiny_repository), tmp_path).get(".elser_model_2")
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
