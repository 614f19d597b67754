"""Java's rendering of values in ES messages (core/es_validation.py). Every expected string below is what
`java.util.HashMap` (JDK 17, the same code since JDK 8) prints for the same puts and removes."""

from __future__ import annotations

import pytest
from elser_server.core.es_validation import java_hash_order, java_map_str, java_str


@pytest.mark.parametrize(
    ("keys", "order"),
    [
        (["service", "service_settings"], ["service_settings", "service"]),
        (["b😀", "é", "a", "zz"], ["zz", "a", "b😀", "é"]),  # hashed over UTF-16 units, surrogates included
        # 13 keys pass 3/4 of 16: the table doubles to 32.
        (
            [f"k{i}" for i in range(13)],
            ["k0", "k1", "k2", "k3", "k4", "k5", "k11", "k6", "k10", "k7", "k8", "k12", "k9"],
        ),
        # 9 keys in one bucket of a 16-table: treeifyBin doubles the table instead, which splits the bucket.
        (
            ["aah", "abi", "acj", "aja", "bag", "bbh", "bci", "bdj", "caf"],
            ["aah", "abi", "acj", "bag", "bbh", "bci", "bdj", "caf", "aja"],
        ),
        (
            [
                "service",
                "task_settings",
                "chunking_settings",
                "model_id",
                "deployment_id",
                "num_threads",
                "input",
                "foo",
                "bar",
            ],
            [
                "input",
                "bar",
                "service",
                "foo",
                "task_settings",
                "num_threads",
                "model_id",
                "deployment_id",
                "chunking_settings",
            ],
        ),
    ],
)
def test_hash_order(keys: list[str], order: list[str]) -> None:
    assert java_hash_order(keys) == order


def test_map_after_removals_keeps_places_and_renders_values_as_java() -> None:
    body = {
        "service": "elasticsearch",
        "foo": [1, 2.5, True, None],
        "chunking_settings": {"strategy": "word", "max_chunk_size": 100, "overlap": 10},
    }
    inserted = ["task_type", "service", "service_settings", "chunking_settings", "foo"]
    assert java_map_str(body, inserted) == (
        "{service=elasticsearch, foo=[1, 2.5, true, null], "
        "chunking_settings={overlap=10, max_chunk_size=100, strategy=word}}"
    )


def test_nested_objects_print_in_hash_order() -> None:
    assert java_str({"num_threads": 2, "model_id": "x"}) == "{num_threads=2, model_id=x}"
    assert java_str({"model_id": "x", "num_threads": 2}) == "{num_threads=2, model_id=x}"
