"""chunking_settings parsing: defaults, ES's validation messages (es-compat §3.2) and serialization order."""

from __future__ import annotations

from typing import Any

import pytest
from elser_server.core.chunking import DEFAULT_CHUNKING, SeparatorGroup, Strategy, parse_chunking_settings
from elser_server.core.errors import Code, ElserError

VF = "Validation Failed: "
CS = "[chunking_settings]"


@pytest.mark.parametrize("value", [None, {}])
def test_missing_or_empty_gives_default(value: object) -> None:
    s = parse_chunking_settings(value)
    assert s == DEFAULT_CHUNKING
    assert s.to_dict() == {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"strategy": "word", "max_chunk_size": 10, "overlap": 5}, ["strategy", "max_chunk_size", "overlap"]),
        ({"strategy": "sentence", "max_chunk_size": 20}, ["strategy", "max_chunk_size", "sentence_overlap"]),
        ({"strategy": "recursive", "max_chunk_size": 300}, ["strategy", "max_chunk_size", "separators"]),
        ({"strategy": "none"}, ["strategy"]),
    ],
)
def test_serialization_order(value: dict[str, Any], expected: list[str]) -> None:
    assert list(parse_chunking_settings(value).to_dict()) == expected


def test_sentence_overlap_defaults_to_one_and_accepts_zero() -> None:
    assert parse_chunking_settings({"strategy": "sentence", "max_chunk_size": 20}).sentence_overlap == 1
    s = parse_chunking_settings({"max_chunk_size": 300, "sentence_overlap": 0, "strategy": "sentence"})
    assert s.to_dict() == {"strategy": "sentence", "max_chunk_size": 300, "sentence_overlap": 0}


def test_recursive_separator_group_expands_and_defaults_to_plaintext() -> None:
    md = parse_chunking_settings(
        {"strategy": "recursive", "max_chunk_size": 100, "separator_group": "markdown"}
    )
    assert md.to_dict()["separators"] == list(SeparatorGroup.MARKDOWN.separators)
    plain = parse_chunking_settings({"strategy": "recursive", "max_chunk_size": 100})
    assert plain.separators == SeparatorGroup.PLAINTEXT.separators
    own = parse_chunking_settings({"strategy": "recursive", "max_chunk_size": 100, "separators": ["\n", " "]})
    assert own.to_dict() == {"strategy": "recursive", "max_chunk_size": 100, "separators": ["\n", " "]}
    # A stored dict parses back to the same settings.
    assert parse_chunking_settings(md.to_dict()) == md


def test_none_strategy() -> None:
    assert parse_chunking_settings({"strategy": "none"}).strategy is Strategy.NONE


def type_error(field: str, value: str, java_type: str) -> str:
    return (
        f"{VF}1: field [{field}] is not of the expected type. The value [{value}] cannot be converted to a "
        f"[{java_type}];"
    )


IAE = "illegal_argument_exception"
VE = "validation_exception"

