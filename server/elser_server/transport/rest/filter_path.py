"""ES `filter_path`: comma-separated dotted paths; `*` matches within one name, `**` any number of levels,
a leading `-` excludes. Arrays are transparent (paths apply to their elements). Inclusions run first, then
exclusions; when nothing is included the body is `{}` (as ES prints it).

Matching never backtracks. The expression becomes a small automaton whose states are positions in its paths;
below a key the live states are a set of those positions, found by comparing the key with each live name once
(a `*` glob is matched piece by piece, leftmost). Steps are memoised per (live states, key), so a response pays
for each distinct key once. The request line bounds the expression's text and `MAX_SEGMENTS` its names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from elser_server.transport.rest.errors import rest_error

MAX_SEGMENTS = 64  # dotted names in the whole expression: far more than clients send

_MISSING = object()
_States = frozenset[int]
_Step = Callable[[_States, str], tuple[_States, bool]]


def glob_match(pattern: str, name: str) -> bool:
    """ES's Glob.globMatch: `*` matches any run of characters (none included), everything else itself."""
    if "*" not in pattern:
        return pattern == name
    return _Glob(pattern).match(name)


class _Glob:
    """A `*` glob split into its literal pieces. Placing each piece leftmost after the previous one is exact for
    `*`-only globs, so a match costs one pass over the name."""

    def __init__(self, pattern: str) -> None:
        first, *middle, last = pattern.split("*")
        self.first, self.last = first, last
        self.middle = [piece for piece in middle if piece]
        self.min_length = len(first) + len(last) + sum(map(len, self.middle))

    def match(self, name: str) -> bool:
        if len(name) < self.min_length or not (name.startswith(self.first) and name.endswith(self.last)):
            return False
        position, end = len(self.first), len(name) - len(self.last)
        for piece in self.middle:
            found = name.find(piece, position, end)
            if found < 0:
                return False
            position = found + len(piece)
        return True


class _Automaton:
    """States are (path, position) pairs numbered 0..n-1. `names[s]` is the name state `s` expects: None for
    `**`; `following[s]` the state after it (None: the path ends there)."""

    def __init__(self) -> None:
        self.names: list[str | _Glob | None] = []
        self.following: list[int | None] = []
        self.starts: list[int] = []

    def add(self, path: list[str]) -> None:
        first = len(self.names)
        for position, name in enumerate(path):
            self.names.append(None if name == "**" else _Glob(name) if "*" in name else name)
            self.following.append(first + position + 1 if position + 1 < len(path) else None)
        self.starts.append(first)

    def stepper(self) -> _Step:
        memo: dict[tuple[_States, str], tuple[_States, bool]] = {}

        def step(states: _States, key: str) -> tuple[_States, bool]:
            """The states alive below `key`, and whether a path ends exactly at `key`."""
            found = memo.get((states, key))
            if found is None:
                found = memo[states, key] = self._step(states, key)
            return found

        return step

    def _step(self, states: _States, key: str) -> tuple[_States, bool]:
        below: set[int] = set()
        complete = False
        pending = list(states)
        seen: set[int] = set()
        while pending:
            state = pending.pop()
            if state in seen:
                continue
            seen.add(state)
            name, after = self.names[state], self.following[state]
            if name is None:  # `**` consumes this level and maybe more, or none at all
                below.add(state)
                if after is None:
                    complete = True
                else:
                    pending.append(after)
            elif name == key if isinstance(name, str) else name.match(key):
                if after is None:
                    complete = True
                else:
                    below.add(after)
        return frozenset(below), complete


@dataclass(frozen=True)
class FilterPath:
    includes: _Automaton
    excludes: _Automaton

    @classmethod
    def parse(cls, expression: str) -> FilterPath | None:
        includes, excludes = _Automaton(), _Automaton()
        segments = 0
        for raw in expression.split(","):
            item = raw.strip()
            target = includes
            if item.startswith("-"):
                item, target = item[1:], excludes
            if not item:
                continue
            path = _collapse(item.split("."))
            segments += len(path)
            if segments > MAX_SEGMENTS:
                raise rest_error(
                    f"[filter_path] has more than [{MAX_SEGMENTS}] path segments: filter on fewer fields"
                )
            target.add(path)
        if not includes.starts and not excludes.starts:
            return None
        return cls(includes, excludes)

    def apply(self, body: dict[str, object]) -> object:
        result: object = body
        if self.includes.starts:
            result = _include(body, frozenset(self.includes.starts), self.includes.stepper())
            if result is _MISSING:
                return {}
        if self.excludes.starts:
            result = _exclude(result, frozenset(self.excludes.starts), self.excludes.stepper())
        return result


def _collapse(names: list[str]) -> list[str]:
    """`**.**` matches what one `**` matches: runs of them are one."""
    out: list[str] = []
    for name in names:
        if not (name == "**" and out and out[-1] == "**"):
            out.append(name)
    return out


def _include(value: object, states: _States, step: _Step) -> object:
    if isinstance(value, list):
        kept = [item for item in (_include(v, states, step) for v in value) if item is not _MISSING]
        return kept or _MISSING
    if not isinstance(value, dict):
        return _MISSING
    out: dict[str, object] = {}
    for key, item in value.items():
        below, complete = step(states, key)
        if complete:
            out[key] = item
        elif below:
            filtered = _include(item, below, step)
            if filtered is not _MISSING:
                out[key] = filtered
    return out or _MISSING


def _exclude(value: object, states: _States, step: _Step) -> object:
    if isinstance(value, list):
        return [_exclude(item, states, step) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, object] = {}
    for key, item in value.items():
        below, complete = step(states, key)
        if complete:
            continue
        out[key] = _exclude(item, below, step) if below else item
    return out
