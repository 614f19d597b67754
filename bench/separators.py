"""Recursive chunking's separator regexes: chunking time of a ~1 MB text with the separator groups, and the
event loop's worst lag while a backtracking separator runs in a worker thread until its budget stops it.

    .venv/bin/python bench/separators.py [--budget-s 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from elser_server.core.chunking import chunk, parse_chunking_settings
from elser_server.core.errors import ElserError

PARA = (
    "Elasticsearch is a distributed search engine 🔍. 漢字とかなのテキストも含みます。"
    "It scales horizontally, and stores JSON documents!\n\n# A heading\nA line.\nAnother line\n---\n"
)
HOSTILE = "(a|aa)+$"
HOSTILE_TEXT = "a" * 45 + "!" + " w" * 20


def chunking_times(text: str) -> None:
    for group in ("plaintext", "markdown"):
        settings = parse_chunking_settings(
            {"strategy": "recursive", "max_chunk_size": 50, "separator_group": group}
        )
        start = time.perf_counter()
        chunks = chunk(text, settings, separator_budget_s=60)
        print(
            f"recursive/{group} on {len(text.encode()) / 1e6:.1f} MB: {time.perf_counter() - start:.3f} s, "
            f"{len(chunks)} chunks"
        )


async def loop_lag_during_hostile(budget_s: float) -> None:
    settings = parse_chunking_settings(
        {"strategy": "recursive", "max_chunk_size": 10, "separators": [HOSTILE]}
    )
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(1) as pool:
        start = time.perf_counter()
        job = loop.run_in_executor(pool, lambda: chunk(HOSTILE_TEXT, settings, separator_budget_s=budget_s))
        worst = 0.0
        while not job.done():
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - before - 0.001)
        try:
            await job
            outcome = "finished"
        except ElserError as e:
            outcome = f"{e.http_status} {e.reason}"
        print(
            f"backtracking separator, budget {budget_s} s: {outcome} after {time.perf_counter() - start:.2f} s; "
            f"worst event-loop lag meanwhile {worst * 1000:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget-s", type=float, default=1.0)
    args = parser.parse_args()
    chunking_times(PARA * (1_000_000 // len(PARA.encode()) + 1))
    asyncio.run(loop_lag_during_hostile(args.budget_s))


if __name__ == "__main__":
    main()
