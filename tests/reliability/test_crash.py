"""SIGKILL of the server during PutEndpoint, a model download and bulk inference, then a restart on the same
data directory: every acknowledged PUT is there, no half-installed model is used (nor kept: the restart removes
what the killed install left), inference works.
And SIGTERM with a bulk stream in flight: the stream completes before the process exits."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from elser_client import ElserClient, ElserClientError
from elser_server.model.package import ModelPackage
from serverprocess import INFERENCE_SERVICE, ServerFactory, SlowRepository
from support import eventually

STREAM_TEXTS = [" ".join(f"bulk{i} text{j}" for j in range(60)) for i in range(8)]


def assert_installed_models_verify(data: Path) -> None:
    """Every installed package checks out (sha256 of each file); temp dirs of killed installs are not packages."""
    for package_dir in (data / "models").iterdir():
        if not package_dir.name.startswith("."):
            ModelPackage.load(package_dir, verify=True)


def install_leftovers(data: Path) -> list[Path]:
    return sorted(p for p in (data / "models").iterdir() if p.name.startswith("."))


@pytest.mark.slow
def test_sigkill_during_puts_keeps_every_acknowledged_endpoint(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    server = start_server()
    acknowledged: list[str] = []
    stop = threading.Event()

    def put_many() -> None:
        with ElserClient(server.target, timeout_s=30) as client:
            for i in range(200):
                if stop.is_set():
                    return
                try:
                    client.put_endpoint(f"put-{i}")
                except ElserClientError:
                    return  # the server died under this call: not acknowledged
                acknowledged.append(f"put-{i}")

    worker = threading.Thread(target=put_many)
    worker.start()
    try:
        eventually(lambda: len(acknowledged) >= 5, 60, "five acknowledged PUTs")
        server.kill()
    finally:
        stop.set()
        worker.join(60)

    restarted = start_server()
    with ElserClient(restarted.target) as client:
        present = {e.inference_id for e in client.list_endpoints()}
        assert set(acknowledged) <= present
        for inference_id in sorted(present - {".elser-2-elasticsearch"}):
            assert len(client.infer(inference_id, ["after the crash"])) == 1
    assert_installed_models_verify(tmp_path / "data")


@pytest.mark.slow
def test_sigkill_during_model_download_never_uses_a_partial_model(
    start_server: ServerFactory, tiny_repository: Path, tmp_path: Path
) -> None:
    root = tmp_path / "served"
    shutil.copytree(tiny_repository, root)
    repo = SlowRepository(root, delay_s=0.02)
    try:
        server = start_server(repo.url)
        outcome: list[BaseException] = []

        def put() -> None:
            with ElserClient(server.target, timeout_s=120) as client:
                try:
                    client.put_endpoint("downloaded")
                except ElserClientError as error:
                    outcome.append(error)

        worker = threading.Thread(target=put)
        worker.start()
        eventually(lambda: repo.onnx_bytes_sent > 64 * 1024, 60, "the model download under way")
        server.kill()
        worker.join(60)
        assert outcome, "the PUT cannot have been acknowledged"
        assert install_leftovers(tmp_path / "data"), "the killed install left its work directory"

        repo.delay_s = 0.0
        restarted = start_server(repo.url)
        # Removed at start-up, before anything installs that model again (8-26 MB each were left for good).
        assert install_leftovers(tmp_path / "data") == []
        with ElserClient(restarted.target) as client:
            assert "downloaded" not in {e.inference_id for e in client.list_endpoints()}
            client.put_endpoint("downloaded")  # installs afresh from the repository
            assert len(client.infer("downloaded", ["a verified model"])) == 1
        assert_installed_models_verify(tmp_path / "data")
    finally:
        repo.close()


def stream_batches(count: int) -> Iterator[list[str]]:
    for _ in range(count):
        yield STREAM_TEXTS


@pytest.mark.slow
def test_sigkill_during_bulk_inference_then_restart(start_server: ServerFactory, tmp_path: Path) -> None:
    server = start_server()
    with ElserClient(server.target, timeout_s=60) as client:
        client.put_endpoint("bulk")
        received = 0
        with pytest.raises(ElserClientError):
            for response in client.infer_stream("bulk", stream_batches(10_000)):
                assert not response.HasField("error")
                received += 1
                if received == 20:
                    server.kill()
        assert received >= 20

    restarted = start_server()
    with ElserClient(restarted.target) as client:
        assert client.get_endpoint("bulk").inference_id == "bulk"
        responses = list(client.infer_stream("bulk", stream_batches(5)))
        assert [r.correlation_id for r in responses] == ["0", "1", "2", "3", "4"]
        assert all(len(r.embeddings) == len(STREAM_TEXTS) for r in responses)
    assert_installed_models_verify(tmp_path / "data")


@pytest.mark.slow
def test_sigterm_lets_a_bulk_stream_in_flight_finish(start_server: ServerFactory) -> None:
    server = start_server(ELSER_DRAIN_S="1")
    with ElserClient(server.target, timeout_s=120) as client:
        client.put_endpoint("drain")
        server.wait_health(INFERENCE_SERVICE)
        responses = []
        for response in client.infer_stream("drain", stream_batches(40)):
            responses.append(response)
            if len(responses) == 1:
                server.proc.terminate()  # SIGTERM with 39 requests of the stream still to come
        assert [r.correlation_id for r in responses] == [str(i) for i in range(40)]
        assert not any(r.HasField("error") for r in responses)
    assert server.proc.wait(timeout=60) == 0
