from elser.v1 import types_pb2 as _types_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InferRequest(_message.Message):
    __slots__ = ("inference_id", "task_type", "input", "task_settings", "options", "input_type")
    INFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    TASK_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TYPE_FIELD_NUMBER: _ClassVar[int]
    inference_id: str
    task_type: _types_pb2.TaskType
    input: _containers.RepeatedScalarFieldContainer[str]
    task_settings: _struct_pb2.Struct
    options: _types_pb2.InferenceOptions
    input_type: str
    def __init__(self, inference_id: _Optional[str] = ..., task_type: _Optional[_Union[_types_pb2.TaskType, str]] = ..., input: _Optional[_Iterable[str]] = ..., task_settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., options: _Optional[_Union[_types_pb2.InferenceOptions, _Mapping]] = ..., input_type: _Optional[str] = ...) -> None: ...

class InferResponse(_message.Message):
    __slots__ = ("embeddings",)
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[_types_pb2.SparseEmbedding]
    def __init__(self, embeddings: _Optional[_Iterable[_Union[_types_pb2.SparseEmbedding, _Mapping]]] = ...) -> None: ...

class InferStreamRequest(_message.Message):
    __slots__ = ("correlation_id", "inference_id", "task_type", "input", "options")
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    correlation_id: str
    inference_id: str
    task_type: _types_pb2.TaskType
    input: _containers.RepeatedScalarFieldContainer[str]
    options: _types_pb2.InferenceOptions
    def __init__(self, correlation_id: _Optional[str] = ..., inference_id: _Optional[str] = ..., task_type: _Optional[_Union[_types_pb2.TaskType, str]] = ..., input: _Optional[_Iterable[str]] = ..., options: _Optional[_Union[_types_pb2.InferenceOptions, _Mapping]] = ...) -> None: ...

class InferStreamResponse(_message.Message):
    __slots__ = ("correlation_id", "embeddings", "error")
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    correlation_id: str
    embeddings: _containers.RepeatedCompositeFieldContainer[_types_pb2.SparseEmbedding]
    error: _status_pb2.Status
    def __init__(self, correlation_id: _Optional[str] = ..., embeddings: _Optional[_Iterable[_Union[_types_pb2.SparseEmbedding, _Mapping]]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class InferChunkedRequest(_message.Message):
    __slots__ = ("inference_id", "task_type", "input", "chunking_settings", "options")
    INFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    CHUNKING_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    inference_id: str
    task_type: _types_pb2.TaskType
    input: _containers.RepeatedScalarFieldContainer[str]
    chunking_settings: _types_pb2.ChunkingSettings
    options: _types_pb2.InferenceOptions
    def __init__(self, inference_id: _Optional[str] = ..., task_type: _Optional[_Union[_types_pb2.TaskType, str]] = ..., input: _Optional[_Iterable[str]] = ..., chunking_settings: _Optional[_Union[_types_pb2.ChunkingSettings, _Mapping]] = ..., options: _Optional[_Union[_types_pb2.InferenceOptions, _Mapping]] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("chunk_index", "start_utf16", "end_utf16", "start_code_point", "end_code_point", "embedding")
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    START_UTF16_FIELD_NUMBER: _ClassVar[int]
    END_UTF16_FIELD_NUMBER: _ClassVar[int]
    START_CODE_POINT_FIELD_NUMBER: _ClassVar[int]
    END_CODE_POINT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    chunk_index: int
    start_utf16: int
    end_utf16: int
    start_code_point: int
    end_code_point: int
    embedding: _types_pb2.SparseEmbedding
    def __init__(self, chunk_index: _Optional[int] = ..., start_utf16: _Optional[int] = ..., end_utf16: _Optional[int] = ..., start_code_point: _Optional[int] = ..., end_code_point: _Optional[int] = ..., embedding: _Optional[_Union[_types_pb2.SparseEmbedding, _Mapping]] = ...) -> None: ...

class InputDone(_message.Message):
    __slots__ = ("chunk_count", "error")
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    chunk_count: int
    error: _status_pb2.Status
    def __init__(self, chunk_count: _Optional[int] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class InferChunkedResponse(_message.Message):
    __slots__ = ("input_index", "chunk", "done")
    INPUT_INDEX_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    input_index: int
    chunk: Chunk
    done: InputDone
    def __init__(self, input_index: _Optional[int] = ..., chunk: _Optional[_Union[Chunk, _Mapping]] = ..., done: _Optional[_Union[InputDone, _Mapping]] = ...) -> None: ...
