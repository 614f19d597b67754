"""Allocations share one copy of the weights: 4 allocations of a BERT-base-sized model cost ≤ 1.5× the resident
memory of 1, beyond the process baseline (issue 4), on each backend (OpenVINO: one compiled model, one infer request
per allocation). Measured in a fresh subprocess through the core's
ModelManager and Deployment, so the real loading and sharing path is what is measured."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from elser_server.model.checkpoint import BertConfig, tiny_vocab, wordpiece_tokenizer, write_random_checkpoint
from elser_server.model.convert import convert
from elser_server.model.repository import publish
from elser_server.runtime.layout import BACKENDS

MODEL_ID = "bert-base-random"
# ELSER's shape (BERT-base with the bert-base-uncased vocabulary size): weights dominate memory.
VOCAB_SIZE = 30_522
BERT_BASE = BertConfig(
    vocab_size=VOCAB_SIZE,
    hidden_size=768,
    num_layers=12,
    num_heads=12,
    intermediate_size=3072,
    max_position_embeddings=512,
    type_vocab_size=2,
    layer_norm_eps=1e-12,
)
# Small enough that warming up 4 single-threaded BERT-base sessions takes seconds, large enough to be a real
# multi-row batch; the arena each session keeps is part of what is measured.
TOKEN_BUDGET = 512

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

    async def main(repo, cache, model_id, budget, runtime):
        baseline = rss_bytes()
        model = await ModelManager(repo, Path(cache), runtime=runtime, processors=4).get(model_id)
        assert model.layout.backend == runtime, model.layout
        # processors=4: four one-thread allocations even on a smaller test machine (memory, not speed).
        deployment = Deployment("memory", model_id, num_threads=1, target_allocations=1, queue_capacity=10,
                                interactive_queue_capacity=10,
                                token_budget=budget, max_batch_size=32, processors=4)
        await deployment.start(model.new_session)
        one = rss_bytes()
        await deployment.scale_to(4)
        four = rss_bytes()
        assert deployment.allocation_count == 4, deployment.allocation_count
        print(json.dumps({"baseline": baseline, "one": one, "four": four}))
        await deployment.stop(1.0)

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]))
    """
)


@pytest.fixture(scope="module")
def bert_base_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bert-base")
    vocab = tiny_vocab()
    vocab += [f"w{i}" for i in range(VOCAB_SIZE - len(vocab))]
    checkpoint = write_random_checkpoint(root / "checkpoint", BERT_BASE, wordpiece_tokenizer(vocab))
    package = convert(checkpoint, root / "package", model_id=MODEL_ID)
    repo = root / "repository"
    publish(package.path, repo, MODEL_ID)
    return repo


@pytest.mark.slow
@pytest.mark.parametrize("runtime", BACKENDS)
def test_four_allocations_share_weights(bert_base_repository: Path, tmp_path: Path, runtime: str) -> None:
    if runtime == "openvino":
        pytest.importorskip("elser_server.runtime.backends.openvino")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURE,
            str(bert_base_repository),
            str(tmp_path / "cache"),
            MODEL_ID,
            str(TOKEN_BUDGET),
            runtime,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rss = json.loads(out.stdout.strip().splitlines()[-1])
    one, four = rss["one"] - rss["baseline"], rss["four"] - rss["baseline"]
    mib = 1 << 20
    print(
        f"{runtime}: RSS beyond baseline: 1 allocation {one / mib:.0f} MiB, 4 allocations {four / mib:.0f} MiB"
    )
    # The weights alone are ~440 MB: one allocation must at least hold them (proves the model really loaded).
    assert one > 400 * mib
    assert four <= 1.5 * one, f"4 allocations {four / mib:.0f} MiB > 1.5 × 1 allocation {one / mib:.0f} MiB"
