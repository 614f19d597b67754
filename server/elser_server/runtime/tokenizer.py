"""WordPiece tokenization with [CLS]/[SEP], truncation to the model's maximum and exact truncation flags."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import tokenizers

# Prefix length (in characters per allowed token) tried before encoding a long text in full.
_CHARS_PER_TOKEN_CUT = 16
# How far back from that length a word boundary is looked for before giving up and encoding the full text.
_CUT_SEARCH = 1000


def check_text(text: str) -> None:
    """Raise ValueError unless `text` is a str of valid Unicode (no lone surrogates, which JSON can smuggle in)."""
    if not isinstance(text, str):
        raise ValueError("is not a string")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(
                f"is not valid Unicode: {e.reason} at character {e.start} ({text[e.start]!r})"
            ) from None


@dataclass(frozen=True)
class Encoding:
    ids: np.ndarray  # int64 token ids incl. [CLS]/[SEP]
    is_truncated: bool  # exactly when tokens were dropped

    def __len__(self) -> int:
        return len(self.ids)


class Tokenizer:
    def __init__(self, inner: tokenizers.Tokenizer, max_length: int = 512) -> None:
        self._tok = inner
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_length)
        self.max_length = max_length
        vocab = inner.get_vocab(with_added_tokens=True)
        self._id_to_token = [""] * (max(vocab.values()) + 1)
        for token, i in vocab.items():
            self._id_to_token[i] = token
        self._id_to_token_array = np.array(self._id_to_token, dtype=object)
        added = list(inner.get_added_tokens_decoder().values())
        self._added = [t.content for t in added]
        # The prefix shortcut's proof (see prefix) holds for BERT's per-character normalizer and pre-tokenizer
        # with added tokens matched verbatim in the raw text; any other tokenizer always encodes the full text.
        self._cuttable = (
            isinstance(inner.normalizer, tokenizers.normalizers.BertNormalizer)
            and isinstance(inner.pre_tokenizer, tokenizers.pre_tokenizers.BertPreTokenizer)
            and not any(t.normalized or t.lstrip or t.rstrip or t.single_word for t in added)
        )
        # Cached on the inner tokenizer, not on a bound method: that would put this object in a reference cycle,
        # freed only by the cyclic collector, which the tokenizer's native memory (14 MB for BERT's vocabulary) never
        # prompts, so every model reload kept one more.
        self._ends_word = lru_cache(maxsize=4096)(partial(_probe_ends_word, inner))

    @classmethod
    def from_file(cls, path: str | Path, max_length: int = 512) -> Tokenizer:
        return cls(tokenizers.Tokenizer.from_file(str(path)), max_length)

    @property
    def vocab_size(self) -> int:
        return len(self._id_to_token)

    def encode_batch(self, texts: Sequence[str]) -> list[Encoding]:
        """Encode without padding. Raises ValueError naming the input when a text is not valid Unicode."""
        for i, text in enumerate(texts):
            try:
                check_text(text)
            except ValueError as err:
                raise ValueError(f"input {i} {err}") from None
        # Long texts are first encoded from a prefix cut right after a word boundary, whose tokens are then exactly
        # the first tokens of the full text (see prefix). If that prefix alone overflows, so does the full text and
        # the result is identical; otherwise the full text is encoded. This keeps a 100,000-character input cheap.
        prefixes = [self.prefix(t) for t in texts]
        encoded = self._tok.encode_batch_fast(prefixes, add_special_tokens=True)
        redo = [i for i, e in enumerate(encoded) if prefixes[i] is not texts[i] and not e.overflowing]
        if redo:
            full = self._tok.encode_batch_fast([texts[i] for i in redo], add_special_tokens=True)
            for i, enc in zip(redo, full, strict=True):
                encoded[i] = enc
        return [Encoding(np.asarray(e.ids, dtype=np.int64), len(e.overflowing) > 0) for e in encoded]

    def prefix(self, text: str) -> str:
        """`text` itself, or a prefix of it ending at a word boundary whose tokens are the full text's first ones.

        The prefix ends right after a character c that ends a pre-token whatever follows it (whitespace,
        punctuation, a CJK ideograph: _probe_ends_word asks the tokenizer itself), and never inside an added token
        ("[MASK]"). BertNormalizer works character by character (cleaning, CJK spacing, lowercasing, NFD + dropping
        accents; NFD's reordering only moves combining marks, and c is a starter with no decomposition, so nothing
        after the cut is moved before it), BertPreTokenizer decides each split from one character, and added
        tokens are matched in the raw text before all that, so no match crosses the cut. Hence the prefix's words
        are exactly the full text's first words, all complete, and WordPiece encodes each word on its own: the
        prefix's tokens are the full text's first tokens. With max_length·16 characters kept, a typical prefix
        overflows; when it does not, encode_batch encodes the full text."""
        cut = self.max_length * _CHARS_PER_TOKEN_CUT
        if not self._cuttable or len(text) <= cut:
            return text
        for i in range(cut, max(cut - _CUT_SEARCH, 0), -1):
            if self.ends_word(text[i - 1]) and not self._added_token_spans(text, i):
                return text[:i]
        return text

    def _added_token_spans(self, text: str, i: int) -> bool:
        """Whether an added token's text occurs across position i (starting before it, ending after it)."""
        return any(
            text.find(s, max(i - len(s) + 1, 0), i + len(s) - 1) >= 0 for s in self._added if len(s) > 1
        )

    def ends_word(self, c: str) -> bool:
        """Whether `c` always ends a pre-token, whatever follows it (see _probe_ends_word; cached)."""
        return self._ends_word(c)

    def id_to_tokens(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Raw vocabulary spellings (e.g. `##ing`), as ES returns them."""
        return list(self._id_to_token_array[np.asarray(ids, dtype=np.int64)])


def _probe_ends_word(tok: tokenizers.Tokenizer, c: str) -> bool:
    """Whether `c` always ends a pre-token, whatever follows it: asked of the tokenizer's own normalizer and
    pre-tokenizer (Python's isspace and Unicode tables disagree with them: "\\x0b" and "\\x1c" are removed as
    control characters, not whitespace, and punctuation newer than their tables does not split)."""
    if unicodedata.combining(c) or unicodedata.decomposition(c)[:1] not in ("", "<"):
        return False  # NFD could reorder combining marks that follow the cut across it
    normalizer, pre_tokenizer = tok.normalizer, tok.pre_tokenizer

    def words(s: str) -> list[str]:
        return [w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(s))]

    return words(f"x{c}y") == [*words(f"x{c}"), "y"]
