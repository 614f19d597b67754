"""Settings: the memory budget's default is the container's limit (cgroup v2 or v1) less the headroom, else
the machine's memory."""

from __future__ import annotations

import os
from pathlib import Path

from elser_server.settings import Settings, detect_memory_limit

MACHINE = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def test_cgroup_v2_limit(tmp_path: Path) -> None:
    (tmp_path / "memory.max").write_text("1073741824\n")
    assert detect_memory_limit(tmp_path) == min(MACHINE, 1 << 30)
    (tmp_path / "memory.max").write_text("max\n")
    assert detect_memory_limit(tmp_path) == MACHINE


def test_cgroup_v1_limit(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()
    limit = tmp_path / "memory" / "memory.limit_in_bytes"
    limit.write_text("536870912\n")
    assert detect_memory_limit(tmp_path) == min(MACHINE, 1 << 29)
    limit.write_text("9223372036854771712\n")  # v1's "no limit"
    assert detect_memory_limit(tmp_path) == MACHINE


def test_no_cgroup_is_the_machines_memory(tmp_path: Path) -> None:
    assert detect_memory_limit(tmp_path) == MACHINE


def test_budget_is_the_limit_or_the_detected_memory_less_the_headroom() -> None:
    assert Settings(memory_limit="6GiB").memory_budget == 6 << 30
    automatic = Settings(memory_headroom="1GiB")
    assert automatic.memory_budget == max(0, detect_memory_limit() - (1 << 30))
