import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_TYPE_UNSPECIFIED: _ClassVar[TaskType]
    TASK_TYPE_SPARSE_EMBEDDING: _ClassVar[TaskType]
    TASK_TYPE_TEXT_EMBEDDING: _ClassVar[TaskType]
    TASK_TYPE_RERANK: _ClassVar[TaskType]
    TASK_TYPE_COMPLETION: _ClassVar[TaskType]
    TASK_TYPE_CHAT_COMPLETION: _ClassVar[TaskType]
    TASK_TYPE_EMBEDDING: _ClassVar[TaskType]

class ChunkingStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHUNKING_STRATEGY_UNSPECIFIED: _ClassVar[ChunkingStrategy]
    CHUNKING_STRATEGY_WORD: _ClassVar[ChunkingStrategy]
    CHUNKING_STRATEGY_SENTENCE: _ClassVar[ChunkingStrategy]
    CHUNKING_STRATEGY_NONE: _ClassVar[ChunkingStrategy]
    CHUNKING_STRATEGY_RECURSIVE: _ClassVar[ChunkingStrategy]

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_UNSPECIFIED: _ClassVar[Priority]
    PRIORITY_INTERACTIVE: _ClassVar[Priority]
    PRIORITY_BULK: _ClassVar[Priority]

class DeploymentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPLOYMENT_STATE_UNSPECIFIED: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_DOWNLOADING: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_STARTING: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_STARTED: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_FULLY_ALLOCATED: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_STOPPING: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_STOPPED: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_FAILED: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_CONVERTING: _ClassVar[DeploymentState]

