"""Per-id locks exclude per key and are forgotten once nobody holds or awaits them."""

from __future__ import annotations

import asyncio

import pytest
from elser_server.core.keyed_locks import KeyedLocks


async def test_one_key_is_exclusive_and_other_keys_are_not() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    entered = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with locks.hold("a"):
            order.append("first in")
            entered.set()
            await release.wait()
            order.append("first out")

    async def second() -> None:
        async with locks.hold("a"):
            order.append("second in")

    holder = asyncio.create_task(first())
    await entered.wait()
    waiter = asyncio.create_task(second())
    async with asyncio.timeout(5), locks.hold("b"):  # another key is free meanwhile
        order.append("other key")
    await asyncio.sleep(0)
    assert len(locks) == 1  # "a", held and awaited
    release.set()
    await asyncio.gather(holder, waiter)
    assert order == ["first in", "other key", "first out", "second in"]
    assert len(locks) == 0


async def test_a_key_is_forgotten_after_failures_and_cancellations() -> None:
    locks = KeyedLocks()
    with pytest.raises(RuntimeError):
        async with locks.hold("x" * 10_000):
            raise RuntimeError("boom")
    entered = asyncio.Event()

    async def hold_forever() -> None:
        async with locks.hold("y"):
            entered.set()
            await asyncio.Event().wait()

    holder = asyncio.create_task(hold_forever())
    await entered.wait()
    waiter = asyncio.create_task(hold_forever())
    await asyncio.sleep(0)
    waiter.cancel()
    holder.cancel()
    await asyncio.gather(holder, waiter, return_exceptions=True)
    assert len(locks) == 0
