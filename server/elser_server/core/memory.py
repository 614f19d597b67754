"""Memory admission: a deployment starts, or gets more allocations, only if its estimated memory fits the budget
(`ELSER_MEMORY_LIMIT`), as ES refuses a deployment when ML memory is short (its 429 texts).

The estimate is per model and per allocation (docs/operating.md has the measurements behind the constants):

- once per model, however many deployments and allocations use it: the weights when they are shared (models of
  `SHARE_WEIGHTS_MIN_BYTES` or more; their ONNX file size), the tokenizer (about 20× its JSON size) and
  onnxruntime's one-time set-up;
- per allocation: its session's arena at the token budget, dominated by the vocabulary-wide output of
  `token_budget` tokens (0.85 × tokens × vocabulary × 4 bytes measured), the session's own state, and for
  models too small to share their weights, the session's private copy of them.

That is onnxruntime. OpenVINO spends differently: its infer requests share the compiled model's buffers, so nearly
everything is per model (the library, the model file mapped, the compiled weights, once for the allocations and,
for a small model, once for the query runner, buffers of a few arenas' size, more in bf16, and the per-shape kernel
caches filled by traffic) and an allocation adds little.

The budget reserves each deployment's allocations at its target (capped by what the processors run), so
scaling, adaptive or not, stays within it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from elser_server.core.errors import not_enough_memory_to_start
from elser_server.model.package import MODEL_FILE, TOKENIZER_FILE, ModelPackage
from elser_server.runtime.layout import Layout

log = logging.getLogger(__name__)

MIB = 1 << 20
# Model files of this size or more have one copy of their weights shared by all onnxruntime sessions.
SHARE_WEIGHTS_MIN_BYTES = 64 * MIB
TOKENIZER_FACTOR = (
    20  # resident bytes of a loaded tokenizer per byte of tokenizer.json (bert-base vocabulary)
)
MODEL_OVERHEAD = 16 * MIB  # onnxruntime's set-up with a model's first session
ARENA_FACTOR = 0.85  # arena bytes per (token of the budget × vocabulary entry × float32)
ALLOCATION_OVERHEAD = 12 * MIB  # a session's state, thread pool and buffers apart from the arena
# OpenVINO, measured with bench/memory.py after 800 bulk requests of random shapes (docs/operating.md, Memory).
OPENVINO_MODEL_OVERHEAD = 96 * MIB  # the library and compiling, beyond the weights
# The model file mapped from a temp directory, the allocations' compiled weights and, for a small model, the
# query runner's (a large one's query runner uses the allocations' compiled model).
OPENVINO_WEIGHT_COPIES = 3
OPENVINO_WEIGHT_COPIES_SHARED = 2
OPENVINO_ARENAS = {"fp32": 2.0, "int8": 2.0, "bf16": 5.0}  # model-wide buffers, in arenas at the token budget
OPENVINO_ALLOCATION_BYTES = 24 * MIB  # an infer request


@dataclass(frozen=True)
class Footprint:
    """Estimated resident bytes of a model: once (`model_bytes`) and per allocation (`allocation_bytes`)."""

    model_bytes: int
    allocation_bytes: int

    def deployment_bytes(self, allocations: int) -> int:
        return self.model_bytes + allocations * self.allocation_bytes


def _file_size(package: ModelPackage, name: str) -> int:
    """A file's size as the package's verified metadata records it (no disk access)."""
    return int(package.metadata["files"][name]["size"])


def shares_weights(package: ModelPackage) -> bool:
    return _file_size(package, MODEL_FILE) >= SHARE_WEIGHTS_MIN_BYTES


def estimate_footprint(package: ModelPackage, token_budget: int, layout: Layout) -> Footprint:
    """Resident bytes a model will hold in `layout`, before it is loaded."""
    weights = _file_size(package, MODEL_FILE)
    tokenizer = _file_size(package, TOKENIZER_FILE) * TOKENIZER_FACTOR
    arena = int(ARENA_FACTOR * token_budget * package.vocab_size * 4)
    if layout.backend == "openvino":
        return Footprint(
            model_bytes=OPENVINO_MODEL_OVERHEAD
            + (OPENVINO_WEIGHT_COPIES_SHARED if shares_weights(package) else OPENVINO_WEIGHT_COPIES) * weights
            + int(OPENVINO_ARENAS[layout.precision] * arena)
            + tokenizer,
            allocation_bytes=OPENVINO_ALLOCATION_BYTES,
        )
    shared = shares_weights(package)
    return Footprint(
        model_bytes=(weights if shared else 0) + tokenizer + MODEL_OVERHEAD,
        allocation_bytes=(0 if shared else weights) + arena + ALLOCATION_OVERHEAD,
    )


@dataclass
class _Reservation:
    model_id: str
    footprint: Footprint
    allocations: int


class MemoryBudget:
    """The reservations of the running deployments (keyed by deployment object, so a replaced deployment of the
    same id never touches its successor's) against `limit_bytes`. Used from the event loop only."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self._reservations: dict[object, _Reservation] = {}

    @property
    def used_bytes(self) -> int:
        models = {r.model_id: r.footprint.model_bytes for r in self._reservations.values()}
        allocations = sum(r.allocations * r.footprint.allocation_bytes for r in self._reservations.values())
        return sum(models.values()) + allocations

    def holds(self, deployment: object) -> bool:
        return deployment in self._reservations

    def reserved_allocations(self, deployment: object) -> int:
        reservation = self._reservations.get(deployment)
        return reservation.allocations if reservation is not None else 0

    def admit(self, deployment: object, model_id: str, footprint: Footprint, allocations: int) -> None:
        """Reserve a new deployment's memory, all or nothing; ES's 429 (before any session exists) otherwise."""
        shared = any(r.model_id == model_id for r in self._reservations.values())
        needed = (0 if shared else footprint.model_bytes) + allocations * footprint.allocation_bytes
        free = self.limit_bytes - self.used_bytes
        if needed > free:
            fitting = (free - (0 if shared else footprint.model_bytes)) // footprint.allocation_bytes
            log.warning(
                "deployment of %s refused: it needs about %d MiB for %d allocations, %d MiB of the %d MiB memory "
                "limit are free",
                model_id,
                needed // MIB,
                allocations,
                max(free, 0) // MIB,
                self.limit_bytes // MIB,
            )
            raise not_enough_memory_to_start(some_fit=fitting >= 1)
        self._reservations[deployment] = _Reservation(model_id, footprint, allocations)

    def grow(self, deployment: object, allocations: int) -> bool:
        """Reserve `allocations` for an update, all or nothing; False when they do not fit."""
        reservation = self._reservations.get(deployment)
        if reservation is None or allocations <= reservation.allocations:
            return True
        extra = (allocations - reservation.allocations) * reservation.footprint.allocation_bytes
        if extra > self.limit_bytes - self.used_bytes:
            log.warning(
                "update refused: %d more allocations of %s need about %d MiB, %d MiB of the memory limit are free",
                allocations - reservation.allocations,
                reservation.model_id,
                extra // MIB,
                max(self.limit_bytes - self.used_bytes, 0) // MIB,
            )
            return False
        reservation.allocations = allocations
        return True

    def fit(self, deployment: object, allocations: int) -> int:
        """Set the reservation to `allocations`, or to as many more as fit when growing; the allocations the
        deployment may run (unchanged when it holds no reservation)."""
        reservation = self._reservations.get(deployment)
        if reservation is None:
            return allocations
        if allocations > reservation.allocations:
            free = self.limit_bytes - self.used_bytes
            extra = min(allocations - reservation.allocations, free // reservation.footprint.allocation_bytes)
            allocations = reservation.allocations + max(extra, 0)
        reservation.allocations = allocations
        return allocations

    def release(self, deployment: object) -> None:
        self._reservations.pop(deployment, None)
