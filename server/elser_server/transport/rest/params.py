"""Query-string rules of ES's REST layer: strict booleans, time values, and the unrecognized-parameter error
with its "did you mean" suggestions."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from elser_server.transport.rest.errors import rest_error

COMMON_PARAMS = frozenset({"pretty", "human", "error_trace", "filter_path"})

_TIME_UNITS = (  # ES checks the suffixes in this order ("ms" before "s", "micros" before "s")
    ("nanos", 1e-9),
    ("micros", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),  # matched on the raw text: "M" (months) is not a unit
    ("h", 3600.0),
    ("d", 86400.0),
)
_LONG_MAX = 2**63 - 1
# Long.parseLong: an optional sign, then decimal digits (Unicode ones too, as Java's Character.digit reads them).
_LONG = re.compile(r"[+-]?\d+")
# Double.parseDouble's decimal and hexadecimal forms (ASCII digits only), with Java's optional type suffix.
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?", re.ASCII | re.IGNORECASE)
_HEXADECIMAL = re.compile(r"[+-]?0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)p[+-]?\d+", re.ASCII | re.IGNORECASE)


def parse_bool(name: str, raw: str) -> bool:
    """RestRequest.paramAsBoolean: a bare `?flag` means true; otherwise only `true`/`false`."""
    if raw in ("", "true"):
        return True
    if raw == "false":
        return False
    raise rest_error(f"Failed to parse value [{raw}] as only [true] or [false] are allowed.")


def parse_time_value(raw: str, setting: str) -> float | None:
    """TimeValue.parseTimeValue in seconds; `-1` (ES's "no timeout") is None. Fractions are refused, as ES
    does; so are numbers beyond a Java long, which ES reads as doubles and refuses the same way."""
    normalized = _java_trim(raw.lower())
    for suffix, seconds in _TIME_UNITS:
        if (raw if suffix == "m" else normalized).endswith(suffix):
            value = _long(raw, normalized[: -len(suffix)], setting)
            return None if value == -1 else value * seconds
    if re.fullmatch(r"-0*1", normalized):
        return None
    if re.fullmatch(r"0+", normalized):
        return 0.0
    raise rest_error(
        f"failed to parse setting [{setting}] with value [{raw}] as a time value: unit is missing or unrecognized"
    )


def java_double(text: str) -> float | None:
    """Double.parseDouble, None where it throws: NaN and Infinity as Java spells them, decimal and hexadecimal
    forms with ASCII digits and an optional `f`/`d` suffix, surrounding blanks ignored. Never raises (huge
    numbers are infinite, as in Java)."""
    number = _java_trim(text)
    if number.lstrip("+-") in ("NaN", "Infinity") and len(number) - len(number.lstrip("+-")) <= 1:
        return float(number)
    if number[-1:] in ("f", "F", "d", "D"):
        number = number[:-1]
    if _DECIMAL.fullmatch(number):
        return float(number)
    if _HEXADECIMAL.fullmatch(number):
        return float.fromhex(number)
    return None


def _java_trim(text: str) -> str:
    """String.trim: every character up to U+0020 goes, nothing else."""
    return text.strip("".join(map(chr, range(0x21))))


def _long(raw: str, number: str, setting: str) -> int:
    number = _java_trim(number)
    if _LONG.fullmatch(number):
        digits = number.lstrip("+-").lstrip("0")
        # Compared by length first: int() refuses strings past 4,300 digits.
        value = int(number) if len(digits) <= len(str(_LONG_MAX)) else None
        if value is not None and -_LONG_MAX - 1 <= value <= _LONG_MAX:
            if value < -1:
                raise rest_error(
                    f"failed to parse setting [{setting}] with value [{raw}] as a time value: "
                    "negative durations are not supported"
                )
            return value
    # Long.parseLong failed; when Double.parseDouble does not, ES calls the number a fraction.
    if java_double(number) is not None:
        raise rest_error(f"failed to parse [{raw}], fractional time values are not supported")
    raise rest_error(f"failed to parse [{raw}]")


def check_params(
    path: str, given: Iterable[str], supported: Collection[str], candidates: Collection[str]
) -> None:
    """Reject parameters the route does not consume, like BaseRestHandler.unrecognized; `candidates` are the
    extra names ES would suggest (the route's path parameters)."""
    allowed = COMMON_PARAMS | set(supported)
    unknown = sorted(set(given) - allowed)
    if not unknown:
        return
    names = allowed | set(candidates)
    pieces = []
    for name in unknown:
        scored = sorted(
            ((score, c) for c in names if (score := _similarity(name, c)) > 0.5),
            key=lambda sc: (-sc[0], sc[1]),
        )
        piece = f"[{name}]"
        if len(scored) == 1:
            piece += f" -> did you mean [{scored[0][1]}]?"
        elif scored:
            piece += " -> did you mean any of [" + ", ".join(c for _, c in scored) + "]?"
        pieces.append(piece)
    plural = "s" if len(unknown) > 1 else ""
    raise rest_error(f"request [{path}] contains unrecognized parameter{plural}: " + ", ".join(pieces))


def _similarity(a: str, b: str) -> float:
    """Lucene's LevenshteinDistance.getDistance: 1 - edits / longer length."""
    if not a and not b:
        return 1.0
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return 1.0 - previous[-1] / max(len(a), len(b))
