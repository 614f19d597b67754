"""ES's answers over gRPC: every rule of tests/es_rules.py (the table the REST test sends as HTTP) that the typed
elser.v1 messages can express, sent as those messages. Each error must arrive with its gRPC code, ES's reason
text as the status message and the google.rpc details the transport attaches (ErrorInfo with ES's type and HTTP
status; BadRequest field violations; ResourceInfo for missing/existing endpoints; PreconditionFailure for
task-type mismatches).

`grpc_request` turns a rule's REST method, path and JSON body into the RPC and its message, and refuses what
the messages cannot say; a rule says why it is REST-only, and `test_table_rule_is_sent_unless_marked_rest_only`
checks that the adapter and the table agree, so no rule drops out unnoticed. The proto-only cases (unknown enum
numbers) follow the table.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from elser.v1 import endpoint_service_pb2 as es_pb2
from elser.v1 import endpoint_service_pb2_grpc as es_grpc
from elser.v1 import inference_service_pb2 as is_pb2
from elser.v1 import inference_service_pb2_grpc as is_grpc
from elser.v1 import types_pb2
from elser_server.core.deployment import Deployment
from elser_server.core.types import Priority
from es_rules import CS, RULES, Rule, only
from google.protobuf.message import Message
from grpcdetails import rich
from support import PUT_BODY

ENDPOINT_RESOURCE = "elser.v1.Endpoint"
UNKNOWN_ENUM = 99  # proto3 keeps unknown enum numbers: the server sees 99

Call = tuple[str, Message]


class Inexpressible(Exception):
    """The typed messages cannot carry this request."""


def _checked(value: object, kind: type) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise Inexpressible(f"{value!r} is not a {kind.__name__}")
    return value


def _enum(enum: Any, prefix: str, name: object) -> int:
    key = prefix + _checked(name, str).upper()
    if key not in enum.keys() or enum.Value(key) == 0:  # noqa: SIM118 (EnumTypeWrapper has no __contains__)
        raise Inexpressible(f"no enum value for {name!r}")
    return int(enum.Value(key))


def _fill(msg: Message, values: object, scalars: dict[str, type]) -> None:
    for key, value in _checked(values, dict).items():
        if key not in scalars:
            raise Inexpressible(f"no field {key!r}")
        setattr(msg, key, _checked(value, scalars[key]))


def _service_settings(msg: types_pb2.ServiceSettings, values: object) -> None:
    msg.SetInParent()
    values = dict(_checked(values, dict))
    adaptive = values.pop("adaptive_allocations", None)
    _fill(msg, values, {"model_id": str, "num_allocations": int, "num_threads": int, "deployment_id": str})
    if adaptive is not None:
        msg.adaptive_allocations.SetInParent()
        _fill(
            msg.adaptive_allocations,
            adaptive,
            {"enabled": bool, "min_number_of_allocations": int, "max_number_of_allocations": int},
        )


def _chunking_settings(msg: types_pb2.ChunkingSettings, values: object) -> None:
    msg.SetInParent()
    values = dict(_checked(values, dict))
    if "strategy" in values:
        msg.strategy = _enum(types_pb2.ChunkingStrategy, "CHUNKING_STRATEGY_", values.pop("strategy"))
    separators = values.pop("separators", None)
    if separators is not None:
        if not _checked(separators, list):
            raise Inexpressible("an empty repeated field is not given")
        msg.separators.extend(_checked(s, str) for s in separators)
    _fill(
        msg, values, {"max_chunk_size": int, "overlap": int, "sentence_overlap": int, "separator_group": str}
    )


def endpoint_config(body: object) -> types_pb2.EndpointConfig:
    config = types_pb2.EndpointConfig()
    for key, value in _checked(body, dict).items():
        if key == "service":
            config.service = _checked(value, str)
        elif key == "task_type":
            config.task_type = _enum(types_pb2.TaskType, "TASK_TYPE_", value)
        elif key == "service_settings":
            _service_settings(config.service_settings, value)
        elif key == "chunking_settings":
            _chunking_settings(config.chunking_settings, value)
        elif key == "task_settings":
            config.task_settings.SetInParent()
            config.task_settings.update(_checked(value, dict))
        else:
            raise Inexpressible(f"no field {key!r}")
    return config


def infer_request(inference_id: str, task_type: int, body: object) -> is_pb2.InferRequest:
    fields = dict(_checked(body, dict))
    if "input" not in fields:
        raise Inexpressible("a missing repeated field is the empty list")
    texts = fields.pop("input")
    request = is_pb2.InferRequest(inference_id=inference_id, task_type=task_type)
    request.input.extend(
        [texts] if isinstance(texts, str) else [_checked(t, str) for t in _checked(texts, list)]
    )
    _fill(request, fields, {"input_type": str})
    return request


def grpc_request(rule: Rule) -> Call:
    """The RPC a REST request of the table is, or Inexpressible."""
    if "?" in rule.path:
        raise Inexpressible("query parameters")
    head, *parts = rule.path.strip("/").split("/")
    assert head == "_inference" and parts, rule.path
    suffix = parts.pop() if parts[-1] in ("_update", "_stream") else None
    if suffix == "_stream":
        raise Inexpressible("server-sent events")
    task_type = _enum(types_pb2.TaskType, "TASK_TYPE_", parts[0]) if len(parts) == 2 else 0
    inference_id = parts[-1]
    match rule.method, suffix:
        case "PUT", None:
            return "PutEndpoint", es_pb2.PutEndpointRequest(
                inference_id=inference_id,
                task_type=task_type,
                endpoint=endpoint_config(rule.body),
            )
        case "PUT", "_update":
            return "UpdateEndpoint", es_pb2.UpdateEndpointRequest(
                inference_id=inference_id,
                task_type=task_type,
                endpoint=endpoint_config(rule.body),
            )
        case "GET", None:
            return "GetEndpoint", es_pb2.GetEndpointRequest(inference_id=inference_id, task_type=task_type)
        case "DELETE", None:
            return "DeleteEndpoint", es_pb2.DeleteEndpointRequest(
                inference_id=inference_id, task_type=task_type
            )
        case "POST", None:
            return "Infer", infer_request(inference_id, task_type, rule.body)
    raise AssertionError(f"no RPC for {rule.method} {rule.path}")


def _unknown_number(call: Call, reason: str, field: str, error_reason: str) -> tuple[Call, Rule]:
    return call, Rule("", "", None, 400, "status_exception", reason, error_reason, only(field, reason))


def _put_with(url_task_type: int = types_pb2.TASK_TYPE_SPARSE_EMBEDDING, **config: Any) -> Call:
    """PUT x: PUT_BODY with `config` merged in."""
    endpoint = endpoint_config(PUT_BODY)
    endpoint.MergeFrom(types_pb2.EndpointConfig(**config))
    return "PutEndpoint", es_pb2.PutEndpointRequest(
        inference_id="x", task_type=url_task_type, endpoint=endpoint
    )


UNKNOWN_TASK_TYPE = f"Unknown task_type [{UNKNOWN_ENUM}]"
EXISTING = es_pb2.PutEndpointRequest(
    inference_id="existing",
    task_type=types_pb2.TASK_TYPE_SPARSE_EMBEDDING,
    endpoint=endpoint_config(PUT_BODY),
)

# What the table's task-type and strategy names say, as the numbers a proto client can send instead.
PROTO_ONLY: list[tuple[Call, Rule]] = [
    *[
        _unknown_number(call, UNKNOWN_TASK_TYPE, "task_type", "UNKNOWN_TASK_TYPE")
        for call in (
            _put_with(url_task_type=0, task_type=UNKNOWN_ENUM),
            _put_with(url_task_type=UNKNOWN_ENUM),
            ("Infer", is_pb2.InferRequest(inference_id="existing", task_type=UNKNOWN_ENUM, input=["x"])),
            (
                "UpdateEndpoint",
                es_pb2.UpdateEndpointRequest(
                    inference_id="existing",
                    task_type=UNKNOWN_ENUM,
                    endpoint=endpoint_config({"service_settings": {"num_allocations": 2}}),
                ),
            ),
        )
    ],
    (
        _put_with(chunking_settings=types_pb2.ChunkingSettings(strategy=UNKNOWN_ENUM)),
        Rule(
            "",
            "",
            None,
            400,
            "illegal_argument_exception",
            f"Invalid chunkingStrategy {UNKNOWN_ENUM}",
            "INVALID_ARGUMENT",
            only(f"{CS}.strategy", f"Invalid chunkingStrategy {UNKNOWN_ENUM}"),
        ),
    ),
]

CASES: list[tuple[Call, Rule]] = [
    *[(grpc_request(rule), rule) for rule in RULES if rule.grpc is None],
    *PROTO_ONLY,
]


def case_id(index: int, call: Call, rule: Rule) -> str:
    return f"{index:02d}-{call[0]}-{rule.error_reason}"


@pytest.mark.parametrize("rule", RULES, ids=[f"{i:02d}-{r.method}-{r.path}" for i, r in enumerate(RULES)])
def test_table_rule_is_sent_unless_marked_rest_only(rule: Rule) -> None:
    if rule.grpc is None:
        grpc_request(rule)
    else:
        with pytest.raises(Inexpressible):
            grpc_request(rule)


@pytest.mark.parametrize(("call", "rule"), CASES, ids=[case_id(i, c, r) for i, (c, r) in enumerate(CASES)])
async def test_rule(channel: grpc.aio.Channel, call: Call, rule: Rule) -> None:
    endpoints = es_grpc.EndpointServiceStub(channel)
    inference = is_grpc.InferenceServiceStub(channel)
    await endpoints.PutEndpoint(EXISTING, timeout=60)

    method, request = call
    stub = inference if method == "Infer" else endpoints
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stub, method)(request, timeout=60)
    error = caught.value

    code = grpc.StatusCode[rule.code]
    assert (error.code(), error.details()) == (code, rule.grpc_reason or rule.reason)
    details = rich(error)
    info = details.pop("ErrorInfo")
    assert (info.domain, info.reason, dict(info.metadata)) == (
        "elser.v1",
        rule.error_reason,
        {"es_type": rule.grpc_es_type or rule.es_type, "http_status": str(rule.status)},
    )
    bad_request = details.pop("BadRequest", None)
    violations = (
        None if bad_request is None else tuple((v.field, v.description) for v in bad_request.field_violations)
    )
    assert violations == rule.violations
    resource = details.pop("ResourceInfo", None)
    if rule.resource is None:
        assert resource is None
    else:
        assert (resource.resource_type, resource.resource_name) == (ENDPOINT_RESOURCE, rule.resource)
    precondition = details.pop("PreconditionFailure", None)
    if code is grpc.StatusCode.FAILED_PRECONDITION:
        assert [(v.type, v.description) for v in precondition.violations] == [
            (rule.error_reason, rule.reason)
        ]
    else:
        assert precondition is None
    assert details == {}, "no other details (RetryInfo only for retryable errors)"


async def test_failed_put_leaves_nothing_behind(channel: grpc.aio.Channel) -> None:
    """A rejected PutEndpoint stores nothing: `x` of the table is never created, `existing` is unchanged."""
    endpoints = es_grpc.EndpointServiceStub(channel)
    await endpoints.PutEndpoint(EXISTING, timeout=60)
    for (method, request), _ in CASES:
        if method == "PutEndpoint":
            with pytest.raises(grpc.aio.AioRpcError):
                await endpoints.PutEndpoint(request, timeout=60)
    listed = await endpoints.ListEndpoints(es_pb2.ListEndpointsRequest())
    assert [e.inference_id for e in listed.endpoints] == [".elser-2-elasticsearch", "existing"]
    (existing,) = [e for e in listed.endpoints if e.inference_id == "existing"]
    assert existing.service_settings.num_allocations == 1 and existing.service_settings.num_threads == 1


async def test_input_type_picks_the_lane_unless_the_priority_is_given(
    channel: grpc.aio.Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ES `input_type` over gRPC: search is interactive, ingest bulk, in any case; an explicit priority wins."""
    await es_grpc.EndpointServiceStub(channel).PutEndpoint(EXISTING, timeout=60)
    lanes: list[Priority] = []
    embed = Deployment.embed

    async def recording(self: Deployment, encodings: Any, *, priority: Priority, **rest: Any) -> Any:
        lanes.append(priority)
        return await embed(self, encodings, priority=priority, **rest)

    monkeypatch.setattr(Deployment, "embed", recording)
    inference = is_grpc.InferenceServiceStub(channel)
    bulk = types_pb2.InferenceOptions(priority=types_pb2.PRIORITY_BULK)
    for input_type, options in (("search", None), (" Ingest ", None), ("SEARCH", bulk)):
        request = is_pb2.InferRequest(
            inference_id="existing", input=["x"], input_type=input_type, options=options
        )
        assert len((await inference.Infer(request, timeout=60)).embeddings) == 1
    assert lanes == [Priority.INTERACTIVE, Priority.BULK, Priority.BULK]
