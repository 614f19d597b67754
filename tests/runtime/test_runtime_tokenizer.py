from __future__ import annotations

import numpy as np
import pytest
from elser_server.model.package import ModelPackage
from elser_server.runtime.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tok(tiny_package: ModelPackage) -> Tokenizer:
    return Tokenizer.from_file(tiny_package.tokenizer_path)


def test_special_tokens_and_dtype(tok: Tokenizer) -> None:
    (enc,) = tok.encode_batch(["The Dog"])
    assert enc.ids.dtype == np.int64
    assert tok.id_to_tokens(enc.ids) == ["[CLS]", "the", "dog", "[SEP]"]
    assert not enc.is_truncated


def test_truncation_flag_is_exact(tok: Tokenizer) -> None:
    exact, over = tok.encode_batch(["a " * 510, "a " * 511])
    assert (len(exact), exact.is_truncated) == (512, False)
    assert (len(over), over.is_truncated) == (512, True)


@pytest.mark.parametrize(
    "text",
    [
        "the dog " * 20_000,  # whitespace-separated: prefix path
        "dog" * 40_000,  # one giant word: no whitespace to cut at
        "x" * 9000 + " the dog" * 300,  # long first word, then enough tokens to overflow
        "the " * 2040 + "x" * 90_000,  # cut lands before a giant word
    ],
)
def test_long_text_same_as_full_encoding(tok: Tokenizer, text: str) -> None:
    (enc,) = tok.encode_batch([text])
    full = tok._tok.encode(text)
    assert enc.ids.tolist() == full.ids
    assert enc.is_truncated == bool(full.overflowing)


def test_100k_chars_truncated(tok: Tokenizer) -> None:
    (enc,) = tok.encode_batch(["word " * 20_000])
    assert enc.is_truncated and len(enc) == 512


def test_odd_text(tok: Tokenizer) -> None:
    encs = tok.encode_batch(["", " \n\t", "\x00\x07ctrl", "日本語 ελληνικά 🎉", "\u200b"])
    assert all(e.ids[0] == tok.encode_batch([""])[0].ids[0] for e in encs)


def test_lone_surrogate_names_the_input(tok: Tokenizer) -> None:
    with pytest.raises(ValueError, match=r"input 2 is not valid Unicode.*character 3"):
        tok.encode_batch(["ok", "fine", "bad\ud800"])
