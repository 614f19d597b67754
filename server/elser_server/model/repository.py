"""Model repositories: a flat directory laid out like Elasticsearch's model repository.

`<name>.metadata.json` plus `<name>.<file>` for each package file, where `<name>` is the model id without its
leading dot (`.elser_model_2` → `elser_model_2.model.onnx`). `install` fetches through a `FileSource` (a directory,
`file://` or `http(s)://`) and also takes Elasticsearch's TorchScript entries and Hugging Face checkpoints,
converting them once (`foreign.py`)."""

from __future__ import annotations

import errno
import hashlib
import json
import re
import shutil
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from elser_server.model.foreign import (
    cached_conversion,
    install_converted,
    is_es_layout,
    is_hf_layout,
    replace_dir,
    source_fingerprint,
    verified_files,
)
from elser_server.model.http_source import HttpSource
from elser_server.model.package import (
    METADATA_FILE,
    InstallCancelled,
    ModelFileNotFound,
    ModelPackage,
    PackageError,
    parse_metadata,
    write_json,
)

_ID = re.compile(r"\.?[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_CHUNK = 64 << 10  # small reads: a cancelled install stops within one of them


class FileSource(Protocol):
    """Where repository files come from (a local directory now; HTTP later)."""

    def describe(self) -> str: ...

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]: ...


class LocalSource:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        path = self.root / _checked_file(name)
        try:
            f = path.open("rb")
        except FileNotFoundError:
            raise ModelFileNotFound(f"{path}: not found in the model repository") from None
        with f:
            yield f


Progress = Callable[[int, int], None]  # (bytes done, bytes total) of the whole package


def open_repository(location: FileSource | str | Path) -> FileSource:
    """A repository location: a directory, a `file://` URL or an `http(s)://` URL (ES's schemes)."""
    if not isinstance(location, str | Path):
        return location
    text = str(location)
    if text.startswith(("http://", "https://")):
        return HttpSource(text)
    if text.startswith("file://"):
        return LocalSource(urllib.parse.urlsplit(text).path)
    return LocalSource(text)


def _checked_id(model_id: str) -> str:
    if not _ID.fullmatch(model_id) or ".." in model_id:
        raise PackageError(f"invalid model id {model_id!r}")
    return model_id


def _checked_file(name: str) -> str:
    if not _FILE.fullmatch(name) or ".." in name:
        raise PackageError(f"invalid file name {name!r} (must stay inside the directory)")
    return name


def repo_name(model_id: str) -> str:
    """Repository file prefix for a model id: the id without its leading dot."""
    return _checked_id(model_id).removeprefix(".")


def publish(package_dir: str | Path, repo_dir: str | Path, model_id: str) -> Path:
    """Copy a (verified) package into the repository under `model_id`; the metadata goes last, so a reader never
    sees metadata whose files are not there yet. Returns the metadata path."""
    package = ModelPackage.load(package_dir)
    name = repo_name(model_id)
    repo = Path(repo_dir)
    repo.mkdir(parents=True, exist_ok=True)
    for file in package.metadata["files"]:
        dst = repo / f"{name}.{_checked_file(file)}"
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.copyfile(package.path / file, tmp)
        tmp.replace(dst)
    metadata = dict(package.metadata, model_id=model_id)
    meta_path = repo / f"{name}.{METADATA_FILE}"
    write_json(meta_path, metadata)
    return meta_path


def read_metadata(source: FileSource | str | Path, model_id: str) -> dict[str, Any]:
    src = open_repository(source)
    with src.open(f"{repo_name(model_id)}.{METADATA_FILE}") as f:
        return parse_metadata(f.read(), f"{src.describe()}: {model_id}")


def read_entry(source: FileSource | str | Path, model_id: str) -> dict[str, Any]:
    """A repository entry's metadata in whichever layout it has (ours, Elasticsearch's or Hugging Face's)."""
    src = open_repository(source)
    origin = f"{src.describe()}: {model_id}"
    with src.open(f"{repo_name(model_id)}.{METADATA_FILE}") as f:
        raw = f.read()
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PackageError(f"{origin}: metadata is not valid JSON: {e}") from e
    if isinstance(data, dict) and (is_es_layout(data) or is_hf_layout(data)):
        return data
    return parse_metadata(raw, origin)


