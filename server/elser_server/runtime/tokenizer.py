"""WordPiece tokenization with [CLS]/[SEP], truncation to the model's maximum and exact truncation flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tokenizers

# Prefix length (in characters per allowed token) tried before encoding a long text in full.
_CHARS_PER_TOKEN_CUT = 16


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
        # Long texts are first encoded from a prefix cut at whitespace (where the pre-tokenizer splits anyway, so
        # the prefix's tokens equal the full text's). If that prefix alone overflows, so does the full text and the
        # result is identical; otherwise the full text is encoded. This keeps a 100,000-character input cheap.
        prefixes = [self._prefix(t) for t in texts]
        encoded = self._tok.encode_batch_fast(prefixes, add_special_tokens=True)
        redo = [i for i, e in enumerate(encoded) if prefixes[i] is not texts[i] and not e.overflowing]
        if redo:
            full = self._tok.encode_batch_fast([texts[i] for i in redo], add_special_tokens=True)
            for i, enc in zip(redo, full, strict=True):
                encoded[i] = enc
        return [Encoding(np.asarray(e.ids, dtype=np.int64), len(e.overflowing) > 0) for e in encoded]

    def _prefix(self, text: str) -> str:
        cut = self.max_length * _CHARS_PER_TOKEN_CUT
        if len(text) <= cut:
            return text
        for i in range(cut, max(cut - 1000, 0), -1):
            if text[i].isspace():
                return text[:i]
        return text

    def id_to_tokens(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Raw vocabulary spellings (e.g. `##ing`), as ES returns them."""
        return list(self._id_to_token_array[np.asarray(ids, dtype=np.int64)])
