"""The model package: a directory with `model.onnx`, `tokenizer.json` and `metadata.json`.

`metadata.json` lists the sha256 and size of every other file, so a package (or a repository copy of it) can be
verified without trusting where it came from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
REQUIRED_FILES = (MODEL_FILE, TOKENIZER_FILE)
_CHUNK = 1 << 20


class PackageError(Exception):
    """A model package or repository entry is missing, corrupt or malformed."""


class InstallCancelled(Exception):
    """An install stopped on request (the server is shutting down); nothing was installed."""


class ModelFileNotFound(PackageError):
    """The repository has no such file (HTTP 404 or a missing local file)."""


def sha256_stream(stream: BinaryIO) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_file(path: Path) -> tuple[str, int]:
    with path.open("rb") as f:
        return sha256_stream(f)


def file_entries(directory: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The `files` section of metadata.json for the given files of `directory`."""
    entries: dict[str, dict[str, Any]] = {}
    for name in sorted(names):
        digest, size = sha256_file(directory / name)
        entries[name] = {"sha256": digest, "size": size}
    return entries


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically so a crash never leaves half a metadata file behind."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def parse_metadata(raw: bytes, origin: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PackageError(f"{origin}: metadata is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise PackageError(f"{origin}: metadata must be a JSON object")
    files = data.get("files")
    if not isinstance(files, dict) or not all(n in files for n in REQUIRED_FILES):
        raise PackageError(f"{origin}: metadata must list {', '.join(REQUIRED_FILES)} under 'files'")
    for name, entry in files.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise PackageError(f"{origin}: metadata entry for {name!r} has no sha256")
        if not isinstance(entry.get("size"), int):
            raise PackageError(f"{origin}: metadata entry for {name!r} has no size")
    for key in ("model_id", "vocab_size", "max_sequence_length"):
        if key not in data:
            raise PackageError(f"{origin}: metadata has no {key!r}")
    return data


@dataclass(frozen=True)
class ModelPackage:
    path: Path
    metadata: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> ModelPackage:
        """Read a package directory; with `verify`, check every file's size and sha256 against the metadata."""
        root = Path(path)
        meta_path = root / METADATA_FILE
        if not meta_path.is_file():
            raise PackageError(f"{root}: not a model package (no {METADATA_FILE})")
        package = cls(root, parse_metadata(meta_path.read_bytes(), str(meta_path)))
        for name in package.metadata["files"]:
            if not (root / name).is_file():
                raise PackageError(f"{root}: missing file {name}")
        if verify:
            package.verify()
        return package

    def verify(self) -> None:
        for name, entry in self.metadata["files"].items():
            digest, size = sha256_file(self.path / name)
            if size != entry["size"] or digest != entry["sha256"]:
                raise PackageError(
                    f"{self.path / name}: checksum mismatch (expected sha256 {entry['sha256']} and "
                    f"{entry['size']} bytes, found {digest} and {size} bytes)"
                )

    @property
    def model_id(self) -> str:
        return str(self.metadata["model_id"])

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER_FILE

    @property
    def vocab_size(self) -> int:
        return int(self.metadata["vocab_size"])

    @property
    def max_sequence_length(self) -> int:
        return int(self.metadata["max_sequence_length"])
