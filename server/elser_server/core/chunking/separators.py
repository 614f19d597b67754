"""Separator regexes of the recursive strategy, bounded as ES bounds them.

ES compiles separators as Java regexes and stops a match that reads more than a set multiple of the input's
characters. Python's `re` can do neither: it holds the GIL for the whole match, so one backtracking pattern
stalls every thread (event loop and health checks included), and nothing can stop it. The `regex` engine is
closer to Java's syntax (possessive quantifiers, atomic groups, `\\p{...}` classes), releases the GIL while it
matches (`concurrent=True`) and stops at a `timeout`, so each input's separators get a budget of CPU time and
the request's deadline. Compiling is bounded too: its cost grows with the pattern's length (about 4-8 µs a
character, holding the GIL) and with what counted repetitions require at least, which the engine copies
(`a{100000}` builds 100,000 elements, `(?:a{1000}){1000}` exhausts memory). So all of a request's separators
together may hold `MAX_SEPARATOR_ELEMENTS`, counted as `separator_elements` does, and no more.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from functools import lru_cache

import regex

from elser_server.core.errors import ElserError, deadline_exceeded, invalid

SCOPE = "chunking_settings"
# ES's RecursiveChunkingSettings.MAX_SEPARATOR_COUNT, enforced on requests (not on stored settings).
MAX_SEPARATORS = 50
MAX_SEPARATOR_ELEMENTS = 1000  # all separators together; ES's markdown group counts 75
DEADLINE_REASON = "Timed out waiting for inference result"  # the deployment's words for the same deadline

TOO_LARGE = (
    f"[{SCOPE}] [separators] must not exceed [{MAX_SEPARATOR_ELEMENTS}] characters in all, counting each "
    "counted repetition {m} as m copies of the separator before it"
)

# A counted repetition as the engine accepts it: {m}, {m,}, {,n}, {m,n}.
_COUNTED = re.compile(r"\{(\d*)(?:,\d*)?\}")
# An escape whose braced argument is no repetition: \x{41}, \p{L}, \P{L}, \N{name}.
_BRACED_ESCAPE = re.compile(r"\\[xpPN]\{[^}]*\}")


def separator_elements(separator: str, limit: int = MAX_SEPARATOR_ELEMENTS) -> int:
    """An upper bound on the elements the engine builds for `separator`, counted until it passes `limit`.

    Each character counts one, and a counted repetition with minimum m multiplies the count so far by m. That
    bounds what the engine copies (a repetition copies only its own item m times) whatever the structure, so
    classes, comments and groups need no parsing and cannot hide a repetition; and it is never below the
    length."""
    total = i = 0
    while i < len(separator) and total <= limit:
        end = i + 1
        if separator[i] == "\\":
            braced = _BRACED_ESCAPE.match(separator, i)
            end = braced.end() if braced else i + 2
        elif separator[i] == "{" and (counted := _COUNTED.match(separator, i)) is not None:
            total = max(total, 1) * _minimum(counted.group(1))
            end = counted.end()
        total += end - i
        i = end
    return total


def _minimum(digits: str) -> int:
    """A repetition's minimum as a factor (at least 1); past a billion it is a billion, beyond any bound."""
    digits = digits.lstrip("0")
    return int(digits) if 0 < len(digits) <= 9 else (1 if not digits else 10**9)


def separator_problems(separators: Sequence[str]) -> list[str]:
    """ES-style validation messages for `separators`: empty when they can all be compiled and used."""
    # The elements are never fewer than the characters, so long lists fail here without a scan.
    checked = _check(tuple(separators)) if sum(map(len, separators)) <= MAX_SEPARATOR_ELEMENTS else None
    if checked is None:
        return [TOO_LARGE]
    return [p for p in checked if isinstance(p, str)]


def compile_separators(separators: Sequence[str]) -> list[regex.Pattern[str]]:
    """The compiled separators; settings that bypassed validation (stored ones) get its error here."""
    problems = separator_problems(separators)
    if problems:
        reason = "Validation Failed: " + "".join(f"{i}: {p};" for i, p in enumerate(problems, 1))
        raise invalid(reason, es_type="validation_exception", field=SCOPE)
    return [p for p in _check(tuple(separators)) or () if isinstance(p, regex.Pattern)]


@lru_cache(maxsize=32)
def _check(separators: tuple[str, ...]) -> tuple[regex.Pattern[str] | str, ...] | None:
    """Each separator compiled or why it does not compile; None when together they are too large to compile.
    Only lists within the bound get here, and the engine's own cache is off, so this is all that stays."""
    left = MAX_SEPARATOR_ELEMENTS
    for separator in separators:
        left -= separator_elements(separator, left)
        if left < 0:
            return None
    return tuple(map(_compile, separators))


def _compile(separator: str) -> regex.Pattern[str] | str:
    try:
        # Java's Pattern.MULTILINE: `^`/`$` also match at line boundaries.
        return regex.compile(separator, regex.MULTILINE, cache_pattern=False)
    except regex.error as e:
        return f"[{SCOPE}] Invalid value [{separator}]. [separators] must be regular expressions: {e}"


class SeparatorClock:
    """The time one input's separators may spend matching: `budget_s` in all, and never past `deadline`
    (`time.monotonic()`); either may be None (unbounded).

    The engine's timeout counts the process's CPU time (C `clock()`), not the wall clock, so the budget is
    kept in that unit: it is the work the separators may do, and it runs out sooner while other threads of
    the process are busy. The deadline is the wall clock's; an engine timeout can pass it when the machine is
    short of CPU, which is why callers also stop waiting at the deadline (`chunk_off_loop`)."""

    __slots__ = ("_budget_left", "_deadline")

    def __init__(self, budget_s: float | None = None, deadline: float | None = None) -> None:
        self._budget_left = budget_s
        self._deadline = deadline

    def match_starts(self, pattern: regex.Pattern[str], text: str) -> list[int]:
        """Where `pattern` matches in `text`. Raises ES's 400 when the budget runs out first, the deadline's
        408 when the deadline does."""
        budget = float("inf") if self._budget_left is None else self._budget_left
        until_deadline = float("inf") if self._deadline is None else self._deadline - time.monotonic()
        timeout = min(budget, until_deadline)
        if timeout <= 0:
            raise self._expired(pattern.pattern, budget <= until_deadline)
        cpu = time.process_time()
        try:
            return [
                m.start()
                for m in pattern.finditer(
                    text, concurrent=True, timeout=None if timeout == float("inf") else timeout
                )
            ]
        except TimeoutError:
            raise self._expired(pattern.pattern, budget <= until_deadline) from None
        finally:
            if self._budget_left is not None:
                self._budget_left -= time.process_time() - cpu

    @staticmethod
    def _expired(separator: str, budget_first: bool) -> ElserError:
        if not budget_first:
            return deadline_exceeded(DEADLINE_REASON)
        return invalid(
            f"Chunk separator regex [{separator}] has exceeded the character read limit",
            es_type="illegal_argument_exception",
            error_reason="SEPARATOR_LIMIT_EXCEEDED",
            field=f"{SCOPE}.separators",
        )
