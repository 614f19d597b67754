"""Repository entries converted on install without torch: Hugging Face checkpoints; and the torch-free parts of the
TorchScript import (ES tokenization settings, expansion_type)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from elser_server.model.checkpoint import CheckpointError, tiny_vocab
from elser_server.model.convert import convert
from elser_server.model.package import ModelPackage, PackageError, file_entries, sha256_file
from elser_server.model.repository import install
from elser_server.model.torchscript import BertTokenization, expansion_type
from elser_server.runtime.backends.onnxruntime import SpladeSession
from elser_server.runtime.tokenizer import Tokenizer


def publish_hf(checkpoint: Path, repo: Path, name: str = "elser_model_2") -> dict[str, object]:
    """The Hugging Face layout: `<name>.<file>` per checkpoint file, metadata with format and checksums."""
    repo.mkdir(parents=True, exist_ok=True)
    files = ("config.json", "model.safetensors", "tokenizer.json")
    for file in files:
        (repo / f"{name}.{file}").write_bytes((checkpoint / file).read_bytes())
    metadata: dict[str, object] = {
        "format": "huggingface",
        "description": "tiny random SPLADE",
        "license": "Apache-2.0",
        "files": file_entries(checkpoint, files),
    }
    (repo / f"{name}.metadata.json").write_text(json.dumps(metadata))
    return metadata


def publish_hf_files(repo: Path) -> object:
    return json.loads((repo / "elser_model_2.metadata.json").read_text())["files"]


def test_hf_checkpoint_in_repository_is_converted_once(tiny_checkpoint: Path, tmp_path: Path) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    publish_hf(tiny_checkpoint, repo)
    converting: list[bool] = []
    progress: list[tuple[int, int]] = []
    target = install(
        f"file://{repo}",
        ".elser_model_2",
        cache,
        lambda done, total: progress.append((done, total)),
        converting=lambda: converting.append(True),
    )
    package = ModelPackage.load(target)
    assert package.model_id == ".elser_model_2"
    assert package.metadata["license"] == "Apache-2.0"
    assert package.metadata["source"] == {"format": "huggingface", "files": publish_hf_files(repo)}
    assert converting == [True]
    total = sum(p.stat().st_size for p in repo.iterdir() if not p.name.endswith("metadata.json"))
    assert progress[-1] == (total, total)

    direct = convert(tiny_checkpoint, tmp_path / "direct", model_id=".elser_model_2")
    ids = [e.ids for e in Tokenizer.from_file(package.tokenizer_path).encode_batch(["a dog", "the city"])]
    np.testing.assert_array_equal(
        SpladeSession(package).run_batched(ids), SpladeSession(direct).run_batched(ids)
    )

    mtime = (target / "model.onnx").stat().st_mtime_ns
    assert install(repo, ".elser_model_2", cache, converting=lambda: converting.append(True)) == target
    assert converting == [True] and (target / "model.onnx").stat().st_mtime_ns == mtime  # reused
    install(repo, ".elser_model_2", cache, quantize="int8")  # another quantization: converted again
    assert ModelPackage.load(target).metadata["quantization"].startswith("int8")


def test_hf_entry_with_corrupt_weights_installs_nothing(tiny_checkpoint: Path, tmp_path: Path) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    publish_hf(tiny_checkpoint, repo)
    weights = repo / "elser_model_2.model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"oops")
    with pytest.raises(PackageError, match=r"model\.safetensors is corrupt .*sha256"):
        install(repo, ".elser_model_2", cache)
    assert list(cache.iterdir()) == []


def test_hf_entry_must_list_a_checkpoint(tiny_checkpoint: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    metadata = publish_hf(tiny_checkpoint, repo)
    files = dict(metadata["files"])  # type: ignore[call-overload]
    del files["tokenizer.json"]
    files["weights.bin"] = {"sha256": "0" * 64, "size": 1}
    (repo / "elser_model_2.metadata.json").write_text(json.dumps({**metadata, "files": files}))
    with pytest.raises(PackageError, match=r"tokenizer\.json or vocab\.txt.*unknown files: weights\.bin"):
        install(repo, ".elser_model_2", tmp_path / "cache")


def test_es_tokenization_settings() -> None:
    vocab = tiny_vocab()
    settings = BertTokenization.from_metadata(
        {
            "inference_config": {
                "text_expansion": {
                    "tokenization": {
                        "bert": {"do_lower_case": True, "max_sequence_length": 8, "truncate": "first"}
                    }
                }
            }
        }
    )
    tok = settings.tokenizer(vocab)
    enc = tok.encode("The DOG " * 10)
    assert enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]" and len(enc.ids) == 8
    assert "the" in enc.tokens and "dog" in enc.tokens
    cased = BertTokenization(do_lower_case=False, with_special_tokens=False).tokenizer(vocab)
    enc = cased.encode("dog DOG")
    assert enc.tokens[0] == "dog" and "[CLS]" not in enc.tokens and "[UNK]" in enc.tokens
    with pytest.raises(CheckpointError, match="truncate 'none' is not supported"):
        BertTokenization.from_metadata(
            {"inference_config": {"text_expansion": {"tokenization": {"bert": {"truncate": "none"}}}}}
        )
    with pytest.raises(CheckpointError, match="only BERT tokenization"):
        BertTokenization.from_metadata(
            {"inference_config": {"text_expansion": {"tokenization": {"roberta": {}}}}}
        )


def test_expansion_type_from_the_metadata() -> None:
    def meta(**task: object) -> dict[str, object]:
        return {"inference_config": {"text_expansion": {"tokenization": {"bert": {}}, **task}}}

    assert expansion_type(meta()) is None  # eland 9.2 writes none: the output's rank decides
    assert expansion_type(meta(expansion_type="elser")) == "elser"
    assert expansion_type(meta(expansion_type="splade")) == "splade"
    with pytest.raises(
        CheckpointError, match=r"expansion_type 'dense' is not supported \(expected one of elser, splade\)"
    ):
        expansion_type(meta(expansion_type="dense"))


def test_pt_checksum_is_checked_before_torch_is_needed(tmp_path: Path) -> None:
    from elser_server.model.torchscript import convert_torchscript

    (tmp_path / "m.pt").write_bytes(b"x")
    (tmp_path / "v.json").write_text(json.dumps({"vocabulary": tiny_vocab()}))
    meta = {
        "packaged_model_id": "m",
        "sha256": "0" * 64,
        "inference_config": {"text_expansion": {"tokenization": {"bert": {}}}},
    }
    (tmp_path / "m.json").write_text(json.dumps(meta))
    digest, _ = sha256_file(tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=f"checksum mismatch \\(sha256 {digest}"):
        convert_torchscript(tmp_path / "m.pt", tmp_path / "v.json", tmp_path / "m.json", tmp_path / "out")
