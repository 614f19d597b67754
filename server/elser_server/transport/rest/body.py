"""JSON bodies → plain values. PUT/_update bodies become the dict the core validates; the inference body is
read like ES's ObjectParser for InferenceAction.Request (field types, unknown fields, positions)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from aiohttp import web
from elser_server.core.errors import ElserError
from elser_server.core.input_type import InputType, parse_input_type
from elser_server.transport.rest.errors import RestError, rest_error
from elser_server.transport.rest.params import java_double

# ES names the inference request parser after its transport action; the name appears in parse errors.
INFERENCE_PARSER = "cluster:internal/xpack/inference"
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
RAW_BODY = web.RequestKey("raw_body", bytes)  # the request's body once the shim has read it
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _reject_constant(name: str) -> object:
    raise ValueError(f"Non-standard token '{name}'")  # Jackson refuses NaN/Infinity by default


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """ES parses with Jackson's strict duplicate detection: a repeated key is a syntax error."""
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"Duplicate field '{key}'")
        out[key] = value
    return out


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_unique_keys)


def _decode(raw: bytes) -> tuple[str, object]:
    """Raises ValueError (with a position when there is one) for anything but one well-formed JSON value."""
    text = raw.decode("utf-8")
    try:
        return text, _DECODER.decode(text)
    except RecursionError:
        raise ValueError("JSON nesting is too deep") from None


def _position(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"[{exc.lineno}:{exc.colno}] "
    return ""


def parse_map(raw: bytes) -> dict[str, object]:
    """XContentHelper.convertToMap: any syntax error or non-object is ES's parse_exception."""
    try:
        _, value = _decode(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _map_failure(f"{_position(exc)}{exc}") from None
    if not isinstance(value, dict):
        raise _map_failure(f"Expected START_OBJECT but was: {_token(value)}")
    return value


def _map_failure(detail: str) -> RestError:
    return rest_error(
        "Failed to parse content to map", "parse_exception", caused_by=("json_parse_exception", detail)
    )


@dataclass(frozen=True)
class InferenceRequest:
    input: list[str] | None = None
    input_type: InputType | None = None
    query: str | None = None
    return_documents: bool | None = None
    top_n: int | None = None
    task_settings: dict[str, object] = field(default_factory=dict)
    timeout: str | None = None


def parse_inference_request(raw: bytes) -> InferenceRequest:
    try:
        text, value = _decode(raw)
    except ValueError as exc:
        raise rest_error(f"{_position(exc) or '[1:1] '}{exc}", "x_content_parse_exception") from None
    if not isinstance(value, dict):
        raise _parse_error(text, None, f"Expected START_OBJECT but was: {_token(value)}")
    fields: dict[str, object] = {}
    for name, item in value.items():
        if name == "input":
            fields[name] = _input(text, item)
        elif name == "input_type":
            fields[name] = _input_type(text, _string_field(text, name, item))
        elif name in ("query", "timeout"):
            fields[name] = _string_field(text, name, item)
        elif name == "return_documents":
            fields[name] = _bool_field(text, name, item)
        elif name == "top_n":
            fields[name] = _int_field(text, name, item)
        elif name == "task_settings":
            if not isinstance(item, dict):
                raise _unsupported(text, name, item)
            fields[name] = item
        else:
            raise _parse_error(text, name, f"unknown field [{name}]")
    return InferenceRequest(**fields)  # type: ignore[arg-type]


def _input_type(text: str, item: str) -> InputType:
    """ObjectParser wraps the setter's IllegalArgumentException, positioned at the value token."""
    try:
        return parse_input_type(item)
    except ElserError as exc:
        raise _parse_error(
            text, "input_type", "failed to parse field [input_type]", (exc.es_type, exc.reason), at_value=True
        ) from None


def _input(text: str, item: object) -> list[str]:
    if isinstance(item, str):
        return [item]
    if not isinstance(item, list):
        raise _unsupported(text, "input", item)
    inputs = []
    for element in item:
        # XContentParser.text() reads numbers and booleans as their literal text; anything else fails.
        if isinstance(element, str):
            inputs.append(element)
        elif isinstance(element, bool | int | float):
            inputs.append(json.dumps(element))
        else:
            raise _parse_error(text, "input", "failed to parse field [input]")
    return inputs


def _string_field(text: str, name: str, item: object) -> str:
    if not isinstance(item, str):
        raise _unsupported(text, name, item)
    return item


def _bool_field(text: str, name: str, item: object) -> bool:
    if isinstance(item, bool):
        return item
    if item in ("true", "false"):
        return item == "true"
    if isinstance(item, str):
        raise _parse_error(text, name, f"failed to parse field [{name}]")
    raise _unsupported(text, name, item)


def _int_field(text: str, name: str, item: object) -> int:
    """XContentParser.intValue: a JSON integer, or a string Double.parseDouble reads (ASCII digits only) within
    Integer's range."""
    if isinstance(item, int) and not isinstance(item, bool):
        return item
    if isinstance(item, float) and item.is_integer():
        return int(item)
    if isinstance(item, str):
        number = java_double(item)
        if number is not None and number.is_integer() and _INT_MIN <= number <= _INT_MAX:
            return int(number)
    if isinstance(item, float | str):
        raise _parse_error(text, name, f"failed to parse field [{name}]")
    raise _unsupported(text, name, item)


def _token(value: object) -> str:
    """The Jackson token a JSON value starts with, as ES names it in messages."""
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, bool):
        return "VALUE_BOOLEAN"
    if value is None:
        return "VALUE_NULL"
    return "VALUE_NUMBER"


def _unsupported(text: str, name: str, item: object) -> RestError:
    return _parse_error(text, name, f"{name} doesn't support values of type: {_token(item)}")


def _parse_error(
    text: str,
    name: str | None,
    message: str,
    caused_by: tuple[str, str] | None = None,
    *,
    at_value: bool = False,
) -> RestError:
    line, column = _location(text, name, at_value=at_value)
    return rest_error(
        f"[{line}:{column}] [{INFERENCE_PARSER}] {message}", "x_content_parse_exception", caused_by=caused_by
    )


def _location(text: str, name: str | None, *, at_value: bool = False) -> tuple[int, int]:
    """Jackson's token location (1-based) of the top-level key `name`, or of its value, else of the body's
    first token. Jackson reads ES's request bytes, so columns count UTF-8 bytes; `\r\n`, `\r` and `\n` each end
    a line. Only computed on failure, so valid requests are parsed once."""
    offset = _first_token(text, 0)
    if name is not None and offset < len(text) and text[offset] == "{":
        for key, key_offset, value_offset in _top_level_keys(text, offset):
            if key == name:
                offset = value_offset if at_value else key_offset
    breaks = list(_LINE_BREAK.finditer(text, 0, offset))
    line_start = breaks[-1].end() if breaks else 0
    return len(breaks) + 1, len(text[line_start:offset].encode("utf-8")) + 1


def _first_token(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _top_level_keys(text: str, brace: int) -> list[tuple[str, int, int]]:
    """Keys of an already validated (so duplicate-free) top-level object with their and their values' offsets."""
    keys = []
    index = _first_token(text, brace + 1)
    while text[index] != "}":
        key, after = _DECODER.raw_decode(text, index)
        value = _first_token(text, _first_token(text, after) + 1)
        keys.append((key, index, value))
        _, index = _DECODER.raw_decode(text, value)
        index = _first_token(text, index)
        if text[index] == ",":
            index = _first_token(text, index + 1)
    return keys
