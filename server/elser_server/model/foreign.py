"""Repository entries that are not ONNX packages yet, converted once on install and cached as a package.

Two layouts beside ours (all flat, `<name>` = model id without its leading dot):

- Elastic's: `<name>.metadata.json` with `packaged_model_id`, `sha256` and `size` of `<name>.pt` (TorchScript),
  and `<name>.vocab.json` (or the metadata's `vocabulary_file`).
- Hugging Face: `<name>.metadata.json` with `"format": "huggingface"` and `files` (sha256 and size) naming
  `config.json`, `model.safetensors` and `tokenizer.json` or `vocab.txt` (optionally `tokenizer_config.json`),
  stored as `<name>.<file>`.

The conversion runs in a child process (`elser-model convert-torchscript` / `convert`): a slow, memory-hungry or
crashing conversion cannot block or take down the server, and torch is never imported into it."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from elser_server.model.convert import CONVERTER_VERSION, QUANTIZATIONS
from elser_server.model.package import (
    METADATA_FILE,
    InstallCancelled,
    ModelPackage,
    PackageError,
    write_json,
)

ES_VOCAB_MAX_BYTES = 10 * 1024 * 1024  # ES's limit on a vocabulary file
CANCEL_POLL_S = 0.2  # how soon a cancelled conversion's child is killed
HF_FILES = ("config.json", "model.safetensors")
HF_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
HF_OPTIONAL_FILES = ("tokenizer_config.json",)
_SHA256 = re.compile(r"[0-9a-f]{64}")

Fetch = Callable[[str, Path, str, int], None]  # (repository file, destination, sha256, size): verified copy
Fetched = Callable[[str, Path, int], None]  # (repository file, destination, max bytes): unverified copy


def is_es_layout(metadata: dict[str, Any]) -> bool:
    return "packaged_model_id" in metadata


def is_hf_layout(metadata: dict[str, Any]) -> bool:
    return metadata.get("format") == "huggingface"


def es_download_plan(name: str, metadata: dict[str, Any]) -> tuple[dict[str, tuple[str, int]], str]:
    """Files of an ES entry: ({repository file: (sha256, size)} of the verified ones, vocabulary file)."""
    sha256, size = metadata.get("sha256"), metadata.get("size")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256) or not isinstance(size, int) or size <= 0:
        raise PackageError(f"{name}: Elasticsearch model metadata needs the .pt file's sha256 and size")
    vocab = metadata.get("vocabulary_file") or f"{name}.vocab.json"
    if not isinstance(vocab, str):
        raise PackageError(f"{name}: vocabulary_file must be a file name")
    return {f"{name}.pt": (sha256, size)}, vocab


def hf_download_plan(name: str, metadata: dict[str, Any]) -> dict[str, tuple[str, int]]:
    files = metadata.get("files")
    if not isinstance(files, dict):
        raise PackageError(f"{name}: Hugging Face entry needs 'files' with sha256 and size")
    tokenizers = [f for f in HF_TOKENIZER_FILES if f in files]
    missing = [f for f in HF_FILES if f not in files] + (
        [] if tokenizers else [" or ".join(HF_TOKENIZER_FILES)]
    )
    unknown = [f for f in files if f not in (*HF_FILES, *HF_TOKENIZER_FILES, *HF_OPTIONAL_FILES)]
    if missing or unknown:
        raise PackageError(
            f"{name}: Hugging Face entry must list {', '.join(missing) or 'known files only'}"
            + (f"; unknown files: {', '.join(unknown)}" if unknown else "")
        )
    plan = {}
    for file, entry in files.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise PackageError(f"{name}: entry for {file!r} has no sha256")
        if not isinstance(entry.get("size"), int):
            raise PackageError(f"{name}: entry for {file!r} has no size")
        plan[f"{name}.{file}"] = (entry["sha256"], entry["size"])
    return plan


def verified_files(name: str, metadata: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """{repository file: (sha256, size)} of what an ES or HF entry downloads with verification."""
    return es_download_plan(name, metadata)[0] if is_es_layout(metadata) else hf_download_plan(name, metadata)


def source_fingerprint(metadata: dict[str, Any], quantize: str) -> str:
    """Identifies what a cached conversion was made from: the repository metadata, the quantization and the
    converter version. A cached package with the same fingerprint is reused as it is."""
    key = json.dumps([metadata, quantize, CONVERTER_VERSION], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


def cached_conversion(target: Path, fingerprint: str) -> bool:
    try:
        package = ModelPackage.load(target, verify=False)
        if package.metadata.get("repository_fingerprint") != fingerprint:
            return False
        package.verify()
    except PackageError:
        return False
    return True


def install_converted(
    name: str,
    model_id: str,
    metadata: dict[str, Any],
    work: Path,
    fetch: Fetch,
    fetch_small: Fetched,
    converting: Callable[[], None] | None,
    quantize: str,
    cancel: threading.Event | None = None,
) -> Path:
    """Download an ES or HF entry into `work`, convert it in a child process and return the package directory
    (inside `work`; the caller moves it into the cache)."""
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, not {quantize!r}")
    package = work / "package"
    flags = ["--model-id", model_id, "--quantize", quantize]
    if quantize == "int8":
        flags += ["--int8-scope", "all"]  # the BERT-base speed-up needs the encoder quantized too
    if is_es_layout(metadata):
        plan, vocab = es_download_plan(name, metadata)
        for file, (sha256, size) in plan.items():
            fetch(file, work / "model.pt", sha256, size)
        fetch_small(vocab, work / "vocab.json", ES_VOCAB_MAX_BYTES)
        write_json(work / "es.metadata.json", metadata)
        command = ["convert-torchscript", str(work / "model.pt"), str(work / "vocab.json")]
        command += [str(work / "es.metadata.json"), str(package)]
    else:
        checkpoint = work / "checkpoint"
        checkpoint.mkdir()
        for file, (sha256, size) in hf_download_plan(name, metadata).items():
            fetch(file, checkpoint / file.removeprefix(f"{name}."), sha256, size)
        command = ["convert", str(checkpoint), str(package)]
        flags += ["--license", str(metadata.get("license", "unknown"))]
    if converting is not None:
        converting()
    run_conversion([*command, *flags], cancel)
    # metadata.json is not among the checksummed files, so these additions keep the package valid.
    recorded = {**ModelPackage.load(package, verify=False).metadata}
    recorded["repository_fingerprint"] = source_fingerprint(metadata, quantize)
    if not is_es_layout(metadata):  # the converter recorded the temp dir; say what it really was
        recorded["source"] = {"format": "huggingface", "files": metadata["files"]}
    write_json(package / METADATA_FILE, recorded)
    return package


def run_conversion(args: list[str], cancel: threading.Event | None = None) -> None:
    """`elser-model ARGS` in a child process; its error message becomes the PackageError's. Setting `cancel`
    kills the child (InstallCancelled)."""
    with tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "elser_server.model.cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            while (returncode := _wait(child, CANCEL_POLL_S)) is None:
                if cancel is not None and cancel.is_set():
                    raise InstallCancelled("the conversion was cancelled")
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        if returncode == 0:
            return
        stderr.seek(0)
        lines = stderr.read().decode("utf-8", "replace").strip().splitlines()
    errors = [line for line in lines if line.startswith("elser-model")]
    detail = errors[-1] if errors else "\n".join(lines[-5:]) or f"exit status {returncode}"
    raise PackageError(f"conversion failed: {detail}")


def _wait(child: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    try:
        return child.wait(timeout_s)
    except subprocess.TimeoutExpired:
        return None


def replace_dir(src: Path, target: Path) -> None:
    """Move directory `src` to `target`, replacing an older `target` (same filesystem: both renames are atomic)."""
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old."))
        target.rename(old / target.name)
        src.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        src.rename(target)
