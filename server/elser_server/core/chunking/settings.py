"""Chunking settings: parsing/validation with ES's messages, defaults, and ES serialization order."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from elser_server.core.chunking.separators import MAX_SEPARATORS, separator_problems
from elser_server.core.errors import invalid
from elser_server.core.es_validation import (
    ValidationErrors,
    java_double,
    java_str,
    take_int,
    take_positive_int,
    type_error,
)

SCOPE = "chunking_settings"
_ERROR = ("validation_exception", "INVALID_ARGUMENT", SCOPE)  # ES type, ErrorInfo reason, field

WORD_MAX_CHUNK_SIZE_RANGE = (10, 300)
# ES's source enforces only >= 20 for sentence; the docs (and ELSER's 512-token window) say 300.
SENTENCE_MAX_CHUNK_SIZE_RANGE = (20, 300)
RECURSIVE_MAX_CHUNK_SIZE_RANGE = (10, 300)
DEFAULT_SENTENCE_OVERLAP = 1


class Strategy(enum.StrEnum):
    WORD = "word"
    SENTENCE = "sentence"
    NONE = "none"
    RECURSIVE = "recursive"


class SeparatorGroup(enum.StrEnum):
    """Named separator lists of the recursive strategy (ES 9.1+ `separator_group`); entries are regexes."""

    PLAINTEXT = "plaintext"
    MARKDOWN = "markdown"

    @property
    def separators(self) -> tuple[str, ...]:
        return _SEPARATOR_GROUPS[self]


_SEPARATOR_GROUPS: dict[SeparatorGroup, tuple[str, ...]] = {
    # Paragraph break first, then single line break (a lone newline, not part of a blank-line run).
    SeparatorGroup.PLAINTEXT: ("(?<!\n)\n\n(?!\n)", "(?<!\n)\n(?!\n)"),
    # ATX headings from the top level down, then setext headings (a text line underlined by - or =).
    SeparatorGroup.MARKDOWN: (
        "\n# ",
        "\n## ",
        "\n### ",
        "\n#### ",
        "\n##### ",
        "\n###### ",
        "\n^(?!\\s*$).*\\n-{1,}\\n",
        "\n^(?!\\s*$).*\\n={1,}\\n",
    ),
}


@dataclass(frozen=True)
class ChunkingSettings:
    strategy: Strategy
    max_chunk_size: int | None = None
    overlap: int | None = None
    sentence_overlap: int | None = None
    separators: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"strategy": self.strategy.value}
        if self.strategy is Strategy.NONE:
            return out
        out["max_chunk_size"] = self.max_chunk_size
        if self.strategy is Strategy.WORD:
            out["overlap"] = self.overlap
        elif self.strategy is Strategy.SENTENCE:
            out["sentence_overlap"] = self.sentence_overlap
        else:
            out["separators"] = list(self.separators or ())
        return out


DEFAULT_CHUNKING = ChunkingSettings(
    Strategy.SENTENCE, max_chunk_size=250, sentence_overlap=DEFAULT_SENTENCE_OVERLAP
)

_VALID_KEYS: dict[Strategy, tuple[str, ...]] = {
    Strategy.WORD: ("strategy", "max_chunk_size", "overlap"),
    Strategy.SENTENCE: ("strategy", "max_chunk_size", "sentence_overlap"),
    Strategy.RECURSIVE: ("strategy", "max_chunk_size", "separators", "separator_group"),
    Strategy.NONE: ("strategy",),
}
_EXTRA_KEYS_PREFIX: dict[Strategy, str] = {
    Strategy.WORD: "Word based",
    Strategy.SENTENCE: "Sentence based",
    Strategy.RECURSIVE: "Recursive",
}


def _check_max(key: str, value: int, maximum: int, errors: ValidationErrors) -> bool:
    if value > maximum:
        errors.add(
            f"[{SCOPE}] Invalid value [{java_double(value)}]. [{key}] must be a less than or equal to "
            f"[{java_double(maximum)}]"
        )
        return False
    return True


def _required_int_between(
    d: dict[str, Any], key: str, bounds: tuple[int, int], errors: ValidationErrors
) -> int | None:
    value = take_positive_int(d, key, SCOPE, errors, required=True)
    if value is None:
        return None
    if value < bounds[0]:
        errors.add(
            f"[{SCOPE}] Invalid value [{java_double(value)}]. [{key}] must be a greater than or equal to "
            f"[{java_double(bounds[0])}]"
        )
        return None
    return value if _check_max(key, value, bounds[1], errors) else None


def _strategy(d: Mapping[str, Any]) -> Strategy:
    raw = d.get("strategy")
    if raw is None:
        raise invalid(
            "Can't generate Chunker without ChunkingStrategy provided",
            es_type="illegal_argument_exception",
            field=f"{SCOPE}.strategy",
        )
    try:
        return Strategy(raw)
    except ValueError:
        raise invalid(
            f"Invalid chunkingStrategy {java_str(raw)}",
            es_type="illegal_argument_exception",
            field=f"{SCOPE}.strategy",
        ) from None


def _separators(d: dict[str, Any], errors: ValidationErrors, stored: bool) -> tuple[str, ...]:
    group_raw = d.pop("separator_group", None)
    group: SeparatorGroup | None = None
    if group_raw is not None:
        try:
            group = SeparatorGroup(str(group_raw).lower())
        except ValueError:
            valid = ", ".join(sorted(g.value for g in SeparatorGroup))
            errors.add(
                f"[{SCOPE}] Invalid value [{java_str(group_raw)}] received. [separator_group] must be one of "
                f"[{valid}]"
            )
    listed = d.pop("separators", None)
    separators: tuple[str, ...] | None = None
    if listed is not None:
        if isinstance(listed, list) and all(isinstance(s, str) for s in listed):
            separators = tuple(listed)
            if not separators:
                errors.add("Recursive chunking settings can not have an empty list of separators")
            elif len(separators) <= MAX_SEPARATORS and not stored:
                # ES compiles separators only when chunking; rejecting bad ones here avoids failing later.
                # Stored settings passed this once; the chunker checks them again before it compiles them.
                for problem in separator_problems(separators):
                    errors.add(problem)
        else:
            errors.add(type_error("separators", listed, "List<String>"))
    if listed is not None and group_raw is not None:
        errors.add("Recursive chunking settings can not have both separators and separator_group")
    if group is not None:
        return group.separators
    if separators is not None and len(separators) > MAX_SEPARATORS and not stored:
        errors.add(f"separators list size [{len(separators)}] must not exceed [{MAX_SEPARATORS}]")
    return separators or SeparatorGroup.PLAINTEXT.separators


def parse_chunking_settings(value: object, *, stored: bool = False) -> ChunkingSettings:
    """Validate a request's `chunking_settings` (any JSON value) as ES does; `None`/`{}` give the default.

    Raises `ElserError`: `illegal_argument_exception` for a missing/unknown strategy, otherwise one
    `validation_exception` listing every problem ES would list (ES's "Validation Failed: n: ...;" form).
    `stored`: settings read back from the store, which skip the limits of requests (ES's
    `enforceRequestLimits`) and the compiling of separators, so that start-up neither fails nor stalls."""
    if value is None:
        return DEFAULT_CHUNKING
    if not isinstance(value, Mapping):
        errors = ValidationErrors()
        errors.add(type_error(SCOPE, value, "Map"))
        raise errors.error(*_ERROR)
    if not value:
        return DEFAULT_CHUNKING
    strategy = _strategy(value)
    if strategy is Strategy.NONE:
        # ES's NoneChunkingSettings ignores any other key.
        return ChunkingSettings(Strategy.NONE)
    d = {str(k): v for k, v in value.items()}
    errors = ValidationErrors()
    extra = [k for k in d if k not in _VALID_KEYS[strategy]]
    if extra:
        errors.add(
            f"{_EXTRA_KEYS_PREFIX[strategy]} chunking settings can not have the following settings: "
            f"[{', '.join(extra)}]"
        )
    if strategy is Strategy.WORD:
        max_size = _required_int_between(d, "max_chunk_size", WORD_MAX_CHUNK_SIZE_RANGE, errors)
        overlap = None
        # ES checks overlap only once max_chunk_size is valid.
        if max_size is not None:
            overlap = take_positive_int(d, "overlap", SCOPE, errors, required=True)
            if overlap is not None:
                _check_max("overlap", overlap, max_size // 2, errors)
        errors.raise_if_any(*_ERROR)
        return ChunkingSettings(strategy, max_chunk_size=max_size, overlap=overlap)
    if strategy is Strategy.SENTENCE:
        max_size = _required_int_between(d, "max_chunk_size", SENTENCE_MAX_CHUNK_SIZE_RANGE, errors)
        _, sentence_overlap = take_int(d, "sentence_overlap", errors)
        if sentence_overlap is None:
            sentence_overlap = DEFAULT_SENTENCE_OVERLAP
        elif sentence_overlap not in (0, 1):
            errors.add(f"sentence_overlap[{sentence_overlap}] must be either 0 or 1")
        errors.raise_if_any(*_ERROR)
        return ChunkingSettings(strategy, max_chunk_size=max_size, sentence_overlap=sentence_overlap)
    max_size = _required_int_between(d, "max_chunk_size", RECURSIVE_MAX_CHUNK_SIZE_RANGE, errors)
    separators = _separators(d, errors, stored)
    errors.raise_if_any(*_ERROR)
    return ChunkingSettings(strategy, max_chunk_size=max_size, separators=separators)
