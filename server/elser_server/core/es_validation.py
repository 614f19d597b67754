"""How Elasticsearch spells validation: the "Validation Failed: 1: a;2: b;" collector, Java-typed value checks
and Java's rendering of values inside messages. Every ES rule module builds its errors from these."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from elser_server.core.errors import ElserError, FieldViolation, invalid

INT_MIN, INT_MAX = -(2**31), 2**31 - 1


def validation_failed(messages: list[str]) -> str:
    """ES's ValidationException text."""
    return "Validation Failed: " + "".join(f"{i}: {m};" for i, m in enumerate(messages, 1))


class ValidationErrors:
    """ES's ValidationException: messages collected (each with the body field it concerns), raised as one
    error."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str | None]] = []

    def add(self, message: str, path: str | None = None) -> None:
        self.items.append((message, path))

    def __bool__(self) -> bool:
        return bool(self.items)

    def error(self, es_type: str, error_reason: str, default_path: str | None = None) -> ElserError:
        """Messages without a path of their own are reported on `default_path` as one violation."""
        reason = validation_failed([message for message, _ in self.items])
        if all(path is None for _, path in self.items):
            return invalid(reason, es_type=es_type, error_reason=error_reason, field=default_path)
        return invalid(
            reason,
            es_type=es_type,
            error_reason=error_reason,
            violations=[FieldViolation(path or default_path or "", message) for message, path in self.items],
        )

    def raise_if_any(self, es_type: str, error_reason: str, default_path: str | None = None) -> None:
        if self.items:
            raise self.error(es_type, error_reason, default_path)


def type_error(key: str, value: object, java_type: str) -> str:
    return (
        f"field [{key}] is not of the expected type. The value [{java_str(value)}] cannot be converted to a "
        f"[{java_type}]"
    )


def is_java_int(value: object) -> bool:
    """JSON true/false, floats and numbers beyond 32 bits are other Java types in ES, never an Integer."""
    return isinstance(value, int) and not isinstance(value, bool) and INT_MIN <= value <= INT_MAX


def take_int(
    d: dict[str, Any], key: str, errors: ValidationErrors, path: str | None = None
) -> tuple[bool, int | None]:
    """ES removeAsType(Integer): (ok, value); JSON null counts as absent."""
    value = d.pop(key, None)
    if value is None:
        return True, None
    if is_java_int(value):
        return True, value
    errors.add(type_error(key, value, "Integer"), path)
    return False, None


def take_positive_int(
    d: dict[str, Any],
    key: str,
    scope: str,
    errors: ValidationErrors,
    *,
    required: bool,
    path: str | None = None,
) -> int | None:
    """ES extract(Required|Optional)PositiveInteger: messages name the settings `scope`."""
    ok, value = take_int(d, key, errors, path)
    if not ok:
        return None
    if value is None:
        if required:
            errors.add(f"[{scope}] does not contain the required setting [{key}]", path)
        return None
    if value <= 0:
        errors.add(f"[{scope}] Invalid value [{value}]. [{key}] must be a positive integer", path)
        return None
    return value


def take_map(
    d: dict[str, Any], key: str, errors: ValidationErrors, path: str | None = None
) -> dict[str, Any] | None:
    """ES removeFromMap as a Map: None when absent, a type error when not an object."""
    value = d.pop(key, None)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        errors.add(type_error(key, value, "Map"), path)
        return None
    return {str(k): v for k, v in value.items()}


def java_str(value: object) -> str:
    """Render a JSON value as Java's `toString()` would (ES interpolates values into messages that way).
    Objects are the `java.util.HashMap`s ES parses request bodies into, so their keys print in hash order."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(java_str(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return java_map_str(value)
    return str(value)


def java_map_str(value: Mapping[str, Any], inserted: Sequence[str] | None = None) -> str:
    """`HashMap.toString()` of `value`. `inserted`: every key the map ever held, in insertion order, when ES
    removed some of them first (removals never shrink a HashMap, so the others keep their places)."""
    keys = [key for key in java_hash_order(list(value) if inserted is None else inserted) if key in value]
    return "{" + ", ".join(f"{key}={java_str(value[key])}" for key in keys) + "}"


def java_hash_order(keys: Sequence[str]) -> list[str]:
    """Iteration order of a `java.util.HashMap<String, ?>` (default capacity 16, load factor 0.75) after
    putting `keys` in this order: by bucket (spread hash & (capacity - 1)), then by insertion within a bucket.
    The capacity doubles when the size passes 3/4 of it, and when a bucket reaches 9 entries in a table
    smaller than 64 (treeifyBin resizes instead). Buckets of 9+ keys in larger tables become red-black trees
    whose order is not modelled: that takes dozens of colliding keys, beyond any request body here."""
    hashes = [_spread(_java_string_hash(key)) for key in keys]
    capacity = 16
    for count, current in enumerate(hashes, start=1):
        mask = capacity - 1
        if capacity < 64 and sum((h & mask) == (current & mask) for h in hashes[:count]) >= 9:
            capacity *= 2
        if count > capacity * 3 // 4:
            capacity *= 2
    mask = capacity - 1
    order = sorted(range(len(keys)), key=lambda i: (hashes[i] & mask, i))
    return [keys[i] for i in order]


def _java_string_hash(text: str) -> int:
    """`String.hashCode()`: s[0]*31^(n-1) + ... over UTF-16 code units, as a 32-bit unsigned value."""
    units = text.encode("utf-16-be")
    value = 0
    for i in range(0, len(units), 2):
        value = (31 * value + (units[i] << 8 | units[i + 1])) & 0xFFFFFFFF
    return value


def _spread(hash_code: int) -> int:
    """HashMap.hash(): the high half folded into the low half (`h ^ (h >>> 16)`)."""
    return hash_code ^ (hash_code >> 16)


def java_double(value: float) -> str:
    """Java's `Double.toString`: shortest digits, plain in [1e-3, 1e7), else `d.dddE<exp>`."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = repr(float(value))
        return text if "e" not in text else format(Decimal(text), "f")
    sign, digits, exp = Decimal(repr(float(value))).normalize().as_tuple()
    assert isinstance(exp, int)
    text = "".join(map(str, digits))
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{len(digits) - 1 + exp}"


def format_time_value(seconds: float) -> str:
    """ES TimeValue rendering used in messages: 30s, 1.5s → 1500ms, 2m."""
    ms = round(seconds * 1000)
    if ms % 60_000 == 0 and ms >= 60_000:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"
