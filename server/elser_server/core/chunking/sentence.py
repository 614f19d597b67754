"""ES's SentenceBoundaryChunker: whole ICU sentences up to `max_words` words per chunk, optionally starting
each chunk with (the tail of) the previous sentence; over-long sentences are split by words."""

from __future__ import annotations

import icu

from elser_server.core.chunking.segment import Words, sentence_ends
from elser_server.core.chunking.word import word_chunks

_MAX_OVERLAP_WORDS = 20


def sentence_chunks(
    ustr: icu.UnicodeString, max_words: int, include_preceding: bool
) -> list[tuple[int, int]]:
    """UTF-16 `(start, end)` chunks of `ustr`; an empty input gives one empty chunk, as in ES."""
    words = Words(ustr)
    length = words.length
    chunks: list[tuple[int, int]] = []
    chunk_start = chunk_end = sentence_start = 0
    chunk_words = prev_words = prev_start = 0
    for sentence_end in sentence_ends(ustr):
        w = words.count(sentence_start, sentence_end)
        if chunk_words + w > max_words:
            next_words = w
            if chunk_words > 0:
                chunks.append((chunk_start, chunk_end))
                if include_preceding:
                    if prev_words + w > max_words:
                        skip = max(prev_words - min(max_words // 2, _MAX_OVERLAP_WORDS), 0)
                        chunk_start = words.skip(prev_start, skip)
                        chunk_words = prev_words - skip + w
                    else:
                        chunk_start = prev_start
                        chunk_words = prev_words + w
                    next_words = chunk_words
                else:
                    chunk_start = chunk_end
                    chunk_words = w
            if next_words > max_words:
                # ES splits the substring with a fresh word iterator, so segment it on its own too.
                sub = Words(ustr[chunk_start:sentence_end])
                splits = word_chunks(
                    sub.ends, sub.length, max_words, min(_MAX_OVERLAP_WORDS, (max_words - 1) // 2)
                )
                chunks.extend((chunk_start + s, chunk_start + e) for s, e, _ in splits[:-1])
                last_start, _, chunk_words = splits[-1]
                chunk_start += last_start
        else:
            chunk_words += w
        if include_preceding:
            prev_start = sentence_start
            prev_words = w
        sentence_start = chunk_end = sentence_end
    if chunk_words > 0:
        chunks.append((chunk_start, length))
    if not chunks:
        chunks.append((0, length))
    return chunks
