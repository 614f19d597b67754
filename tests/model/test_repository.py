"""Package verification and the flat model repository (publish / install)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from elser_server.model.package import ModelPackage, PackageError
from elser_server.model.repository import (
    fetch_verified,
    install,
    open_repository,
    publish,
    read_metadata,
    repo_name,
)


def _copy(package: ModelPackage, dst: Path) -> Path:
    shutil.copytree(package.path, dst)
    return dst


def test_load_verifies_checksums(tiny_package: ModelPackage, tmp_path: Path) -> None:
    pkg = _copy(tiny_package, tmp_path / "p")
    assert ModelPackage.load(pkg).model_id == ".elser_model_2"
    with (pkg / "tokenizer.json").open("ab") as f:
        f.write(b" ")
    with pytest.raises(PackageError, match="checksum mismatch"):
        ModelPackage.load(pkg)
    ModelPackage.load(pkg, verify=False)  # explicit opt-out still loads


def test_missing_files_are_clear_errors(tiny_package: ModelPackage, tmp_path: Path) -> None:
    pkg = _copy(tiny_package, tmp_path / "p")
    (pkg / "model.onnx").unlink()
    with pytest.raises(PackageError, match=r"missing file model\.onnx"):
        ModelPackage.load(pkg)
    with pytest.raises(PackageError, match="not a model package"):
        ModelPackage.load(tmp_path)
    (pkg / "metadata.json").write_text("{not json")
    with pytest.raises(PackageError, match="not valid JSON"):
        ModelPackage.load(pkg)


def test_tiny_repository_layout(tiny_repository: Path) -> None:
    names = sorted(p.name for p in tiny_repository.iterdir())
    assert names == sorted(
        f"{n}.{f}"
        for n in ("elser_model_2", "elser_model_2_linux-x86_64")
        for f in ("metadata.json", "model.onnx", "tokenizer.json")
    )
    assert (
        read_metadata(tiny_repository, ".elser_model_2_linux-x86_64")["model_id"]
        == ".elser_model_2_linux-x86_64"
    )


def test_install_round_trip_and_reuse(tiny_repository: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    target = install(tiny_repository, ".elser_model_2_linux-x86_64", cache)
    assert target == cache / "elser_model_2_linux-x86_64"
    package = ModelPackage.load(target)
    assert package.model_id == ".elser_model_2_linux-x86_64"
    mtime = (target / "model.onnx").stat().st_mtime_ns
    assert install(tiny_repository, ".elser_model_2_linux-x86_64", cache) == target
    assert (target / "model.onnx").stat().st_mtime_ns == mtime, "an intact install is reused"
    assert [p.name for p in cache.iterdir()] == ["elser_model_2_linux-x86_64"], "no temp dirs left behind"


def test_install_rejects_corrupt_file_atomically(tiny_package: ModelPackage, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    publish(tiny_package.path, repo, ".m")
    with (repo / "m.model.onnx").open("r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(PackageError, match="corrupt"):
        install(repo, ".m", tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_install_replaces_outdated_copy(tiny_package: ModelPackage, tmp_path: Path) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    publish(tiny_package.path, repo, ".m")
    target = install(repo, ".m", cache)
    meta = json.loads((repo / "m.metadata.json").read_text())
    meta["description"] = "new release"
    (repo / "m.metadata.json").write_text(json.dumps(meta))
    assert install(repo, ".m", cache) == target
    assert ModelPackage.load(target).metadata["description"] == "new release"


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "..", "", ".", "x y"])
def test_ids_that_escape_are_refused(bad_id: str, tiny_package: ModelPackage, tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="invalid model id"):
        repo_name(bad_id)
    with pytest.raises(PackageError):
        publish(tiny_package.path, tmp_path, bad_id)


def test_file_names_that_escape_are_refused(tiny_package: ModelPackage, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    publish(tiny_package.path, repo, ".m")
    meta = json.loads((repo / "m.metadata.json").read_text())
    meta["files"]["../../evil"] = {"sha256": "0" * 64, "size": 1}
    (repo / "m.metadata.json").write_text(json.dumps(meta))
    with pytest.raises(PackageError, match="invalid file name"):
        install(repo, ".m", tmp_path / "cache")
    assert not (tmp_path / "evil").exists()


def test_unknown_model_is_a_clear_error(tiny_repository: Path, tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="not found"):
        install(tiny_repository, ".nope", tmp_path)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux) to fill a device")
def test_a_full_device_is_a_clear_error(tiny_repository: Path) -> None:
    source = open_repository(tiny_repository)
    name = f"{repo_name('.elser_model_2')}.model.onnx"
    entry = read_metadata(tiny_repository, ".elser_model_2")["files"]["model.onnx"]
    with pytest.raises(PackageError, match=r"no space left on the device of /dev while installing"):
        fetch_verified(source, name, Path("/dev/full"), entry["sha256"], entry["size"], lambda n: None)
