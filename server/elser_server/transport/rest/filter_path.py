"""ES `filter_path`: comma-separated dotted paths; `*` matches within one name, `**` any number of levels,
a leading `-` excludes. Arrays are transparent (paths apply to their elements). Inclusions run first, then
exclusions; when nothing is included the body is `{}` (as ES prints it)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_Path = tuple[str, ...]
_MISSING = object()


@dataclass(frozen=True)
class FilterPath:
    includes: tuple[_Path, ...]
    excludes: tuple[_Path, ...]

    @classmethod
    def parse(cls, expression: str) -> FilterPath | None:
        includes: list[_Path] = []
        excludes: list[_Path] = []
        for raw in expression.split(","):
            item = raw.strip()
            target = includes
            if item.startswith("-"):
                item, target = item[1:], excludes
            if item:
                target.append(tuple(item.split(".")))
        if not includes and not excludes:
            return None
        return cls(tuple(includes), tuple(excludes))

    def apply(self, body: dict[str, object]) -> object:
        result: object = body
        if self.includes:
            result = _include(body, self.includes)
            if result is _MISSING:
                return {}
        if self.excludes:
            result = _exclude(result, self.excludes)
        return result


@functools.lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _advance(paths: tuple[_Path, ...], key: str) -> tuple[list[_Path], bool]:
    """The paths that continue below `key`, and whether one of them ends exactly at `key`."""
    below: list[_Path] = []
    complete = False
    pending = list(paths)
    while pending:
        path = pending.pop()
        head, rest = path[0], path[1:]
        if head == "**":
            below.append(path)  # `**` may consume more levels …
            if rest:
                pending.append(rest)  # … or none
            else:
                complete = True
            continue
        if _glob(head).fullmatch(key):
            if rest:
                below.append(rest)
            else:
                complete = True
    return below, complete


def _include(value: object, paths: tuple[_Path, ...]) -> object:
    if isinstance(value, list):
        kept = [item for item in (_include(v, paths) for v in value) if item is not _MISSING]
        return kept or _MISSING
    if not isinstance(value, dict):
        return _MISSING
    out: dict[str, object] = {}
    for key, item in value.items():
        below, complete = _advance(paths, key)
        if complete:
            out[key] = item
        elif below:
            filtered = _include(item, tuple(below))
            if filtered is not _MISSING:
                out[key] = filtered
    return out or _MISSING


def _exclude(value: object, paths: tuple[_Path, ...]) -> object:
    if isinstance(value, list):
        return [_exclude(item, paths) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, object] = {}
    for key, item in value.items():
        below, complete = _advance(paths, key)
        if complete:
            continue
        out[key] = _exclude(item, tuple(below)) if below else item
    return out
