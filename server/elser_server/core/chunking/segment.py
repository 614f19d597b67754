"""ICU word/sentence segmentation (root locale, as ES's ICU4J `BreakIterator`) and UTF-16 <-> code point
offset conversion. All chunkers compute in UTF-16 code units, because that is what ES's offsets are."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from itertools import accumulate

import icu

_ROOT = icu.Locale.getRoot()
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_WORD_NONE = 0  # UBRK_WORD_NONE: whitespace, punctuation, symbols (emoji included)


class Text:
    """An input string with its UTF-16 form; maps offsets between UTF-16 code units and code points."""

    __slots__ = ("_astral_cp", "_astral_u16", "length", "text", "ustr")

    def __init__(self, text: str) -> None:
        self.text = text
        self.ustr = icu.UnicodeString(text)
        self.length: int = self.ustr.length()
        # Only characters outside the BMP take two code units; their positions suffice for both directions.
        self._astral_cp = [m.start() for m in _ASTRAL.finditer(text)]
        self._astral_u16 = [cp + k for k, cp in enumerate(self._astral_cp)]

    def to_cp(self, u16: int) -> int:
        return u16 - bisect_left(self._astral_u16, u16)

    def to_u16(self, cp: int) -> int:
        return cp + bisect_left(self._astral_cp, cp)


class Words:
    """ICU word boundaries of a UTF-16 string with a running count of words (segments whose rule status is
    not WORD_NONE), so counting/skipping words between two offsets is a binary search."""

    __slots__ = ("bounds", "ends", "length", "wcum")

    def __init__(self, ustr: icu.UnicodeString) -> None:
        it = icu.BreakIterator.createWordInstance(_ROOT)
        it.setText(ustr)
        self.length: int = ustr.length()
        self.bounds: list[int] = [0]
        is_word: list[int] = [0]
        for b in it:
            self.bounds.append(b)
            is_word.append(it.getRuleStatus() != _WORD_NONE)
        # wcum[i]: words among the segments ending at bounds[1..i].
        self.wcum: list[int] = list(accumulate(is_word))
        self.ends: list[int] = [b for b, w in zip(self.bounds, is_word, strict=True) if w]

    def _preceding(self, start: int) -> int:
        """Index of ICU's `preceding(start)`: the last boundary before `start` (0 at the text start)."""
        return max(bisect_left(self.bounds, start) - 1, 0)

    def count(self, start: int, end: int) -> int:
        """ES's `countWords(start, end)`: from the boundary preceding `start`, count word boundaries <= `end`.
        Like ES it includes the segment ending at that preceding boundary (a word only when `start` falls
        right after a word, e.g. after a bare newline)."""
        i = self._preceding(start)
        j = bisect_right(self.bounds, end) - 1
        return self.wcum[j] - (self.wcum[i - 1] if i > 0 else 0)

    def skip(self, start: int, n: int) -> int:
        """ES's `skipWords`: walk from the boundary preceding `start` until `n` words were passed, returning
        the boundary after the next step (end of text when exhausted)."""
        i = self._preceding(start)
        if n <= 0:
            return self.bounds[i]
        base = self.wcum[i - 1] if i > 0 else 0
        m = bisect_left(self.wcum, base + n, lo=i)
        return self.bounds[m + 1] if m + 1 < len(self.bounds) else self.length


def sentence_ends(ustr: icu.UnicodeString) -> list[int]:
    it = icu.BreakIterator.createSentenceInstance(_ROOT)
    it.setText(ustr)
    return list(it)
