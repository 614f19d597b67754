"""A Node.js client (@grpc/grpc-js + @grpc/proto-loader) built from protos/ alone creates an endpoint and infers."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[3]
NODE_DIR = ROOT / "tests" / "node"
WELL_KNOWN = str(Path(protoc.__file__).resolve().parent / "_proto")  # grpc_tools' google/protobuf


async def run(*cmd: str, cwd: Path, limit_s: float) -> str:
    process = await asyncio.create_subprocess_exec(
        *cmd, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), limit_s)
    assert process.returncode == 0, f"{cmd}: {err.decode()}"
    return out.decode()


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None, reason="node/npm are not installed"
)
async def test_node_client_creates_endpoint_and_infers(port: int) -> None:
    if not (ROOT / "third_party" / "google" / "api" / "annotations.proto").exists():
        await run(sys.executable, "scripts/gen_protos.py", "--third-party-only", cwd=ROOT, limit_s=60)
    await run("npm", "install", "--no-audit", "--no-fund", cwd=NODE_DIR, limit_s=300)
    out = await run("node", "client.js", str(port), str(ROOT), WELL_KNOWN, cwd=NODE_DIR, limit_s=60)
    embedding = json.loads(out)
    assert embedding["tokens"] and len(embedding["tokens"]) == len(embedding["weights"])
    assert embedding["weights"] == sorted(embedding["weights"], reverse=True)
