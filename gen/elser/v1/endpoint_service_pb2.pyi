from elser.v1 import types_pb2 as _types_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PutEndpointRequest(_message.Message):
    __slots__ = ("inference_id", "task_type", "endpoint")
    INFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    inference_id: str
    task_type: _types_pb2.TaskType
    endpoint: _types_pb2.EndpointConfig
    def __init__(self, inference_id: _Optional[str] = ..., task_type: _Optional[_Union[_types_pb2.TaskType, str]] = ..., endpoint: _Optional[_Union[_types_pb2.EndpointConfig, _Mapping]] = ...) -> None: ...

class PutEndpointResponse(_message.Message):
    __slots__ = ("endpoint", "warnings")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    endpoint: _types_pb2.Endpoint
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, endpoint: _Optional[_Union[_types_pb2.Endpoint, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class GetEndpointRequest(_message.Message):
    __slots__ = ("inference_id", "task_type")
    INFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    inference_id: str
    task_type: _types_pb2.TaskType
    def __init__(self, inference_id: _Optional[str] = ..., task_type: _Optional[_Union[_types_pb2.TaskType, str]] = ...) -> None: ...

class GetEndpointResponse(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: _types_pb2.Endpoint
    def __init__(self, endpoint: _Optional[_Union[_types_pb2.Endpoint, _Mapping]] = ...) -> None: ...

class ListEndpointsRequest(_message.Message):
    __slots__ = ("task_type",)
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    task_type: _types_pb2.TaskType
    def __init__(self, task_type: _Optional[_Union[_types_pb2.TaskType, str]] = ...) -> None: ...

class ListEndpointsResponse(_message.Message):
    __slots__ = ("endpoints",)
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[_types_pb2.Endpoint]
    def __init__(self, endpoints: _Optional[_Iterable[_Union[_types_pb2.Endpoint, _Mapping]]] = ...) -> None: ...

class DeleteEndpointRequest(_message.Message):
    __slots__ = ("inference_id", "task_type", "dry_run", "force")
    INFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    inference_id: str
    task_type: _types_pb2.TaskType
    dry_run: bool
    force: bool
    def __init__(self, inference_id: _Optional[str] = ..., task_type: _Optional[_Union[_types_pb2.TaskType, str]] = ..., dry_run: _Optional[bool] = ..., force: _Optional[bool] = ...) -> None: ...

class DeleteEndpointResponse(_message.Message):
    __slots__ = ("acknowledged", "pipelines", "indexes", "error_message")
    ACKNOWLEDGED_FIELD_NUMBER: _ClassVar[int]
    PIPELINES_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    acknowledged: bool
    pipelines: _containers.RepeatedScalarFieldContainer[str]
    indexes: _containers.RepeatedScalarFieldContainer[str]
    error_message: str
    def __init__(self, acknowledged: _Optional[bool] = ..., pipelines: _Optional[_Iterable[str]] = ..., indexes: _Optional[_Iterable[str]] = ..., error_message: _Optional[str] = ...) -> None: ...

class UpdateEndpointRequest(_message.Message):
    __slots__ = ("inference_id", "task_type", "endpoint")
    INFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    inference_id: str
    task_type: _types_pb2.TaskType
    endpoint: _types_pb2.EndpointConfig
    def __init__(self, inference_id: _Optional[str] = ..., task_type: _Optional[_Union[_types_pb2.TaskType, str]] = ..., endpoint: _Optional[_Union[_types_pb2.EndpointConfig, _Mapping]] = ...) -> None: ...

class UpdateEndpointResponse(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: _types_pb2.Endpoint
    def __init__(self, endpoint: _Optional[_Union[_types_pb2.Endpoint, _Mapping]] = ...) -> None: ...

class WatchDeploymentRequest(_message.Message):
    __slots__ = ("inference_id",)
    INFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    inference_id: str
    def __init__(self, inference_id: _Optional[str] = ...) -> None: ...

class WatchDeploymentResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _types_pb2.DeploymentEvent
    def __init__(self, event: _Optional[_Union[_types_pb2.DeploymentEvent, _Mapping]] = ...) -> None: ...

class GetDeploymentStatsRequest(_message.Message):
    __slots__ = ("inference_id",)
    INFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    inference_id: str
    def __init__(self, inference_id: _Optional[str] = ...) -> None: ...

class GetDeploymentStatsResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: _types_pb2.DeploymentStats
    def __init__(self, stats: _Optional[_Union[_types_pb2.DeploymentStats, _Mapping]] = ...) -> None: ...
