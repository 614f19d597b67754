"""Model download over real HTTP: progress in WatchDeployment, checksum failures, single download, PUT timeout,
and a download killed mid-way never leaves a model that gets used."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from elser_server.core.errors import Code, ElserError
from elser_server.core.events import DeploymentEvent, Phase
from elser_server.core.service import InferenceCore
from elser_server.model.package import ModelPackage
from elser_server.model.repository import install
from serverprocess import SlowRepository
from support import PUT_BODY, eventually_async, make_core, put_body


@pytest.fixture
def repo_server(tiny_repository: Path, tmp_path: Path) -> Iterator[SlowRepository]:
    root = tmp_path / "served"
    shutil.copytree(tiny_repository, root)
    server = SlowRepository(root)
    yield server
    server.close()


async def watch_when_registered(core: InferenceCore, inference_id: str) -> AsyncIterator[DeploymentEvent]:
    def watch() -> AsyncIterator[DeploymentEvent] | None:
        try:
            return core.watch_deployment(inference_id)
        except ElserError:
            return None  # the PUT has not registered its deployment yet

    return await eventually_async(watch, what=f"the deployment of [{inference_id}] to appear")


async def test_download_progress_is_watchable(repo_server: SlowRepository, tmp_path: Path) -> None:
    repo_server.delay_s = 0.002
    core = make_core(repo_server.url, tmp_path)
    await core.start()
    try:
        put = asyncio.create_task(core.put_endpoint("dl", "sparse_embedding", PUT_BODY))
        events = await watch_when_registered(core, "dl")
        seen = []
        async with asyncio.timeout(60):
            async for event in events:
                seen.append(event)
                if event.phase is Phase.FULLY_ALLOCATED:
                    break
        await put
        downloading = [e for e in seen if e.phase is Phase.DOWNLOADING]
        assert downloading, [e.phase for e in seen]
        assert downloading[-1].bytes_total > 0
        assert all(0 < e.bytes_done <= e.bytes_total for e in downloading)
        assert [e.bytes_done for e in downloading] == sorted(e.bytes_done for e in downloading)
    finally:
        await core.close()


async def test_corrupt_file_fails_with_checksum_reason_then_retry_succeeds(
    repo_server: SlowRepository, tmp_path: Path
) -> None:
    onnx = repo_server.root / "elser_model_2.model.onnx"
    good = onnx.read_bytes()
    onnx.write_bytes(good[:-10] + b"0123456789")
    core = make_core(repo_server.url, tmp_path)
    await core.start()
    try:
        with pytest.raises(ElserError) as exc:
            await core.put_endpoint("c", "sparse_embedding", PUT_BODY)
        assert "corrupt" in exc.value.reason and "sha256" in exc.value.reason
        assert not (tmp_path / "models" / "elser_model_2").exists()  # nothing installed
        assert "c" not in [e.inference_id for e in await core.get_endpoints()]
        onnx.write_bytes(good)
        put = await core.put_endpoint("c", "sparse_embedding", PUT_BODY)
        assert put.endpoint.inference_id == "c"
        assert len(await core.infer("c", None, ["fixed"])) == 1
    finally:
        await core.close()


async def test_missing_model_is_not_found(repo_server: SlowRepository, tmp_path: Path) -> None:
    (repo_server.root / "elser_model_2.metadata.json").unlink()
    core = make_core(repo_server.url, tmp_path)
    await core.start()
    try:
        with pytest.raises(ElserError) as exc:
            await core.put_endpoint("m", "sparse_embedding", PUT_BODY)
        assert exc.value.code is Code.NOT_FOUND
        assert exc.value.reason == "Could not deploy model [.elser_model_2] as the model cannot be found."
    finally:
        await core.close()


async def test_concurrent_puts_download_once(repo_server: SlowRepository, tmp_path: Path) -> None:
    repo_server.delay_s = 0.001
    core = make_core(repo_server.url, tmp_path)
    await core.start()
    try:
        results = await asyncio.gather(
            core.put_endpoint("one", "sparse_embedding", PUT_BODY),
            core.put_endpoint("two", "sparse_embedding", PUT_BODY),
        )
        assert [r.endpoint.inference_id for r in results] == ["one", "two"]
        assert repo_server.hits["elser_model_2.model.onnx"] == 1
    finally:
        await core.close()


async def test_put_timeout_on_slow_repository_is_408_and_deployment_starts_later(
    repo_server: SlowRepository, tmp_path: Path
) -> None:
    repo_server.delay_s = 0.1  # the tiny model's file takes a few seconds to arrive
    core = make_core(repo_server.url, tmp_path)
    await core.start()
    try:
        with pytest.raises(ElserError) as exc:
            await core.put_endpoint("slow", "sparse_embedding", PUT_BODY, timeout_s=1.0)
        assert exc.value.http_status == 408
        assert exc.value.reason == (
            "Timed out after [1s] waiting for model deployment to start. "
            "Use the trained model stats API to track the state of the deployment."
        )
        events = core.watch_deployment("slow")
        async with asyncio.timeout(60):
            async for event in events:
                if event.phase is Phase.FULLY_ALLOCATED:
                    break
        put = await core.put_endpoint("slow", "sparse_embedding", PUT_BODY, timeout_s=1.0)
        assert put.endpoint.inference_id == "slow"
    finally:
        await core.close()


async def test_killed_download_leaves_nothing_that_is_used(
    repo_server: SlowRepository, tmp_path: Path
) -> None:
    repo_server.delay_s = 0.1
    cache = tmp_path / "cache"
    script = (
        "import sys; from elser_server.model.repository import install; "
        "install(sys.argv[1], '.elser_model_2', sys.argv[2])"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, repo_server.url, str(cache)])
    try:
        # Killed well inside the model file: part of it is on disk, in the install's temp directory.
        partial = ".elser_model_2.*/model.onnx"
        await eventually_async(
            lambda: any(f.stat().st_size > 0 for f in cache.glob(partial)),
            30,
            "part of the model file on disk",
        )
        assert proc.poll() is None, "the download finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (cache / "elser_model_2").exists()  # only a temp dir, never the package itself
    repo_server.delay_s = 0.0
    installed = await asyncio.to_thread(install, repo_server.url, ".elser_model_2", cache)
    ModelPackage.load(installed, verify=True)
    assert [p.name for p in cache.iterdir()] == ["elser_model_2"]  # the stale temp dir was removed


async def test_close_cancels_a_running_download(repo_server: SlowRepository, tmp_path: Path) -> None:
    repo_server.delay_s = 0.3  # the model file would take several seconds more
    core = make_core(repo_server.url, tmp_path)
    await core.start()
    put = asyncio.create_task(core.put_endpoint("m", "sparse_embedding", PUT_BODY, timeout_s=120))
    await eventually_async(lambda: repo_server.onnx_bytes_sent > 0, 30, "the model download to start")
    await core.close()
    with pytest.raises((ElserError, asyncio.CancelledError)):
        await put
    cache = tmp_path / "models"
    # the install thread stops at its next read and removes its temp dir
    await eventually_async(lambda: not any(cache.glob(".elser_model_2.*")), 30, "the temp dir to go")
    assert not (cache / "elser_model_2").exists()
    size = (repo_server.root / "elser_model_2.model.onnx").stat().st_size
    assert repo_server.onnx_bytes_sent < size


async def test_put_after_a_timed_out_put_applies_its_own_settings(
    repo_server: SlowRepository, tmp_path: Path
) -> None:
    repo_server.delay_s = 0.05
    core = make_core(repo_server.url, tmp_path, processors=2)
    await core.start()
    try:
        with pytest.raises(ElserError) as exc:
            await core.put_endpoint(
                "e", "sparse_embedding", put_body(num_allocations=1, num_threads=1), timeout_s=0.2
            )
        assert exc.value.http_status == 408
        # Same model and threads, more allocations: the starting deployment is reused and scaled.
        put = await core.put_endpoint(
            "e", "sparse_embedding", put_body(num_allocations=2, num_threads=1), timeout_s=60
        )
        assert put.endpoint.service_settings.num_allocations == 2
        assert core.deployment_stats("e").snapshot.target_allocations == 2
        await core.delete_endpoint("e")

        with pytest.raises(ElserError):
            await core.put_endpoint(
                "t", "sparse_embedding", put_body(num_allocations=1, num_threads=1), timeout_s=0
            )
        # Other threads per allocation: the new PUT wins with a deployment of its own.
        await core.put_endpoint(
            "t", "sparse_embedding", put_body(num_allocations=1, num_threads=2), timeout_s=60
        )
        assert core.deployment_stats("t").threads_per_allocation == 2
    finally:
        await core.close()
