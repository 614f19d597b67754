from __future__ import annotations

import gc
import random
import weakref

import numpy as np
import pytest
import tokenizers
from elser_server.model.package import ModelPackage
from elser_server.runtime.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tok(tiny_package: ModelPackage) -> Tokenizer:
    return Tokenizer.from_file(tiny_package.tokenizer_path)


@pytest.fixture(scope="module")
def reference(tiny_package: ModelPackage) -> tokenizers.Tokenizer:
    """The same tokenizer file, encoding every text in full (truncated to 512 tokens): what Tokenizer must match."""
    inner = tokenizers.Tokenizer.from_file(str(tiny_package.tokenizer_path))
    inner.enable_truncation(max_length=512)
    return inner


def test_special_tokens_and_dtype(tok: Tokenizer) -> None:
    (enc,) = tok.encode_batch(["The Dog"])
    assert enc.ids.dtype == np.int64
    assert tok.id_to_tokens(enc.ids) == ["[CLS]", "the", "dog", "[SEP]"]
    assert not enc.is_truncated


def test_truncation_flag_is_exact(tok: Tokenizer) -> None:
    exact, over = tok.encode_batch(["a " * 510, "a " * 511])
    assert (len(exact), exact.is_truncated) == (512, False)
    assert (len(over), over.is_truncated) == (512, True)


def _assert_same_as_full(tok: Tokenizer, reference: tokenizers.Tokenizer, text: str) -> None:
    (enc,) = tok.encode_batch([text])
    full = reference.encode(text)
    assert enc.ids.tolist() == full.ids
    assert enc.is_truncated == bool(full.overflowing)


@pytest.mark.parametrize(
    "text",
    [
        "the dog " * 20_000,  # whitespace-separated: prefix path
        "dog" * 40_000,  # one giant word: no whitespace to cut at
        "x" * 9000 + " the dog" * 300,  # long first word, then enough tokens to overflow
        "the " * 2040 + "x" * 90_000,  # cut lands before a giant word
    ],
)
def test_long_text_same_as_full_encoding(tok: Tokenizer, reference: tokenizers.Tokenizer, text: str) -> None:
    _assert_same_as_full(tok, reference, text)


CUT = 512 * 16  # characters a long text is first cut to (Tokenizer.prefix)