def remove_install_leftovers(cache_dir: str | Path) -> list[Path]:
    """Delete what installs killed mid-way left in `cache_dir` (their `.<name>.*` work directories, never
    used: a package only appears by a rename once complete) and return what went. Run it before any install
    starts: the cache belongs to one server process."""
    cache = Path(cache_dir)
    if not cache.is_dir():
        return []
    removed = []
    for entry in cache.iterdir():
        if entry.name.startswith(".") and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def install(
    repo: FileSource | str | Path,
    model_id: str,
    cache_dir: str | Path,
    progress: Progress | None = None,
    *,
    converting: Callable[[], None] | None = None,
    quantize: str = "none",
    cancel: threading.Event | None = None,
) -> Path:
    """Install `model_id` from a repository into `cache_dir/<name>` and return that package directory.

    Files are copied into a temp directory inside cache_dir with their sha256 checked on the way, then renamed into
    place, so a crash or a corrupt download never leaves a half-installed package. An installed package whose
    metadata matches the repository's is reused. Elasticsearch (TorchScript) and Hugging Face entries are
    downloaded, converted in a child process (`converting` is called when that starts; `quantize` applies) and
    cached as a package: the same entry is converted only once. Setting `cancel` stops a download at its next
    piece and kills a running conversion (InstallCancelled)."""
    source = open_repository(repo)
    name = repo_name(model_id)
    metadata = read_entry(source, model_id)
    foreign = is_es_layout(metadata) or is_hf_layout(metadata)
    files = {} if foreign else metadata["files"]
    for file in files:
        _checked_file(file)
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / name
    if foreign and cached_conversion(target, source_fingerprint(metadata, quantize)):
        return target
    if not foreign and (target / METADATA_FILE).is_file():
        try:
            installed = ModelPackage.load(target, verify=False)
            if installed.metadata == metadata:
                installed.verify()
                return target
        except PackageError:
            pass  # damaged or outdated: reinstall below
    for stale in cache.glob(f".{name}.*"):  # left by an install that was killed: never used, only removed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=f".{name}."))
    if foreign:
        total = sum(size for _, size in verified_files(name, metadata).values())
    else:
        total = sum(int(entry["size"]) for entry in files.values())
    done = 0

    def advanced(n: int) -> None:
        nonlocal done
        if cancel is not None and cancel.is_set():
            raise InstallCancelled(f"installing {model_id} was cancelled")
        done += n
        if progress is not None:
            progress(done, total)

    def fetch(file: str, dst: Path, sha256: str, size: int) -> None:
        fetch_verified(source, _checked_file(file), dst, sha256, size, advanced)

    def fetch_small(file: str, dst: Path, max_bytes: int) -> None:
        with source.open(_checked_file(file)) as src:
            data = src.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise PackageError(f"{source.describe()}: {file} is larger than {max_bytes} bytes")
        dst.write_bytes(data)

    try:
        if foreign:
            package = install_converted(
                name, model_id, metadata, tmp, fetch, fetch_small, converting, quantize, cancel
            )
            replace_dir(package, target)
        else:
            for file, entry in files.items():
                fetch_verified(source, f"{name}.{file}", tmp / file, entry["sha256"], entry["size"], advanced)
            write_json(tmp / METADATA_FILE, dict(metadata))
            replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def fetch_verified(
    source: FileSource, name: str, dst: Path, sha256: str, size: int, advanced: Callable[[int], None]
) -> None:
    """Copy `name` from `source` to `dst`, calling `advanced(n)` per piece; PackageError when the size or sha256
    differ, or when the disk is full (naming the device)."""
    digest = hashlib.sha256()
    written = 0
    try:
        with source.open(name) as src, dst.open("wb") as out:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                written += len(chunk)
                out.write(chunk)
                advanced(len(chunk))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise PackageError(
                f"no space left on the device of {dst.parent} while installing {name} "
                f"({size} bytes needed for this file)"
            ) from exc
        raise
    if written != size or digest.hexdigest() != sha256:
        raise PackageError(
            f"{source.describe()}: {name} is corrupt (expected sha256 {sha256} and {size} bytes, "
            f"got {digest.hexdigest()} and {written} bytes)"
        )
