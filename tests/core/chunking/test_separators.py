"""Recursive chunking's separator regexes: refused before compiling when they could not be compiled in bounded
time and memory, matched under a time budget and the request's deadline, with ES's messages."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from elser_server.core.chunking import chunk, chunk_off_loop, parse_chunking_settings
from elser_server.core.chunking.separators import (
    MAX_SEPARATOR_ELEMENTS,
    MAX_SEPARATORS,
    TOO_LARGE,
    separator_elements,
)
from elser_server.core.chunking.settings import SeparatorGroup
from elser_server.core.errors import Code, ElserError

# Catastrophic backtracking: every way to split the a's is tried before `$` fails at the "!".
HOSTILE = "(a|aa)+$"
HOSTILE_TEXT = "a" * 37 + "!" + " w" * 20


def recursive(*separators: str) -> dict[str, object]:
    return {"strategy": "recursive", "max_chunk_size": 10, "separators": list(separators)}


def reason(value: object, *, stored: bool = False) -> str:
    with pytest.raises(ElserError) as info:
        parse_chunking_settings(value, stored=stored)
    assert (info.value.es_type, info.value.http_status) == ("validation_exception", 400)
    return info.value.reason


@pytest.mark.parametrize(
    ("separator", "at_least"),
    [
        ("a{10000000}", 10_000_000),
        ("(?:a{1000}){1000}", 1_000_000),
        ("a{0000000000001000}", 1000),  # leading zeros hide nothing
        ("\\p{L}{999}", 999),
        # a class, a verbose comment or a group cannot hide a repetition from the count
        ("[(]a{40}){40}", 1600),
        ("(?x)(?:a{40} #[\n){40}]", 1600),
        ("x" * 1001, 1001),
    ],
)
def test_separators_that_would_expand_past_the_bound_are_refused(separator: str, at_least: int) -> None:
    assert separator_elements(separator, limit=10**9) >= at_least
    assert reason(recursive(separator)) == f"Validation Failed: 1: {TOO_LARGE};"


def test_the_bound_counts_all_separators_together() -> None:
    half = "x" * (MAX_SEPARATOR_ELEMENTS // 2)
    assert parse_chunking_settings(recursive(half, half)).separators == (half, half)
    assert reason(recursive(half, half, "y")) == f"Validation Failed: 1: {TOO_LARGE};"


@pytest.mark.parametrize(
    "separator",
    [
        "-{80}",
        "\\n{2,}",
        "(?:\\r?\\n){2}",
        "a{,1000000}",
        "\\N{LATIN SMALL LETTER A}",
        "\\p{Lu}++",
        "(?>a|b)",
    ],
)
def test_ordinary_and_java_like_separators_are_accepted(separator: str) -> None:
    assert parse_chunking_settings(recursive(separator)).separators == (separator,)


def test_the_groups_fit_the_bound() -> None:
    for group in SeparatorGroup:
        assert sum(map(separator_elements, group.separators)) <= MAX_SEPARATOR_ELEMENTS // 10


def test_more_than_fifty_separators_is_es_validation_error() -> None:
    separators = [f"s{i}" for i in range(MAX_SEPARATORS + 1)]
    assert parse_chunking_settings(recursive(*separators[:-1])).separators == tuple(separators[:-1])
    assert (
        reason(recursive(*separators))
        == "Validation Failed: 1: separators list size [51] must not exceed [50];"
    )
    # with a group ES checks the group's separators, not the list (and says both were given)
    both = {**recursive(*separators), "separator_group": "markdown"}
    assert reason(both) == (
        "Validation Failed: 1: Recursive chunking settings can not have both separators and separator_group;"
    )


def test_stored_settings_load_unchecked_and_are_refused_when_used() -> None:
    """Settings read back from the store skip request limits (ES) and compiling, so start-up cannot fail or
    stall on them; chunking with them checks again before compiling."""
    many = [f"s{i}" for i in range(MAX_SEPARATORS + 1)]
    assert len(parse_chunking_settings(recursive(*many), stored=True).separators or ()) == 51
    stored = parse_chunking_settings(recursive("a{10000000}"), stored=True)
    with pytest.raises(ElserError) as info:
        chunk(HOSTILE_TEXT, stored)
    assert (info.value.es_type, info.value.reason) == (
        "validation_exception",
        f"Validation Failed: 1: {TOO_LARGE};",
    )
    broken = parse_chunking_settings(recursive("("), stored=True)
    with pytest.raises(ElserError) as info:
        chunk(HOSTILE_TEXT, broken)
    assert "[separators] must be regular expressions: missing )" in info.value.reason


def test_a_backtracking_separator_stops_at_its_budget_with_es_message() -> None:
    settings = parse_chunking_settings(recursive(HOSTILE))
    with pytest.raises(ElserError) as info:
        chunk(HOSTILE_TEXT, settings, separator_budget_s=0.2, deadline=time.monotonic() + 600)
    err = info.value
    assert (err.code, err.http_status, err.es_type) == (
        Code.INVALID_ARGUMENT,
        400,
        "illegal_argument_exception",
    )
    assert err.reason == "Chunk separator regex [(a|aa)+$] has exceeded the character read limit"
    assert err.error_reason == "SEPARATOR_LIMIT_EXCEEDED"
    assert [v.field for v in err.field_violations] == ["chunking_settings.separators"]


def test_a_backtracking_separator_stops_at_the_deadline() -> None:
    settings = parse_chunking_settings(recursive(HOSTILE))
    with pytest.raises(ElserError) as info:
        chunk(HOSTILE_TEXT, settings, separator_budget_s=600, deadline=time.monotonic() + 0.2)
    assert (info.value.code, info.value.http_status) == (Code.DEADLINE_EXCEEDED, 408)
    with pytest.raises(ElserError) as info:
        chunk(HOSTILE_TEXT, settings, deadline=time.monotonic() - 1)  # already past: no matching at all
    assert info.value.code is Code.DEADLINE_EXCEEDED


def test_separators_within_budget_chunk_as_before() -> None:
    settings = parse_chunking_settings(recursive("\n"))
    text = "a b\nc d\ne f\ng h i j k l m n o"
    bounded = chunk(text, settings, separator_budget_s=5, deadline=time.monotonic() + 60)
    assert bounded == chunk(text, settings)
    assert [c.text(text) for c in bounded] == ["a b\nc d\ne f", "\ng h i j k l m n o"]


async def test_chunk_off_loop_answers_by_the_deadline() -> None:
    settings = parse_chunking_settings(recursive(HOSTILE))
    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(ElserError) as info:
            await chunk_off_loop(
                pool, HOSTILE_TEXT, settings, separator_budget_s=None, deadline=time.monotonic() + 0.2
            )
        assert (info.value.code, info.value.reason) == (
            Code.DEADLINE_EXCEEDED,
            "Timed out waiting for inference result",
        )
        text = "a b\nc d"
        assert await chunk_off_loop(
            pool, text, settings, separator_budget_s=1, deadline=time.monotonic() + 60
        ) == chunk(text, settings)
