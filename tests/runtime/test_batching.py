from __future__ import annotations

import pytest
from elser_server.runtime.batching import plan_batches
from hypothesis import given
from hypothesis import strategies as st


def test_sorted_groups_under_budget() -> None:
    lengths = [10, 200, 12, 11, 300, 50, 9]
    groups = plan_batches(lengths, token_budget=100, max_batch_size=4)
    assert groups == [[6, 0, 3, 2], [5], [1], [4]]


def test_over_budget_item_goes_alone_and_cap_applies() -> None:
    assert plan_batches([600, 5, 5], token_budget=512, max_batch_size=32) == [[1, 2], [0]]
    assert plan_batches([3] * 5, token_budget=1000, max_batch_size=2) == [[0, 1], [2, 3], [4]]
    assert plan_batches([], 100, 2) == []
    with pytest.raises(ValueError):
        plan_batches([1], 0, 1)


@given(
    st.lists(st.integers(1, 512), max_size=200),
    st.integers(1, 4096),
    st.integers(1, 64),
)
def test_properties(lengths: list[int], budget: int, cap: int) -> None:
    groups = plan_batches(lengths, budget, cap)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        assert len(g) <= cap
        assert len(g) == 1 or len(g) * max(lengths[i] for i in g) <= budget
    flat = [lengths[i] for g in groups for i in g]
    assert flat == sorted(flat)