class AllocationCause(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALLOCATION_CAUSE_UNSPECIFIED: _ClassVar[AllocationCause]
    ALLOCATION_CAUSE_DEPLOYMENT_START: _ClassVar[AllocationCause]
    ALLOCATION_CAUSE_USER_UPDATE: _ClassVar[AllocationCause]
    ALLOCATION_CAUSE_ADAPTIVE_SCALE_UP: _ClassVar[AllocationCause]
    ALLOCATION_CAUSE_ADAPTIVE_SCALE_DOWN: _ClassVar[AllocationCause]
    ALLOCATION_CAUSE_SCALE_TO_ZERO: _ClassVar[AllocationCause]
    ALLOCATION_CAUSE_SCALE_FROM_ZERO: _ClassVar[AllocationCause]
    ALLOCATION_CAUSE_FAILURE: _ClassVar[AllocationCause]

class RuntimeBackend(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUNTIME_BACKEND_UNSPECIFIED: _ClassVar[RuntimeBackend]
    RUNTIME_BACKEND_ONNXRUNTIME: _ClassVar[RuntimeBackend]
    RUNTIME_BACKEND_OPENVINO: _ClassVar[RuntimeBackend]

class Precision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRECISION_UNSPECIFIED: _ClassVar[Precision]
    PRECISION_FP32: _ClassVar[Precision]
    PRECISION_BF16: _ClassVar[Precision]
    PRECISION_INT8: _ClassVar[Precision]
TASK_TYPE_UNSPECIFIED: TaskType
TASK_TYPE_SPARSE_EMBEDDING: TaskType
TASK_TYPE_TEXT_EMBEDDING: TaskType
TASK_TYPE_RERANK: TaskType
TASK_TYPE_COMPLETION: TaskType
TASK_TYPE_CHAT_COMPLETION: TaskType
TASK_TYPE_EMBEDDING: TaskType
CHUNKING_STRATEGY_UNSPECIFIED: ChunkingStrategy
CHUNKING_STRATEGY_WORD: ChunkingStrategy
CHUNKING_STRATEGY_SENTENCE: ChunkingStrategy
CHUNKING_STRATEGY_NONE: ChunkingStrategy
CHUNKING_STRATEGY_RECURSIVE: ChunkingStrategy
PRIORITY_UNSPECIFIED: Priority
PRIORITY_INTERACTIVE: Priority
PRIORITY_BULK: Priority
DEPLOYMENT_STATE_UNSPECIFIED: DeploymentState
DEPLOYMENT_STATE_DOWNLOADING: DeploymentState
DEPLOYMENT_STATE_STARTING: DeploymentState
DEPLOYMENT_STATE_STARTED: DeploymentState
DEPLOYMENT_STATE_FULLY_ALLOCATED: DeploymentState
DEPLOYMENT_STATE_STOPPING: DeploymentState
DEPLOYMENT_STATE_STOPPED: DeploymentState
DEPLOYMENT_STATE_FAILED: DeploymentState
DEPLOYMENT_STATE_CONVERTING: DeploymentState
ALLOCATION_CAUSE_UNSPECIFIED: AllocationCause
ALLOCATION_CAUSE_DEPLOYMENT_START: AllocationCause
ALLOCATION_CAUSE_USER_UPDATE: AllocationCause
ALLOCATION_CAUSE_ADAPTIVE_SCALE_UP: AllocationCause
ALLOCATION_CAUSE_ADAPTIVE_SCALE_DOWN: AllocationCause
ALLOCATION_CAUSE_SCALE_TO_ZERO: AllocationCause
ALLOCATION_CAUSE_SCALE_FROM_ZERO: AllocationCause
ALLOCATION_CAUSE_FAILURE: AllocationCause
RUNTIME_BACKEND_UNSPECIFIED: RuntimeBackend
RUNTIME_BACKEND_ONNXRUNTIME: RuntimeBackend
RUNTIME_BACKEND_OPENVINO: RuntimeBackend
PRECISION_UNSPECIFIED: Precision
PRECISION_FP32: Precision
PRECISION_BF16: Precision
PRECISION_INT8: Precision

class AdaptiveAllocations(_message.Message):
    __slots__ = ("enabled", "min_number_of_allocations", "max_number_of_allocations")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    MIN_NUMBER_OF_ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_NUMBER_OF_ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    min_number_of_allocations: int
    max_number_of_allocations: int
    def __init__(self, enabled: _Optional[bool] = ..., min_number_of_allocations: _Optional[int] = ..., max_number_of_allocations: _Optional[int] = ...) -> None: ...

class ServiceSettings(_message.Message):
    __slots__ = ("model_id", "num_allocations", "num_threads", "adaptive_allocations", "deployment_id")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    NUM_THREADS_FIELD_NUMBER: _ClassVar[int]
    ADAPTIVE_ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    num_allocations: int
    num_threads: int
    adaptive_allocations: AdaptiveAllocations
    deployment_id: str
    def __init__(self, model_id: _Optional[str] = ..., num_allocations: _Optional[int] = ..., num_threads: _Optional[int] = ..., adaptive_allocations: _Optional[_Union[AdaptiveAllocations, _Mapping]] = ..., deployment_id: _Optional[str] = ...) -> None: ...

class ChunkingSettings(_message.Message):
    __slots__ = ("strategy", "max_chunk_size", "overlap", "sentence_overlap", "separators", "separator_group")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    SENTENCE_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    SEPARATORS_FIELD_NUMBER: _ClassVar[int]
    SEPARATOR_GROUP_FIELD_NUMBER: _ClassVar[int]
    strategy: ChunkingStrategy
    max_chunk_size: int
    overlap: int
    sentence_overlap: int
    separators: _containers.RepeatedScalarFieldContainer[str]
    separator_group: str
    def __init__(self, strategy: _Optional[_Union[ChunkingStrategy, str]] = ..., max_chunk_size: _Optional[int] = ..., overlap: _Optional[int] = ..., sentence_overlap: _Optional[int] = ..., separators: _Optional[_Iterable[str]] = ..., separator_group: _Optional[str] = ...) -> None: ...

class EndpointConfig(_message.Message):
    __slots__ = ("service", "task_type", "service_settings", "chunking_settings", "task_settings")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    CHUNKING_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    TASK_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    service: str
    task_type: TaskType
    service_settings: ServiceSettings
    chunking_settings: ChunkingSettings
    task_settings: _struct_pb2.Struct
    def __init__(self, service: _Optional[str] = ..., task_type: _Optional[_Union[TaskType, str]] = ..., service_settings: _Optional[_Union[ServiceSettings, _Mapping]] = ..., chunking_settings: _Optional[_Union[ChunkingSettings, _Mapping]] = ..., task_settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("inference_id", "task_type", "service", "service_settings", "chunking_settings", "task_settings", "deployment_state")
    INFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    CHUNKING_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    TASK_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_STATE_FIELD_NUMBER: _ClassVar[int]
    inference_id: str
    task_type: TaskType
    service: str
    service_settings: ServiceSettings
    chunking_settings: ChunkingSettings
    task_settings: _struct_pb2.Struct
    deployment_state: DeploymentState
    def __init__(self, inference_id: _Optional[str] = ..., task_type: _Optional[_Union[TaskType, str]] = ..., service: _Optional[str] = ..., service_settings: _Optional[_Union[ServiceSettings, _Mapping]] = ..., chunking_settings: _Optional[_Union[ChunkingSettings, _Mapping]] = ..., task_settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., deployment_state: _Optional[_Union[DeploymentState, str]] = ...) -> None: ...

class InferenceOptions(_message.Message):
    __slots__ = ("top_k", "min_weight", "return_tokens", "priority")
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MIN_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    RETURN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    top_k: int
    min_weight: float
    return_tokens: bool
    priority: Priority
    def __init__(self, top_k: _Optional[int] = ..., min_weight: _Optional[float] = ..., return_tokens: _Optional[bool] = ..., priority: _Optional[_Union[Priority, str]] = ...) -> None: ...

class SparseEmbedding(_message.Message):
    __slots__ = ("token_ids", "weights", "tokens", "is_truncated", "num_tokens")
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    IS_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    weights: _containers.RepeatedScalarFieldContainer[float]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    is_truncated: bool
    num_tokens: int
    def __init__(self, token_ids: _Optional[_Iterable[int]] = ..., weights: _Optional[_Iterable[float]] = ..., tokens: _Optional[_Iterable[str]] = ..., is_truncated: _Optional[bool] = ..., num_tokens: _Optional[int] = ...) -> None: ...

class DownloadProgress(_message.Message):
    __slots__ = ("bytes_done", "bytes_total")
    BYTES_DONE_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    bytes_done: int
    bytes_total: int
    def __init__(self, bytes_done: _Optional[int] = ..., bytes_total: _Optional[int] = ...) -> None: ...

class AllocationStatus(_message.Message):
    __slots__ = ("target_allocations", "current_allocations", "cause")
    TARGET_ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    target_allocations: int
    current_allocations: int
    cause: AllocationCause
    def __init__(self, target_allocations: _Optional[int] = ..., current_allocations: _Optional[int] = ..., cause: _Optional[_Union[AllocationCause, str]] = ...) -> None: ...

class DeploymentEvent(_message.Message):
    __slots__ = ("time", "deployment_id", "model_id", "state", "download", "allocation", "reason", "replica")
    TIME_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    deployment_id: str
    model_id: str
    state: DeploymentState
    download: DownloadProgress
    allocation: AllocationStatus
    reason: str
    replica: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deployment_id: _Optional[str] = ..., model_id: _Optional[str] = ..., state: _Optional[_Union[DeploymentState, str]] = ..., download: _Optional[_Union[DownloadProgress, _Mapping]] = ..., allocation: _Optional[_Union[AllocationStatus, _Mapping]] = ..., reason: _Optional[str] = ..., replica: _Optional[str] = ...) -> None: ...

class DeploymentStats(_message.Message):
    __slots__ = ("deployment_id", "model_id", "state", "allocation", "threads_per_allocation", "queue_capacity", "queued", "inference_count", "error_count", "rejected_count", "timeout_count", "average_inference_time_ms", "average_queue_time_ms", "start_time", "last_access", "dropped_count", "p99_inference_time_ms", "peak_throughput_per_minute", "replica", "runtime")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    THREADS_PER_ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    QUEUE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_COUNT_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_INFERENCE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_QUEUE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ACCESS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    P99_INFERENCE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    PEAK_THROUGHPUT_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    model_id: str
    state: DeploymentState
    allocation: AllocationStatus
    threads_per_allocation: int
    queue_capacity: int
    queued: int
    inference_count: int
    error_count: int
    rejected_count: int
    timeout_count: int
    average_inference_time_ms: float
    average_queue_time_ms: float
    start_time: _timestamp_pb2.Timestamp
    last_access: _timestamp_pb2.Timestamp
    dropped_count: int
    p99_inference_time_ms: float
    peak_throughput_per_minute: int
    replica: str
    runtime: RuntimeLayout
    def __init__(self, deployment_id: _Optional[str] = ..., model_id: _Optional[str] = ..., state: _Optional[_Union[DeploymentState, str]] = ..., allocation: _Optional[_Union[AllocationStatus, _Mapping]] = ..., threads_per_allocation: _Optional[int] = ..., queue_capacity: _Optional[int] = ..., queued: _Optional[int] = ..., inference_count: _Optional[int] = ..., error_count: _Optional[int] = ..., rejected_count: _Optional[int] = ..., timeout_count: _Optional[int] = ..., average_inference_time_ms: _Optional[float] = ..., average_queue_time_ms: _Optional[float] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_access: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dropped_count: _Optional[int] = ..., p99_inference_time_ms: _Optional[float] = ..., peak_throughput_per_minute: _Optional[int] = ..., replica: _Optional[str] = ..., runtime: _Optional[_Union[RuntimeLayout, _Mapping]] = ...) -> None: ...

class RuntimeLayout(_message.Message):
    __slots__ = ("backend", "precision", "reason")
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    backend: RuntimeBackend
    precision: Precision
    reason: str
    def __init__(self, backend: _Optional[_Union[RuntimeBackend, str]] = ..., precision: _Optional[_Union[Precision, str]] = ..., reason: _Optional[str] = ...) -> None: ...