@pytest.mark.parametrize(
    ("text", "shortcut"),
    [
        pytest.param("日本語中文字" * 16_667, True, id="cjk-100k"),
        pytest.param("a," * 50_000, True, id="a-comma-100k"),
        pytest.param("-" * 100_000, True, id="dashes-100k"),
        pytest.param("x" * 100_000, False, id="one-word-100k"),
        pytest.param("ひらがな" * 25_000, False, id="kana-100k"),  # kana are no CJK ideographs: one word
        pytest.param(
            ("Hello, 世界! foo-bar\u3000baz。 [MASK] 日本\tqux" * 4000)[:100_000], True, id="mixed-100k"
        ),
        pytest.param("a," * (CUT // 2), False, id="at-cut-length"),
        pytest.param("a," * (CUT // 2) + "b", True, id="one-over-cut-length"),
        pytest.param(("x" * 195 + " ") * 510, True, id="100k-510-tokens"),  # not truncated: prefix, then full
        pytest.param(("x" * 195 + " ") * 511, True, id="100k-511-tokens"),  # truncated by the last word only
    ],
)
def test_prefix_shortcut_same_as_full_encoding(
    tok: Tokenizer, reference: tokenizers.Tokenizer, text: str, shortcut: bool
) -> None:
    prefix = tok.prefix(text)
    assert (prefix is not text) == shortcut
    assert text.startswith(prefix) and (len(prefix) < len(text)) == shortcut
    _assert_same_as_full(tok, reference, text)


def _control_trap(sep: str) -> str:
    """A text whose character CUT is `sep`, in the middle of a word: 500 one-token words, a giant [UNK] word, then
    30 'b's, `sep`, 80 'b's and more words. Were `sep` taken for a word boundary, the prefix's last word would be
    30 'b's (30 tokens, 9 of them kept) where the full text has one 110-character word ([UNK])."""
    head = "a " * 500
    text = head + "q" * (CUT - len(head) - 31) + " " + "b" * 30 + sep + "b" * 80 + " a" * 2000
    assert text[CUT] == sep
    return text


@pytest.mark.parametrize("sep", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85"])
def test_control_characters_are_no_boundary(
    tok: Tokenizer, reference: tokenizers.Tokenizer, sep: str
) -> None:
    # Python calls these whitespace, but BertNormalizer removes them as control characters, joining their neighbours.
    assert sep.isspace() and not tok.ends_word(sep)
    _assert_same_as_full(tok, reference, _control_trap(sep))
    _assert_same_as_full(tok, reference, _control_trap(" "))  # the same text with a real space cuts there


def test_boundaries_come_from_the_tokenizer(tok: Tokenizer) -> None:
    for c in " \t\n\r\xa0\u3000,-[]。、日字\U00020000":
        assert tok.ends_word(c), repr(c)
    for c in "xZéひ\u0301\u0903\x00\x0b\ufffd\u200b\uf900":
        assert not tok.ends_word(c), repr(c)


def test_prefix_never_splits_an_added_token(tok: Tokenizer, reference: tokenizers.Tokenizer) -> None:
    # "[" ends a word, but here it opens "[MASK]", which the full text encodes as one token: the cut goes before it.
    text = "a " * (CUT // 2 - 1) + "[MASK]" + " a" * 1000
    assert text[CUT - 2 : CUT + 4] == "[MASK]"
    assert tok.prefix(text) == text[: CUT - 2]
    _assert_same_as_full(tok, reference, text)


def test_other_pre_tokenizers_encode_in_full(tiny_package: ModelPackage) -> None:
    inner = tokenizers.Tokenizer.from_file(str(tiny_package.tokenizer_path))
    inner.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok = Tokenizer(inner)
    inner.enable_truncation(max_length=512)  # the reference: the same tokenizer, on the full text
    text = "the dog, " * 20_000
    assert tok.prefix(text) is text
    _assert_same_as_full(tok, inner, text)


def test_100k_chars_truncated(tok: Tokenizer) -> None:
    (enc,) = tok.encode_batch(["word " * 20_000])
    assert enc.is_truncated and len(enc) == 512


def test_odd_text(tok: Tokenizer) -> None:
    encs = tok.encode_batch(["", " \n\t", "\x00\x07ctrl", "日本語 ελληνικά 🎉", "\u200b"])
    assert all(e.ids[0] == tok.encode_batch([""])[0].ids[0] for e in encs)


def test_lone_surrogate_names_the_input(tok: Tokenizer) -> None:
    with pytest.raises(ValueError, match=r"input 2 is not valid Unicode.*character 3"):
        tok.encode_batch(["ok", "fine", "bad\ud800"])


# Single characters, and a few longer pieces.
_FUZZ_PIECES = [
    *"ab xy,.-[]\t\n\x0b\x1c\x85\x00\u0301\u0316\u0903日ひ\u3000。\xa0éİΣ\u2e5d\uf900\ufffd\u200b🎉\u037e가ﬁ"
]
_FUZZ_PIECES += ["[MASK]", "[MAS", "[SEP]"]


def test_prefix_shortcut_fuzz(tok: Tokenizer, reference: tokenizers.Tokenizer) -> None:
    """Random texts whose cut falls among tricky characters right where ~510 tokens have been used, so the words
    at the cut are among the kept tokens: always the full encoding's result. (With Python's isspace and Unicode
    categories in place of ends_word, 2 of these 200 texts come out wrong.)"""
    rng = random.Random(7)
    for _ in range(200):
        head = "a " * rng.randint(480, 515)
        chunk = "".join(
            rng.choice(_FUZZ_PIECES) if rng.random() < 0.5 else rng.choice("bcdefg") * rng.randint(1, 40)
            for _ in range(rng.randint(50, 200))
        )
        giant = "q" * (CUT - rng.randint(0, 300) - len(head))
        text = head + giant + chunk + rng.choice(["", " z" * 3000, "z" * 3000])
        _assert_same_as_full(tok, reference, text)


def test_a_tokenizer_needs_no_cyclic_collection(tiny_package: ModelPackage) -> None:
    """Freed as soon as its last reference goes: a reference cycle would keep its native memory until a full
    collection, and endpoint churn (a model unloaded and loaded again) would pile tokenizers up."""
    tokenizer = Tokenizer.from_file(tiny_package.tokenizer_path)
    tokenizer.encode_batch(["a text long enough " * 600])  # fills the word-end cache of the prefix shortcut
    ref = weakref.ref(tokenizer)
    gc.disable()
    try:
        del tokenizer
        assert ref() is None
    finally:
        gc.enable()
