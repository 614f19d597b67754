"""ES's WordBoundaryChunker: fixed windows of `size` words, consecutive windows sharing `overlap` words."""

from __future__ import annotations

from collections.abc import Sequence


def word_chunks(word_ends: Sequence[int], length: int, size: int, overlap: int) -> list[tuple[int, int, int]]:
    """Chunks `(start, end, words)` of a text of `length` UTF-16 units whose word-ending boundaries are
    `word_ends`. Every chunk but the last has exactly `size` words and ends right after its last word; the
    next one starts right after the word preceding its overlap words; the last runs to the end. A text without
    words (empty included) is one chunk, as in ES."""
    if overlap < 0 or overlap > size // 2:
        raise ValueError(f"invalid chunking parameters: size {size}, overlap {overlap}")
    chunks: list[tuple[int, int, int]] = []
    step = size - overlap
    count = since = window_start = next_window_start = 0
    for b in word_ends:
        count += 1
        since += 1
        if count >= size:
            chunks.append((window_start, b, count))
            count = overlap
            if overlap == 0:
                next_window_start = b
            window_start = next_window_start
        if since == step:
            next_window_start = b
            since = 0
    if count > overlap or not chunks:
        chunks.append((window_start, length, count))
    return chunks
