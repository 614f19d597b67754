"""Chunkers against ES's published vectors (es-compat §5.2) and the illustrative sentence vectors (§5.3)."""

from __future__ import annotations

import itertools

import icu
import pytest
from elser_server.core.chunking import (
    DEFAULT_CHUNKING,
    Chunk,
    ChunkingSettings,
    chunk,
    parse_chunking_settings,
)
from elser_server.core.chunking.segment import Words
from support import BLANK_CHUNKING, BLANK_TEXTS

T1 = (
    "Elasticsearch is an open source, distributed, RESTful, search engine which is built on top of Lucene "
    "internally and enjoys all the features it provides."
)
T2 = "Elasticsearch is a free, open-source search engine and analytics tool that stores and indexes data."
WORD_10_1 = parse_chunking_settings({"strategy": "word", "max_chunk_size": 10, "overlap": 1})
NONE = parse_chunking_settings({"strategy": "none"})

S1 = "The quick brown fox jumps over the lazy dog near the river bank today. "
S2 = "Afterwards it rested under a tall oak tree for an hour. "
S3 = "Then the fox ran home to its den in the dark forest."
STORY = S1 + S2 + S3


def spans(text: str, chunks: list[Chunk]) -> list[tuple[int, int, str]]:
    return [(c.start_utf16, c.end_utf16, c.text(text)) for c in chunks]


def test_es_word_vector_1() -> None:
    assert spans(T1, chunk(T1, WORD_10_1)) == [
        (0, 74, "Elasticsearch is an open source, distributed, RESTful, search engine which"),
        (68, 122, " which is built on top of Lucene internally and enjoys"),
        (115, 152, " enjoys all the features it provides."),
    ]


def test_es_word_vector_2() -> None:
    assert [c.text(T2) for c in chunk(T2, WORD_10_1)] == [
        "Elasticsearch is a free, open-source search engine and analytics",
        " analytics tool that stores and indexes data.",
    ]


@pytest.mark.parametrize("text", [T1, T2])
def test_default_sentence_and_none_give_one_chunk(text: str) -> None:
    whole = [Chunk(0, len(text), 0, len(text))]
    assert chunk(text, DEFAULT_CHUNKING) == whole
    assert chunk(text, NONE) == whole


def test_sentence_vector_without_overlap() -> None:
    s = parse_chunking_settings({"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 0})
    assert [(c.start_utf16, c.end_utf16) for c in chunk(STORY, s)] == [(0, 71), (71, 127), (127, 179)]


def test_sentence_vector_with_overlap() -> None:
    s = parse_chunking_settings({"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 1})
    got = chunk(STORY, s)
    assert [(c.start_utf16, c.end_utf16) for c in got] == [
        (0, 71),
        (20, 120),
        (81, 127),
        (82, 166),
        (131, 179),
    ]
    assert got[1].text(STORY).startswith("jumps over") and got[1].text(STORY).endswith("for an")
    assert got[2].text(STORY) == " it rested under a tall oak tree for an hour. "


def test_words_count_as_es() -> None:
    # Hyphenated words count twice; emoji, whitespace and punctuation are not words; offsets are UTF-16.
    w = Words(icu.UnicodeString("open-source, 42 😀 漢字 x"))
    assert w.ends == [4, 11, 15, 21, 23]
    assert w.count(0, w.length) == 5


def test_offsets_in_both_units_with_astral_characters() -> None:
    text = "😀 emoji " * 6 + "漢字 テキスト 𠀋 " * 6
    for c in chunk(text, WORD_10_1):
        utf16 = text.encode("utf-16-le")[2 * c.start_utf16 : 2 * c.end_utf16].decode("utf-16-le")
        assert utf16 == c.text(text)
    last = chunk(text, WORD_10_1)[-1]
    assert (last.end, last.end_utf16) == (len(text), len(text.encode("utf-16-le")) // 2)


@pytest.mark.parametrize("text", BLANK_TEXTS, ids=repr)
@pytest.mark.parametrize("settings", BLANK_CHUNKING.values(), ids=BLANK_CHUNKING.keys())
def test_blank_input_is_one_chunk_of_the_whole_input_as_in_es(settings: dict[str, object], text: str) -> None:
    assert chunk(text, parse_chunking_settings(settings)) == [Chunk(0, len(text), 0, len(text))]


def test_recursive_splits_by_paragraph_then_line_then_sentences() -> None:
    s = parse_chunking_settings({"strategy": "recursive", "max_chunk_size": 10})
    text = (
        "Para one is here.\n\n"
        "Para two has a few more words in it than allowed by max.\nAnd a second line.\n\n"
        "Three 😀 漢字テキスト."
    )
    assert [c.text(text) for c in chunk(text, s)] == [
        "Para one is here.",
        # 13 words on one line: no separator left, so the sentence chunker splits it by words (overlap 4)
        "\n\nPara two has a few more words in it than",
        " words in it than allowed by max.",
        "\nAnd a second line.",
        "\n\nThree 😀 漢字テキスト.",
    ]


def test_recursive_merges_small_pieces() -> None:
    s = parse_chunking_settings({"strategy": "recursive", "max_chunk_size": 10, "separators": ["\n"]})
    text = "a b\nc d\ne f\ng h i j k l m n o"
    assert [c.text(text) for c in chunk(text, s)] == ["a b\nc d\ne f", "\ng h i j k l m n o"]


def test_markdown_group_splits_at_headings() -> None:
    s = parse_chunking_settings(
        {"strategy": "recursive", "max_chunk_size": 10, "separator_group": "markdown"}
    )
    text = "# Title\nintro words here\n## One\n" + "alpha beta " * 3 + "\n## Two\n" + "gamma delta " * 3
    assert [c.text(text) for c in chunk(text, s)] == [
        "# Title\nintro words here",
        "\n## One\n" + "alpha beta " * 3,
        "\n## Two\n" + "gamma delta " * 3,
    ]


def _megabyte() -> str:
    para = (
        "Elasticsearch is a distributed search engine 🔍. 漢字とかなのテキストも含みます。"
        "It scales horizontally, and stores JSON documents!\n\n"
    )
    return para * (1_000_000 // len(para.encode()) + 1)


@pytest.mark.parametrize(
    "settings",
    [
        DEFAULT_CHUNKING,
        WORD_10_1,
        parse_chunking_settings({"strategy": "word", "max_chunk_size": 250, "overlap": 100}),
        parse_chunking_settings({"strategy": "recursive", "max_chunk_size": 50}),
        NONE,
    ],
    ids=["sentence", "word-10", "word-250", "recursive", "none"],
)
def test_one_megabyte_text_is_chunked_and_covered(settings: ChunkingSettings) -> None:
    text = _megabyte()
    got = chunk(text, settings)
    assert got[0].start == 0 and got[-1].end == len(text)
    assert all(b.start <= a.end and a.start <= b.start for a, b in itertools.pairwise(got))


def test_word_tail_after_a_full_last_window_is_in_no_chunk_as_in_es() -> None:
    text = "one two three four five six seven eight nine ten 😀."
    assert [c.text(text) for c in chunk(text, WORD_10_1)] == [
        "one two three four five six seven eight nine ten"
    ]
