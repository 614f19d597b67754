"""Accuracy of every backend × precision on the default model against the PyTorch fp32 reference (the golden
vectors): max |Δw| and whether token sets are identical (the fp32 bar), mean top-20 recall and mean cosine (the bar
for bf16 and int8: ≥ 0.99 and ≥ 0.999). The tests assert the bars (tests/runtime/test_accuracy_bars.py); this prints
the numbers behind docs/operating.md's "Choosing backend and precision".

    .venv/bin/python bench/accuracy.py [--golden ../shared/golden/splade-tiny.golden.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from elser_server.model.package import ModelPackage
from elser_server.model.repository import install
from elser_server.runtime.backends import is_quantized, openvino_installed
from elser_server.runtime.engine import Engine
from elser_server.runtime.layout import Layout

REPO_ROOT = Path(__file__).resolve().parents[1]


def measure(engine: Engine, golden: dict[str, Any]) -> dict[str, float | bool]:
    texts = list(golden["vectors"])
    got = [engine.to_tokens(r) for r in engine.embed(texts)]
    recalls, cosines, deltas, same_sets = [], [], [], True
    for text, have in zip(texts, got, strict=True):
        want = golden["vectors"][text]
        keys = sorted(set(have) | set(want))
        a = np.array([want.get(k, 0.0) for k in keys])
        b = np.array([have.get(k, 0.0) for k in keys])
        cosines.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
        top_want = sorted(want, key=lambda k: -want[k])[:20]
        recalls.append(len(set(top_want) & set(sorted(have, key=lambda k: -have[k])[:20])) / len(top_want))
        deltas.append(float(np.abs(a - b).max()))
        same_sets &= set(have) == set(want)
    return {
        "recall": float(np.mean(recalls)),
        "cosine": float(np.mean(cosines)),
        "max_delta": max(deltas),
        "same_sets": same_sets,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=REPO_ROOT / "models" / "repository")
    parser.add_argument(
        "--golden", type=Path, default=REPO_ROOT.parent / "shared" / "golden" / "splade-tiny.golden.json"
    )
    args = parser.parse_args()
    if not args.golden.is_file():
        sys.exit(f"no golden vectors at {args.golden} (--golden PATH)")
    golden = json.loads(args.golden.read_text(encoding="utf-8"))
    backends = ["onnxruntime"] + (["openvino"] if openvino_installed() else [])
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = ModelPackage.load(install(args.repo, ".elser_model_2", Path(tmp)))
        int8 = ModelPackage.load(install(args.repo, ".elser_model_2_int8", Path(tmp)))
        print(
            f"{'package':<22} {'backend':<12} {'precision':<10} {'recall@20':>9} {'cosine':>9} {'max|Δw|':>9} sets"
        )
        for package in (fp32, int8):
            precisions = ["int8"] if is_quantized(package) else ["fp32", "bf16", "int8"]
            for backend in backends:
                for precision in precisions:
                    if backend == "onnxruntime" and precision == "bf16":
                        continue
                    engine = Engine(package, 1, 1, layout=Layout(backend, precision))
                    ran = engine.sessions[0].layout.precision
                    m = measure(engine, golden)
                    engine.close()
                    print(
                        f"{package.model_id:<22} {backend:<12} {ran:<10} {m['recall']:>9.4f} {m['cosine']:>9.5f} "
                        f"{m['max_delta']:>9.2e} {'identical' if m['same_sets'] else 'differ'}"
                    )


if __name__ == "__main__":
    main()
