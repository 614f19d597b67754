"""The default model against the PyTorch reference vectors (tests/data), and odd input on it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from elser_server.model.package import ModelPackage
from elser_server.runtime.engine import Engine

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def fp32_engine(default_package: ModelPackage) -> Engine:
    return Engine(default_package, num_allocations=2, num_threads=1)


def _embed_golden(engine: Engine, golden: dict[str, Any]) -> list[tuple[str, dict[str, float], Any]]:
    texts = list(golden["vectors"])
    return [(t, engine.to_tokens(r), r) for t, r in zip(texts, engine.embed(texts), strict=True)]


def test_fp32_reproduces_every_golden_vector(fp32_engine: Engine, golden: dict[str, Any]) -> None:
    assert golden["meta"]["model_sha256"] == fp32_engine.package.metadata["source"]["weights_sha256"]
    results = _embed_golden(fp32_engine, golden)
    assert len(results) == len(golden["vectors"]) == 51
    for text, got, r in results:
        want = golden["vectors"][text]
        assert set(got) == set(want), f"{text[:40]!r}: token sets differ by {set(got) ^ set(want)}"
        assert max(abs(got[k] - want[k]) for k in want) <= 1e-4, text[:40]
        assert list(got) == sorted(got, key=lambda k: -got[k]), "descending weight order"
        assert r.is_truncated == golden["truncated"][text]
        assert r.n_tokens == golden["n_tokens"][text]
    assert sum(golden["truncated"].values()) == 3


def test_int8_accuracy_against_golden(default_int8_package: ModelPackage, golden: dict[str, Any]) -> None:
    engine = Engine(default_int8_package, num_allocations=1, num_threads=1)
    cosines, recalls = [], []
    for text, got, _ in _embed_golden(engine, golden):
        want = golden["vectors"][text]
        keys = sorted(set(got) | set(want))
        a = np.array([want.get(k, 0.0) for k in keys])
        b = np.array([got.get(k, 0.0) for k in keys])
        cosines.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
        top_want = sorted(want, key=lambda k: -want[k])[:20]
        top_got = set(sorted(got, key=lambda k: -got[k])[:20])
        recalls.append(len(set(top_want) & top_got) / len(top_want))
    assert np.mean(recalls) >= 0.97, f"mean top-20 recall {np.mean(recalls):.4f}"
    assert np.mean(cosines) >= 0.995, f"mean cosine {np.mean(cosines):.5f}"
    recorded = default_int8_package.metadata["accuracy_vs_fp32"]
    assert recorded["mean_cosine"] >= 0.995 and recorded["mean_top20_recall"] >= 0.97


def test_odd_input(fp32_engine: Engine, golden: dict[str, Any]) -> None:
    odd = [
        "",
        "   \t\n ",
        "tab\tnull\x00bell\x07 escape\x1b[0m end",
        "Ελληνικά русский 中文 العربية हिन्दी mixed",
        "emoji 🎉🔥👍🏽 and ZWJ 👨‍👩‍👧",
        "x" * 100_000,
        "word " * 20_000,
    ]
    results = fp32_engine.embed(odd)
    assert len(results) == len(odd)
    assert [r.is_truncated for r in results] == [False, False, False, False, False, False, True]
    assert results[-1].n_tokens == 512
    empty = fp32_engine.to_tokens(results[0])
    assert len(empty) >= 5
    for key in ("", " "):
        if key in golden["vectors"]:
            want = golden["vectors"][key]
            got = fp32_engine.to_tokens(results[0] if key == "" else results[1])
            assert set(got) == set(want)


def test_lone_surrogate_is_a_clear_error(fp32_engine: Engine) -> None:
    with pytest.raises(ValueError, match=r"input 1 is not valid Unicode"):
        fp32_engine.embed(["fine", "broken \udc80 text"])
    assert len(fp32_engine.embed(["still works"])) == 1
