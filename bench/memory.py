"""Resident memory of one deployment, measured, next to the estimate memory admission uses (core/memory.py).

    python bench/memory.py --repository models/repository --model .elser_model_2 --token-budget 1024 \
        [--runtime onnxruntime|openvino] [--precision fp32|bf16|int8]

Loads the model through the core's ModelManager in this fresh process, starts a Deployment with 1, then 2, then
4 one-thread allocations, then serves `--traffic` bulk requests of random sizes and lengths (backends keep
per-shape state, so memory grows with the shapes seen), and prints the RSS growth over the process baseline after
each step with the estimate for the same step. Run one model and token budget per process (RSS never shrinks much
within one).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

from elser_server.core.deployment import Deployment
from elser_server.core.memory import estimate_footprint
from elser_server.core.model_manager import ModelManager
from elser_server.core.queue import RowOptions
from elser_server.core.types import Priority
from elser_server.runtime.layout import PrecisionSetting, RuntimeSetting

MIB = 1 << 20


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def measure(
    repository: str,
    model_id: str,
    token_budget: int,
    runtime: RuntimeSetting,
    precision: PrecisionSetting,
    traffic: int,
) -> None:
    baseline = rss_bytes()
    with tempfile.TemporaryDirectory() as cache:
        manager = ModelManager(repository, Path(cache), runtime=runtime, precision=precision, processors=4)
        model = await manager.get(model_id)
        footprint = estimate_footprint(model.package, token_budget, model.layout)
        rows = [("model loaded", rss_bytes() - baseline, footprint.model_bytes)]
        deployment = Deployment(
            "bench",
            model_id,
            num_threads=1,
            target_allocations=1,
            queue_capacity=1000,
            interactive_queue_capacity=10,
            token_budget=token_budget,
            max_batch_size=32,
            processors=4,
        )
        await deployment.start(model.new_session)
        rows.append(("1 allocation", rss_bytes() - baseline, footprint.deployment_bytes(1)))
        for allocations in (2, 4):
            await deployment.scale_to(allocations)
            rows.append(
                (
                    f"{allocations} allocations",
                    rss_bytes() - baseline,
                    footprint.deployment_bytes(allocations),
                )
            )
        rng = random.Random(7)
        vocab = model.tokenizer.id_to_tokens(range(min(model.tokenizer.vocab_size, 8000)))
        words = [t for t in vocab if t.isalnum()]

        async def request() -> None:
            texts = [" ".join(rng.choices(words, k=rng.randint(1, 400))) for _ in range(rng.randint(1, 32))]
            await deployment.embed(
                model.tokenizer.encode_batch(texts),
                priority=Priority.BULK,
                deadline=time.monotonic() + 600,
                options=RowOptions(top_k=10),
            )

        for start in range(0, traffic, 8):
            await asyncio.gather(*(request() for _ in range(min(8, traffic - start))))
        rows.append((f"+{traffic} requests", rss_bytes() - baseline, footprint.deployment_bytes(4)))
        await deployment.stop(1.0)
    print(
        f"{model_id} on {model.layout}, token budget {token_budget}: RSS over a {baseline / MIB:.0f} MiB baseline"
    )
    print(f"{'':<18} {'measured MiB':>12} {'estimate MiB':>12}")
    for name, measured, estimated in rows:
        print(f"{name:<18} {measured / MIB:>12.0f} {estimated / MIB:>12.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repository", default="models/repository", help="model repository (directory or URL)"
    )
    parser.add_argument("--model", default=".elser_model_2", help="model id")
    parser.add_argument("--token-budget", type=int, default=1024, help="ELSER_TOKEN_BUDGET")
    parser.add_argument("--runtime", default="auto", choices=("auto", "onnxruntime", "openvino"))
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "int8"))
    parser.add_argument("--traffic", type=int, default=200, help="bulk requests served after scaling to 4")
    args = parser.parse_args()
    asyncio.run(
        measure(args.repository, args.model, args.token_budget, args.runtime, args.precision, args.traffic)
    )


if __name__ == "__main__":
    main()
