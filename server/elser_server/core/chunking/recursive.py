"""ES's RecursiveChunker: split by the first separator regex, merge adjacent pieces while they fit in
`max_words`, recurse into pieces that still do not fit with the next separator, and fall back to the
sentence chunker (no overlap) when the separators run out."""

from __future__ import annotations

from collections.abc import Sequence

import regex

from elser_server.core.chunking.segment import Text, Words
from elser_server.core.chunking.sentence import sentence_chunks
from elser_server.core.chunking.separators import SeparatorClock, compile_separators

_Piece = tuple[int, int, int]  # UTF-16 start, end, words


def recursive_chunks(
    text: Text, separators: Sequence[str], max_words: int, clock: SeparatorClock
) -> list[tuple[int, int]]:
    """UTF-16 `(start, end)` chunks covering `text` in order; the separators match within `clock`'s time."""
    words = Words(text.ustr)
    patterns = compile_separators(separators)
    out: list[tuple[int, int]] = []
    # An explicit stack keeps the output order of ES's recursion without Python's recursion limit.
    stack: list[tuple[int, int, int]] = [(0, text.length, 0)]
    while stack:
        start, end, level = stack.pop()
        if start == end or words.count(start, end) <= max_words:
            out.append((start, end))
        elif level == len(patterns):
            sub = sentence_chunks(text.ustr[start:end], max_words, include_preceding=False)
            out.extend((start + s, start + e) for s, e in sub)
        else:
            pieces = _merge(words, _split(text, words, start, end, patterns[level], clock), max_words)
            # Pieces that fit are emitted by the count check when popped.
            stack.extend((s, e, level + 1) for s, e, _ in reversed(pieces))
    return out


def _split(
    text: Text, words: Words, start: int, end: int, pattern: regex.Pattern[str], clock: SeparatorClock
) -> list[_Piece]:
    """Cut before every match (the separator starts the next piece). The regex sees only the region, as
    Java's Matcher.region with opaque, anchoring bounds does."""
    cp_start = text.to_cp(start)
    region = text.text[cp_start : text.to_cp(end)]
    pieces: list[_Piece] = []
    piece_start = start
    for match_start in clock.match_starts(pattern, region):
        cut = text.to_u16(cp_start + match_start)
        if piece_start < cut:
            pieces.append((piece_start, cut, words.count(piece_start, cut)))
        piece_start = cut
    if piece_start < end:
        pieces.append((piece_start, end, words.count(piece_start, end)))
    return pieces


def _merge(words: Words, pieces: list[_Piece], max_words: int) -> list[_Piece]:
    if len(pieces) < 2:
        return pieces
    merged: list[_Piece] = []
    current = pieces[0]
    for piece in pieces[1:]:
        n = words.count(current[0], piece[1])
        if n <= max_words:
            current = (current[0], piece[1], n)
        else:
            merged.append(current)
            current = piece
    merged.append(current)
    return merged
