"""Length-sorted batching under a token budget (the second-largest speed-up measured, after fused pooling).

Padding to each batch's own longest input only wastes little when batch members have similar lengths, and a budget
on padded tokens (not a fixed document count) keeps the [batch·seq, vocab] working set cache-sized and bounded."""

from __future__ import annotations

from collections.abc import Sequence

# Measured best on the 2-core reference machine: ~1-2K padded tokens per call, a cap on documents per call.
DEFAULT_TOKEN_BUDGET = 1024
DEFAULT_MAX_BATCH_SIZE = 32


def plan_batches(
    lengths: Sequence[int],
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
) -> list[list[int]]:
    """Group input indices, sorted by length, so each group's padded cost (size × longest) ≤ token_budget and
    size ≤ max_batch_size. A single input longer than the budget forms a group of its own."""
    if token_budget < 1 or max_batch_size < 1:
        raise ValueError("token_budget and max_batch_size must be positive")
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted ascending, so the newcomer is the longest member of the group it joins.
        if current and ((len(current) + 1) * lengths[i] > token_budget or len(current) == max_batch_size):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
