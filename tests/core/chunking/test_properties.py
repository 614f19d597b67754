"""Property tests: coverage, order, size in ES words, word overlap, sentence overlap, offsets in both units.

Word counts follow ES exactly. ES has two rules, and each chunker is held to the one it uses:

* `WordBoundaryChunker` walks the word iterator forward from a window's start, so a window's words are the
  word segments ending in `(start, end]` (`window_words`).
* `ChunkerUtils.countWords(start, end)` (sentence and recursive chunkers) starts at `preceding(start)`, the
  boundary *before* `start`, and so also counts the segment ending there and the one ending at `start`
  (`es_count_words`, an independent port of ES's loop on ICU's iterator, checked against the production
  `Words.count`). The sentence chunker adds such counts per sentence and splits an over-long sentence with a
  fresh iterator on the substring, and the recursive chunker hands what no separator splits to that sentence
  chunker, so a chunk's `countWords` within the whole input may exceed `max_chunk_size` by those (at most
  two) segments before its start; within the chunk's own text it never exceeds it.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left

import icu
from elser_server.core.chunking import Chunk, ChunkingSettings, Strategy, chunk
from elser_server.core.chunking.segment import Text, Words, sentence_ends
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
# Sentences of a few words each, some longer than any chunk, so that sentence chunks combine, overlap and split.
SENTENCE_TOKENS = ["word ", "Elastic ", "search ", "漢字", "😀 ", "𠀋 ", "naïve ", "42 ", "e\u0301 ", "\n"]
sentences = st.lists(st.sampled_from(SENTENCE_TOKENS), min_size=1, max_size=50).map(
    lambda words: "".join(words).rstrip() + ". "
)
sentence_texts = st.one_of(texts, st.lists(sentences, max_size=15).map("".join))

_ROOT = icu.Locale.getRoot()


def utf16_slice(text: str, c: Chunk) -> str:
    return text.encode("utf-16-le")[2 * c.start_utf16 : 2 * c.end_utf16].decode("utf-16-le")


def es_count_words(ustr: icu.UnicodeString, start: int, end: int) -> int:
    """ES's `ChunkerUtils.countWords` on ICU's own iterator: from `preceding(start)`, count the boundaries up
    to `end` whose rule status is not WORD_NONE."""
    it = icu.BreakIterator.createWordInstance(_ROOT)
    it.setText(ustr)
    it.preceding(start)
    boundary = it.current()
    count = 0
    while boundary != icu.BreakIterator.DONE and boundary <= end:
        if it.getRuleStatus() != 0:
            count += 1
        boundary = it.nextBoundary()
    return count


def window_words(words: Words, start: int, end: int) -> int:
    """Words as ES's WordBoundaryChunker counts a window: word segments ending in `(start, end]`."""
    return sum(start < e <= end for e in words.ends)


def own_words(text: str, c: Chunk) -> int:
    """`countWords` over the chunk's text on its own (the size ES's chunkers keep within the maximum)."""
    words = Words(icu.UnicodeString(c.text(text)))
    return words.count(0, words.length) if words.length else 0


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


def check_es_size(text: str, chunks: list[Chunk], size: int) -> None:
    words = Words(icu.UnicodeString(text))
    for c in chunks:
        assert own_words(text, c) <= size
        if c.start_utf16 < c.end_utf16:
            assert words.count(c.start_utf16, c.end_utf16) <= size + 2


@settings(max_examples=150, deadline=None)
@given(texts, st.data())
def test_production_word_count_is_es_count_words(text: str, data: st.DataObject) -> None:
    """`Words.count` is ES's countWords at every code point offset (chunk offsets never split a pair)."""
    t = Text(text)
    words = Words(t.ustr)
    for _ in range(5):
        if not text:
            break
        start = data.draw(st.integers(0, len(text) - 1))
        end = data.draw(st.integers(start + 1, len(text)))
        s16, e16 = t.to_u16(start), t.to_u16(end)
        assert words.count(s16, e16) == es_count_words(t.ustr, s16, e16)


@settings(max_examples=200, deadline=None)
@given(texts, st.integers(10, 40), st.data())
def test_word_strategy(text: str, size: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, size // 2))
    chunks = chunk(text, ChunkingSettings(Strategy.WORD, max_chunk_size=size, overlap=overlap))
    check_offsets_and_cover(text, chunks, tail_may_drop=True)
    words = Words(icu.UnicodeString(text))
    for i, c in enumerate(chunks):
        n = window_words(words, c.start_utf16, c.end_utf16)
        if i < len(chunks) - 1:
            assert n == size
            assert c.end_utf16 in words.ends  # ends right after its last word
            assert window_words(words, chunks[i + 1].start_utf16, c.end_utf16) == overlap
        else:
            assert n <= size


@settings(max_examples=200, deadline=None)
@given(sentence_texts, st.integers(20, 40), st.sampled_from([0, 1]))
def test_sentence_strategy(text: str, size: int, sentence_overlap: int) -> None:
    s = ChunkingSettings(Strategy.SENTENCE, max_chunk_size=size, sentence_overlap=sentence_overlap)
    chunks = chunk(text, s)
    check_offsets_and_cover(text, chunks)
    check_es_size(text, chunks, size)
    ustr = icu.UnicodeString(text)
    sentence_starts = [0, *sentence_ends(ustr)]
    words = Words(ustr)
    word_bounds = words.bounds
    for a, b in itertools.pairwise(chunks):
        # the sentence holding the previous chunk's last character
        last_sentence = sentence_starts[bisect_left(sentence_starts, a.end_utf16) - 1]
        if sentence_overlap:
            # ES restarts at that sentence (or, when it is too long to repeat whole, at its last words); its
            # skipWords starts from `preceding(sentence start)`, so the word boundary just before may start it.
            lowest = word_bounds[max(bisect_left(word_bounds, last_sentence) - 1, 0)]
            assert lowest <= b.start_utf16 < a.end_utf16
        elif a.end_utf16 != b.start_utf16:
            # Disjoint and contiguous, except the word windows ES's splitLongSentence cuts one over-long
            # sentence into, which overlap within that sentence.
            sentence_end = sentence_starts[bisect_left(sentence_starts, a.end_utf16)]
            assert words.count(last_sentence, sentence_end) > size
            assert last_sentence < b.start_utf16 < a.end_utf16


@settings(max_examples=150, deadline=None)
@given(texts, st.integers(10, 40))
def test_recursive_strategy(text: str, size: int) -> None:
    s = ChunkingSettings(Strategy.RECURSIVE, max_chunk_size=size, separators=("\n\n", "\n", r"[.!?] "))
    chunks = chunk(text, s)
    check_offsets_and_cover(text, chunks)
    check_es_size(text, chunks, size)


@given(texts)
def test_none_strategy_is_whole_input(text: str) -> None:
    n16 = len(text.encode("utf-16-le")) // 2
    assert chunk(text, ChunkingSettings(Strategy.NONE)) == [Chunk(0, len(text), 0, n16)]
