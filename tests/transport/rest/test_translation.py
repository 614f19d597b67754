"""Pure translation rules of the shim (no server): time values, booleans, parameters, filter_path, float and
JSON formatting, path grammar, media types, inference body parsing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from elser_server.core.errors import ElserError
from elser_server.core.input_type import InputType
from elser_server.transport.rest import body, media, params, routes
from elser_server.transport.rest.filter_path import MAX_SEGMENTS, FilterPath, glob_match
from elser_server.transport.rest.jsontext import RawNumber, dumps, java_float, weights_text
from elser_server.transport.rest.routes import Action, Route
from hypothesis import given
from hypothesis import strategies as st


def reason(exc: pytest.ExceptionInfo[ElserError]) -> str:
    return exc.value.reason


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("30s", 30.0),
        ("1m", 60.0),
        ("500ms", 0.5),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("250micros", 250e-6),
        ("7000nanos", 7e-6),
        (" 5S ", 5.0),
        ("0", 0.0),
        ("-1", None),
        ("-1s", None),
        ("-0001", None),
        ("000", 0.0),
        ("9223372036854775807d", 9223372036854775807 * 86400.0),  # Long.MAX_VALUE days, as ES takes it
        ("\u0663s", 3.0),  # Java reads Unicode decimal digits
    ],
)
def test_time_values(raw: str, seconds: float | None) -> None:
    assert params.parse_time_value(raw, "timeout") == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            "10",
            "failed to parse setting [timeout] with value [10] as a time value: unit is missing or unrecognized",
        ),
        (
            "",
            "failed to parse setting [timeout] with value [] as a time value: unit is missing or unrecognized",
        ),
        ("1.5s", "failed to parse [1.5s], fractional time values are not supported"),
        ("abcs", "failed to parse [abcs]"),
        (
            "-2s",
            "failed to parse setting [timeout] with value [-2s] as a time value: negative durations are not supported",
        ),
        # Past a Java long, ES's Long.parseLong fails and Double.parseDouble does not: "fractional".
        (
            "9223372036854775808s",
            "failed to parse [9223372036854775808s], fractional time values are not supported",
        ),
        (
            "1" + "0" * 5000 + "s",
            f"failed to parse [1{'0' * 5000}s], fractional time values are not supported",
        ),
        ("1e400s", "failed to parse [1e400s], fractional time values are not supported"),
        ("²s", "failed to parse [²s]"),  # a superscript is not a digit
        ("0x10s", "failed to parse [0x10s]"),
        (
            "5M",  # months, not minutes
            "failed to parse setting [timeout] with value [5M] as a time value: unit is missing or unrecognized",
        ),
    ],
)
def test_bad_time_values(raw: str, message: str) -> None:
    with pytest.raises(ElserError) as exc:
        params.parse_time_value(raw, "timeout")
    assert (exc.value.es_type, exc.value.http_status, reason(exc)) == (
        "illegal_argument_exception",
        400,
        message,
    )


def test_strict_booleans() -> None:
    assert params.parse_bool("force", "") is True
    assert params.parse_bool("force", "true") is True
    assert params.parse_bool("force", "false") is False
    with pytest.raises(ElserError) as exc:
        params.parse_bool("force", "yes")
    assert reason(exc) == "Failed to parse value [yes] as only [true] or [false] are allowed."


def test_unrecognized_parameters_suggest_near_misses() -> None:
    with pytest.raises(ElserError) as exc:
        params.check_params("/_inference/x", ["tmeout"], {"timeout"}, ["inference_id"])
    assert (
        reason(exc)
        == "request [/_inference/x] contains unrecognized parameter: [tmeout] -> did you mean [timeout]?"
    )
    with pytest.raises(ElserError) as exc:
        params.check_params("/_inference/x", ["zzz", "dry-run", "forc"], {"dry_run", "force"}, [])
    assert reason(exc) == (
        "request [/_inference/x] contains unrecognized parameters: [dry-run] -> did you mean [dry_run]?, "
        "[forc] -> did you mean [force]?, [zzz]"
    )
    params.check_params("/", ["pretty", "human", "error_trace", "filter_path", "timeout"], {"timeout"}, [])


BODY: dict[str, object] = {
    "endpoints": [
        {
            "inference_id": "a",
            "service": "elasticsearch",
            "service_settings": {"num_threads": 1, "model_id": "m"},
        },
        {
            "inference_id": "b",
            "service": "elasticsearch",
            "service_settings": {"num_threads": 2, "model_id": "n"},
        },
    ]
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("endpoints.inference_id", {"endpoints": [{"inference_id": "a"}, {"inference_id": "b"}]}),
        ("endpoints.*_id", {"endpoints": [{"inference_id": "a"}, {"inference_id": "b"}]}),
        (
            "**.model_id",
            {"endpoints": [{"service_settings": {"model_id": "m"}}, {"service_settings": {"model_id": "n"}}]},
        ),
        (
            "endpoints.service_settings",
            {"endpoints": [{"service_settings": s["service_settings"]} for s in BODY["endpoints"]]},
        ),  # type: ignore[index, union-attr]
        ("nothing", {}),
        (
            "-endpoints.service_settings,-endpoints.service",
            {"endpoints": [{"inference_id": "a"}, {"inference_id": "b"}]},
        ),
        (
            "endpoints.*,-**.num_threads",
            {
                "endpoints": [
                    {"inference_id": "a", "service": "elasticsearch", "service_settings": {"model_id": "m"}},
                    {"inference_id": "b", "service": "elasticsearch", "service_settings": {"model_id": "n"}},
                ]
            },
        ),
        ("**", BODY),
    ],
)
def test_filter_path(expression: str, expected: object) -> None:
    selected = FilterPath.parse(expression)
    assert selected is not None and selected.apply(BODY) == expected


def test_filter_path_blank_is_no_filter() -> None:
    assert FilterPath.parse(" , ") is None


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("*", "", True),
        ("a*", "abc", True),
        ("*c", "abc", True),
        ("a*c", "ac", True),
        ("a*b*c", "aXbYc", True),
        ("a*b*c", "acb", False),
        ("*ab*ab*", "xabyab", True),
        ("*ab*ab*", "xab", False),
        ("a**b", "ab", True),
        ("*" * 2000 + "Z", "a" * 50, False),
        ("*a" * 30 + "*", "a" * 29, False),
    ],
)
def test_glob_match(pattern: str, name: str, matches: bool) -> None:
    assert glob_match(pattern, name) is matches


def test_filter_path_is_bounded() -> None:
    assert FilterPath.parse(".".join(["a"] * MAX_SEGMENTS)) is not None
    with pytest.raises(ElserError) as exc:
        FilterPath.parse(".".join(["a"] * MAX_SEGMENTS) + ",b")
    assert reason(exc).startswith(f"[filter_path] has more than [{MAX_SEGMENTS}] path segments")


def test_runs_of_double_stars_are_one() -> None:
    selected = FilterPath.parse(".".join(["**"] * 40) + ".model_id")
    assert selected is not None
    assert selected.apply(BODY) == FilterPath.parse("**.model_id").apply(BODY)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5", 5),
        (" 7 ", 7),
        ("1e3", 1000),
        ("²", None),
        ("٣", None),
        ("1.5", None),
        ("NaN", None),
        ("1e400", None),
    ],
)
def test_int_fields_read_strings_as_java_does(text: str, value: int | None) -> None:
    raw = json.dumps({"input": "x", "top_n": text}, ensure_ascii=False).encode()
    if value is not None:
        assert body.parse_inference_request(raw).top_n == value
        return
    with pytest.raises(ElserError) as exc:
        body.parse_inference_request(raw)
    assert reason(exc).endswith("failed to parse field [top_n]")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2.1259406, "2.1259406"),
        (2.0, "2.0"),
        (0.001, "0.001"),
        (5e-4, "5.0E-4"),
        (1.2345e-5, "1.2345E-5"),
        (1e7, "1.0E7"),
        (9999999.0, "9999999.0"),
        (1234567.0, "1234567.0"),
        (999999.9, "999999.9"),
        (0.1, "0.1"),
    ],
)
def test_java_float(value: float, text: str) -> None:
    assert java_float(np.float32(value)) == text


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_java_float_round_trips_float32(value: float) -> None:
    text = java_float(np.float32(value))
    assert np.float32(json.loads(text)) == np.float32(value)
    assert ("E" in text) == (value != 0 and not 1e-3 <= abs(value) < 1e7)


@given(
    st.lists(
        st.floats(min_value=0.0010000000474974513, max_value=1e6, width=32, exclude_max=True), min_size=1
    )
)
def test_weight_fast_path_matches_java_float(values: list[float]) -> None:
    weights = np.array(values, dtype=np.float32)
    assert weights_text(weights) == [java_float(w) for w in weights]


def test_pretty_is_jackson_style() -> None:
    tree = {"a": 1, "b": [], "c": {}, "d": [True, None], "e": {"f": RawNumber("5.0E-4"), "g": "x"}}
    assert dumps(tree, pretty=True) == (
        '{\n  "a" : 1,\n  "b" : [ ],\n  "c" : { },\n  "d" : [\n    true,\n    null\n  ],\n'
        '  "e" : {\n    "f" : 5.0E-4,\n    "g" : "x"\n  }\n}\n'
    )
    assert dumps(tree) == '{"a":1,"b":[],"c":{},"d":[true,null],"e":{"f":5.0E-4,"g":"x"}}'
    assert dumps({"k": "é\u2028"}) == '{"k":"é\u2028"}'  # UTF-8, unescaped, as ES prints


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("GET", "/", Route(Action.ROOT)),
        ("HEAD", "/", Route(Action.ROOT)),
        ("GET", "/_inference", Route(Action.GET)),
        ("GET", "/_inference/", Route(Action.GET)),
        ("GET", "/_inference/_all", Route(Action.GET, "_all")),
        ("GET", "/_inference/*", Route(Action.GET, "*")),
        ("GET", "/_inference/sparse_embedding", Route(Action.GET, "sparse_embedding")),  # an id, as in ES
        ("GET", "/_inference/sparse_embedding/_all", Route(Action.GET, "_all", "sparse_embedding")),
        ("GET", "/_inference/my%2Fid", Route(Action.GET, "my/id")),
        ("PUT", "/_inference/e", Route(Action.PUT, "e")),
        ("PUT", "/_inference/sparse_embedding/e", Route(Action.PUT, "e", "sparse_embedding")),
        ("POST", "/_inference/e", Route(Action.INFER, "e")),
        ("POST", "/_inference/bad/e", Route(Action.INFER, "e", "bad")),
        ("DELETE", "/_inference/sparse_embedding/e", Route(Action.DELETE, "e", "sparse_embedding")),
        ("PUT", "/_inference/e/_update", Route(Action.UPDATE, "e")),
        ("GET", "/_inference/e/_update", Route(Action.GET, "_update", "e")),  # only PUT has the literal route
        ("PUT", "/_inference/sparse_embedding/e/_update", Route(Action.UPDATE, "e", "sparse_embedding")),
        ("POST", "/_inference/e/_stream", Route(Action.STREAM, "e")),
        ("POST", "/_inference/sparse_embedding/e/_stream", Route(Action.STREAM, "e", "sparse_embedding")),
        ("POST", "/_elser/chunked/e", Route(Action.CHUNKED, "e")),
        ("POST", "/_elser/chunked/sparse_embedding/e", Route(Action.CHUNKED, "e", "sparse_embedding")),
        ("GET", "/_elser/deployments/e/_stats", Route(Action.STATS, "e")),
    ],
)
def test_path_grammar(method: str, path: str, route: Route) -> None:
    assert routes.resolve(method, routes.split_path(path), path) == route


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/foo", 400, "no handler found for uri [/foo] and method [GET]"),
        ("GET", "/_inference/a/b/c", 400, "no handler found for uri [/_inference/a/b/c] and method [GET]"),
        (
            "POST",
            "/_inference",
            405,
            "Incorrect HTTP method for uri [/_inference] and method [POST], allowed: [GET]",
        ),
        (
            "PATCH",
            "/_inference/e",
            405,
            "Incorrect HTTP method for uri [/_inference/e] and method [PATCH], "
            "allowed: [GET, POST, PUT, DELETE]",
        ),
        (
            "GET",
            "/_inference/t/e/_update",
            405,
            "Incorrect HTTP method for uri [/_inference/t/e/_update] and method [GET], allowed: [PUT]",
        ),
    ],
)
def test_unknown_routes(method: str, path: str, status: int, message: str) -> None:
    with pytest.raises(ElserError) as exc:
        routes.resolve(method, routes.split_path(path), path)
    assert (exc.value.http_status, reason(exc)) == (status, message)


VND = "application/vnd.elasticsearch+json"


@pytest.mark.parametrize(
    ("content_type", "accept", "has_body", "answer"),
    [
        (None, None, False, "application/json"),
        ("application/json", "application/json", True, "application/json"),
        ("application/json; charset=UTF-8", "*/*", True, "application/json"),
        (f"{VND}; compatible-with=9", f"{VND}; compatible-with=9", True, f"{VND};compatible-with=9"),
        (f"{VND}; compatible-with=8", f"{VND}; compatible-with=8", True, f"{VND};compatible-with=8"),
        (None, f"{VND}; compatible-with=7", False, f"{VND};compatible-with=7"),
        (f"{VND}; compatible-with=9", None, True, f"{VND};compatible-with=9"),
        (f"{VND}; compatible-with=8", f"{VND}; compatible-with=9", False, f"{VND};compatible-with=9"),
    ],
)
def test_media_types(content_type: str | None, accept: str | None, has_body: bool, answer: str) -> None:
    assert media.negotiate(content_type, accept, has_body) == answer


def test_media_type_mismatch() -> None:
    with pytest.raises(ElserError) as exc:
        media.negotiate(f"{VND}; compatible-with=8", f"{VND}; compatible-with=9", True)
    assert exc.value.es_type == "media_type_header_exception"
    assert reason(exc) == "Invalid media-type value on headers [Content-Type, Accept]"
    with pytest.raises(ElserError) as exc:
        media.negotiate(None, f"{VND}; compatible-with=6", False)
    assert reason(exc) == "Invalid media-type value on headers [Accept]"


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        (None, "Content-Type header is missing"),
        ("text/plain", "Content-Type header [text/plain] is not supported"),
    ],
)
def test_body_content_type(content_type: str | None, message: str) -> None:
    with pytest.raises(ElserError) as exc:
        media.check_body_type(content_type)
    assert (exc.value.http_status, reason(exc)) == (406, message)


def test_inference_body() -> None:
    parsed = body.parse_inference_request(b'{"input": "one", "task_settings": {}, "input_type": "search"}')
    assert parsed.input == ["one"] and parsed.input_type is InputType.SEARCH
    assert body.parse_inference_request(b'{"input": ["a", 1, true]}').input == ["a", "1", "true"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"input": "x", "foo": 1}', "[1:16] [cluster:internal/xpack/inference] unknown field [foo]"),
        (
            b'{\n  "input": "x",\n  "foo": 1\n}',
            "[3:3] [cluster:internal/xpack/inference] unknown field [foo]",
        ),
        (
            b'{"input": 5}',
            "[1:2] [cluster:internal/xpack/inference] input doesn't support values of type: VALUE_NUMBER",
        ),
        (
            b'{"input": null}',
            "[1:2] [cluster:internal/xpack/inference] input doesn't support values of type: VALUE_NULL",
        ),
        (b'{"input": [{}]}', "[1:2] [cluster:internal/xpack/inference] failed to parse field [input]"),
        (
            b'{"input": "x", "timeout": 5}',
            "[1:16] [cluster:internal/xpack/inference] timeout doesn't support values of type: VALUE_NUMBER",
        ),
        (
            b'{"input": "x", "task_settings": []}',
            "[1:16] [cluster:internal/xpack/inference] task_settings doesn't support values of type: START_ARRAY",
        ),
        (b'["x"]', "[1:1] [cluster:internal/xpack/inference] Expected START_OBJECT but was: START_ARRAY"),
        (b'{"input": ', "[1:11] Expecting value: line 1 column 11 (char 10)"),
        (b'{"input": "a", "input": "b"}', "[1:1] Duplicate field 'input'"),
    ],
)
def test_inference_body_errors(raw: bytes, message: str) -> None:
    with pytest.raises(ElserError) as exc:
        body.parse_inference_request(raw)
    assert (exc.value.es_type, reason(exc)) == ("x_content_parse_exception", message)


@pytest.mark.parametrize("raw", [b"[1]", b"{", b"NaN", b"\xff", b"[" * 100_000, b'{"a": {"b": 1, "b": 2}}'])
def test_map_body_errors(raw: bytes) -> None:
    with pytest.raises(ElserError) as exc:
        body.parse_map(raw)
    assert (exc.value.es_type, exc.value.http_status, reason(exc)) == (
        "parse_exception",
        400,
        "Failed to parse content to map",
    )
