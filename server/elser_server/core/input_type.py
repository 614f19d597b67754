"""ES's `input_type` of an inference request (org.elasticsearch.inference.InputType, ES 9.1): the names a client
may send, the scheduling lane each one means here, and InferenceAction.Request.validate's task-type rule."""

from __future__ import annotations

import enum

from elser_server.core.errors import invalid
from elser_server.core.types import Priority, TaskType

# Java's String.trim(): every character up to U+0020.
_JAVA_WHITESPACE = "".join(map(chr, range(0x21)))


class InputType(enum.Enum):
    INGEST = "ingest"
    SEARCH = "search"
    UNSPECIFIED = "unspecified"
    CLASSIFICATION = "classification"
    CLUSTERING = "clustering"
    # ES sets these itself when it calls inference internally (semantic_text); clients may not send them.
    INTERNAL_SEARCH = "internal_search"
    INTERNAL_INGEST = "internal_ingest"


_INTERNAL = frozenset({InputType.INTERNAL_SEARCH, InputType.INTERNAL_INGEST})


def parse_input_type(name: str) -> InputType:
    """InputType.fromRestString: trimmed and case-insensitive; ES's internal values and unknown names are
    illegal arguments, in Java's words."""
    constant = name.strip(_JAVA_WHITESPACE).upper()
    try:
        value = InputType[constant]
    except KeyError:
        raise invalid(
            f"No enum constant org.elasticsearch.inference.InputType.{constant}",
            es_type="illegal_argument_exception",
            error_reason="UNKNOWN_INPUT_TYPE",
            field="input_type",
        ) from None
    if value in _INTERNAL:
        raise invalid(
            f"Unrecognized input_type [{value.value}]",
            es_type="illegal_argument_exception",
            error_reason="UNRECOGNIZED_INPUT_TYPE",
            field="input_type",
        )
    return value


def input_type_problem(task_type: TaskType, input_type: InputType | None) -> str | None:
    """InferenceAction.Request.validate: only text_embedding (or no task type) takes an input_type other than
    `unspecified`."""
    if task_type in (TaskType.TEXT_EMBEDDING, TaskType.ANY) or input_type in (None, InputType.UNSPECIFIED):
        return None
    return f"Field [input_type] cannot be specified for task type [{task_type.value}]"


def input_type_priority(input_type: InputType | None) -> Priority:
    """Search-time input gets the interactive lane (ES's high ML queue priority); ingest goes to bulk."""
    if input_type is InputType.SEARCH:
        return Priority.INTERACTIVE
    if input_type is InputType.INGEST:
        return Priority.BULK
    return Priority.AUTO