CASES: list[tuple[object, str, str]] = [
    ({"max_chunk_size": 20}, IAE, "Can't generate Chunker without ChunkingStrategy provided"),
    ({"strategy": "paragraph"}, IAE, "Invalid chunkingStrategy paragraph"),
    (
        {"strategy": "word", "max_chunk_size": 10, "overlap": 1, "foo": 1, "sentence_overlap": 0},
        VE,
        f"{VF}1: Word based chunking settings can not have the following settings: [foo, sentence_overlap];",
    ),
    (
        {"strategy": "sentence", "max_chunk_size": 20, "overlap": 1},
        VE,
        f"{VF}1: Sentence based chunking settings can not have the following settings: [overlap];",
    ),
    (
        {"strategy": "recursive", "max_chunk_size": 20, "overlap": 1},
        VE,
        f"{VF}1: Recursive chunking settings can not have the following settings: [overlap];",
    ),
    (
        {"strategy": "word", "overlap": 1},
        VE,
        f"{VF}1: {CS} does not contain the required setting [max_chunk_size];",
    ),
    (
        {"strategy": "word", "max_chunk_size": 0, "overlap": 1},
        VE,
        f"{VF}1: {CS} Invalid value [0]. [max_chunk_size] must be a positive integer;",
    ),
    (
        {"strategy": "word", "max_chunk_size": 5, "overlap": 1},
        VE,
        f"{VF}1: {CS} Invalid value [5.0]. [max_chunk_size] must be a greater than or equal to [10.0];",
    ),
    (
        {"strategy": "word", "max_chunk_size": 301, "overlap": 1},
        VE,
        f"{VF}1: {CS} Invalid value [301.0]. [max_chunk_size] must be a less than or equal to [300.0];",
    ),
    (
        {"strategy": "sentence", "max_chunk_size": 19},
        VE,
        f"{VF}1: {CS} Invalid value [19.0]. [max_chunk_size] must be a greater than or equal to [20.0];",
    ),
    (
        {"strategy": "sentence", "max_chunk_size": 301},
        VE,
        f"{VF}1: {CS} Invalid value [301.0]. [max_chunk_size] must be a less than or equal to [300.0];",
    ),
    (
        {"strategy": "recursive", "max_chunk_size": 9},
        VE,
        f"{VF}1: {CS} Invalid value [9.0]. [max_chunk_size] must be a greater than or equal to [10.0];",
    ),
    (
        {"strategy": "word", "max_chunk_size": 10},
        VE,
        f"{VF}1: {CS} does not contain the required setting [overlap];",
    ),
    (
        {"strategy": "word", "max_chunk_size": 10, "overlap": 0},
        VE,
        f"{VF}1: {CS} Invalid value [0]. [overlap] must be a positive integer;",
    ),
    (
        {"strategy": "word", "max_chunk_size": 11, "overlap": 6},
        VE,
        f"{VF}1: {CS} Invalid value [6.0]. [overlap] must be a less than or equal to [5.0];",
    ),
    # overlap is not checked while max_chunk_size is invalid
    (
        {"strategy": "word", "max_chunk_size": 5, "overlap": 100},
        VE,
        f"{VF}1: {CS} Invalid value [5.0]. [max_chunk_size] must be a greater than or equal to [10.0];",
    ),
    (
        {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 2},
        VE,
        f"{VF}1: sentence_overlap[2] must be either 0 or 1;",
    ),
    (
        {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": "1"},
        VE,
        type_error("sentence_overlap", "1", "Integer"),
    ),
    (
        {"strategy": "word", "max_chunk_size": "abc", "overlap": 1},
        VE,
        type_error("max_chunk_size", "abc", "Integer"),
    ),
    (
        {"strategy": "word", "max_chunk_size": 10.0, "overlap": 1},
        VE,
        type_error("max_chunk_size", "10.0", "Integer"),
    ),
    (
        {"strategy": "word", "max_chunk_size": True, "overlap": 1},
        VE,
        type_error("max_chunk_size", "true", "Integer"),
    ),
    (
        {"strategy": "recursive", "max_chunk_size": 20, "separators": ["\n"], "separator_group": "markdown"},
        VE,
        f"{VF}1: Recursive chunking settings can not have both separators and separator_group;",
    ),
    (
        {"strategy": "recursive", "max_chunk_size": 20, "separators": []},
        VE,
        f"{VF}1: Recursive chunking settings can not have an empty list of separators;",
    ),
    (
        {"strategy": "recursive", "max_chunk_size": 20, "separator_group": "html"},
        VE,
        f"{VF}1: {CS} Invalid value [html] received. [separator_group] must be one of [markdown, plaintext];",
    ),
    (
        {"strategy": "recursive", "max_chunk_size": 20, "separators": ["\n", 3]},
        VE,
        type_error("separators", "[\n, 3]", "List<String>"),
    ),
    # several problems are reported together, in ES's order
    (
        {"strategy": "word", "bar": 1},
        VE,
        f"{VF}1: Word based chunking settings can not have the following settings: [bar];"
        f"2: {CS} does not contain the required setting [max_chunk_size];",
    ),
    (
        "sentence",
        VE,
        type_error("chunking_settings", "sentence", "Map"),
    ),
]


@pytest.mark.parametrize(("value", "es_type", "reason"), CASES)
def test_validation_messages(value: object, es_type: str, reason: str) -> None:
    with pytest.raises(ElserError) as info:
        parse_chunking_settings(value)
    err = info.value
    assert (err.reason, err.es_type, err.http_status, err.code) == (
        reason,
        es_type,
        400,
        Code.INVALID_ARGUMENT,
    )
    assert err.field_violations and err.field_violations[0].field.startswith("chunking_settings")


def test_invalid_separator_regex_is_rejected_early() -> None:
    with pytest.raises(ElserError) as info:
        parse_chunking_settings({"strategy": "recursive", "max_chunk_size": 20, "separators": ["("]})
    assert info.value.es_type == VE
    assert "[separators] must be regular expressions" in info.value.reason
