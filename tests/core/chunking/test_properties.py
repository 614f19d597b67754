"""Property tests: coverage, order, size in ES words, word overlap, offsets in both units."""

from __future__ import annotations

import itertools

import icu
from elser_server.core.chunking import Chunk, ChunkingSettings, Strategy, chunk
from elser_server.core.chunking.segment import Words
from hypothesis import given, settings
from hypothesis import strategies as st

TOKENS = [
    "word", "Elastic", "search", "open-source", "42", "3.14", "😀", "👍🏽", "🇫🇷", "漢字", "テキスト", "𠀋",
    "한국어", "naïve", "e\u0301", " ", "  ", "\n", "\n\n", "\t", ".", ". ", "! ", "? ", ",", "\"", "'", "—",
]  # fmt: skip
texts = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=300).map("".join),
    st.text(max_size=200),
)


def utf16_slice(text: str, c: Chunk) -> str:
    return text.encode("utf-16-le")[2 * c.start_utf16 : 2 * c.end_utf16].decode("utf-16-le")


def es_words(text: str, c: Chunk) -> int:
    """Words (non-WORD_NONE segments) ending inside the chunk, with ICU run over the whole input."""
    ends = Words(icu.UnicodeString(text)).ends
    return sum(c.start_utf16 < e <= c.end_utf16 for e in ends)


def check_offsets_and_cover(text: str, chunks: list[Chunk], *, tail_may_drop: bool = False) -> None:
    assert chunks, "non-empty input always yields a chunk"
    assert chunks[0].start == chunks[0].start_utf16 == 0
    last = chunks[-1]
    if tail_may_drop and last.end < len(text):
        # ES's word chunker: when the words end exactly at a full window, the non-word tail is in no chunk.
        assert Words(icu.UnicodeString(text[last.end :])).ends == []
    else:
        assert (last.end, last.end_utf16) == (len(text), len(text.encode("utf-16-le")) // 2)
    for c in chunks:
        assert 0 <= c.start <= c.end <= len(text)
        assert utf16_slice(text, c) == c.text(text)
    for a, b in itertools.pairwise(chunks):
        # in order, and no gap between consecutive chunks
        assert a.start <= b.start <= a.end <= b.end


@settings(max_examples=300, deadline=None)
@given(texts, st.integers(10, 40), st.data())
def test_word_strategy(text: str, size: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, size // 2))
    chunks = chunk(text, ChunkingSettings(Strategy.WORD, max_chunk_size=size, overlap=overlap))
    if not text:
        assert chunks == []
        return
    check_offsets_and_cover(text, chunks, tail_may_drop=True)
    ends = Words(icu.UnicodeString(text)).ends
    for i, c in enumerate(chunks):
        n = sum(c.start_utf16 < e <= c.end_utf16 for e in ends)
        if i < len(chunks) - 1:
            assert n == size
            assert c.end_utf16 in ends  # ends right after its last word
            shared = sum(chunks[i + 1].start_utf16 < e <= c.end_utf16 for e in ends)
            assert shared == overlap
        else:
            assert n <= size


@settings(max_examples=300, deadline=None)
@given(texts, st.integers(20, 40), st.sampled_from([0, 1]))
def test_sentence_strategy(text: str, size: int, sentence_overlap: int) -> None:
    s = ChunkingSettings(Strategy.SENTENCE, max_chunk_size=size, sentence_overlap=sentence_overlap)
    chunks = chunk(text, s)
    check_offsets_and_cover(text, chunks)
    for c in chunks:
        assert es_words(text, c) <= size


@settings(max_examples=200, deadline=None)
@given(texts, st.integers(10, 40))
def test_recursive_strategy(text: str, size: int) -> None:
    s = ChunkingSettings(Strategy.RECURSIVE, max_chunk_size=size, separators=("\n\n", "\n", r"[.!?] "))
    chunks = chunk(text, s)
    check_offsets_and_cover(text, chunks)
    for c in chunks:
        assert es_words(text, c) <= size


@given(texts)
def test_none_strategy_is_whole_input(text: str) -> None:
    n16 = len(text.encode("utf-16-le")) // 2
    assert chunk(text, ChunkingSettings(Strategy.NONE)) == [Chunk(0, len(text), 0, n16)]
