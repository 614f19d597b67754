"""Replicas that share one endpoint store serve what it holds.

The store decides. Every change is written to it first (its primary key settles two replicas racing for one id),
and each replica brings its own endpoints and deployments to the store's state, one id at a time, through the
core's `apply_stored`:
- at start-up, from a full read;
- on each notification of a change (LISTEN/NOTIFY: milliseconds after the commit, whoever wrote);
- on a full comparison every `resync_interval_s` and each time the listener (re)connects, since notifications
  sent while it was away are lost;
- on demand: a read, or an inference for an id this replica does not know yet, asks the store first, so a replica
  never answers 404 for an endpoint another replica has just created.

Per id, refreshes run one at a time and each reads the store after the previous one applied, so a replica never
goes back to an older state. While the store is unreachable the replica keeps serving what it last knew, says so,
and refuses changes whole (STORE_UNAVAILABLE, retryable) until the listener is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection
from typing import Protocol

from elser_server.core.errors import ElserError, store_unavailable, unavailable
from elser_server.core.store import SharedEndpointStore, StoreListener
from elser_server.core.types import Endpoint

log = logging.getLogger(__name__)

STARTUP_RETRY_MIN_S = 0.2
STARTUP_RETRY_MAX_S = 5.0


class ReplicaTarget(Protocol):
    """What the core offers the synchronisation: its stored endpoints, and one way to change them."""

    def local_endpoint_ids(self) -> Collection[str]:
        """Ids of the stored endpoints this replica serves now."""
        ...

    def local_endpoint(self, inference_id: str) -> Endpoint | None: ...

    async def apply_stored(self, inference_id: str, stored: Endpoint | None) -> None:
        """Serve `stored` as the definition of `inference_id` (None: it was deleted)."""
        ...


def _is_unavailable(exc: ElserError) -> bool:
    return exc.error_reason == "STORE_UNAVAILABLE"


def _cause(exc: ElserError) -> str:
    """What the driver said (first line), for logs; the error's own reason is worded for API callers."""
    cause = str(exc.__cause__ or "").strip()
    return cause.splitlines()[0] if cause else exc.reason


class ReplicaSync:
    def __init__(
        self, store: SharedEndpointStore, *, resync_interval_s: float, startup_timeout_s: float
    ) -> None:
        self._store = store
        self._resync_interval_s = resync_interval_s
        self._startup_timeout_s = startup_timeout_s
        self._target: ReplicaTarget | None = None
        self._available = False
        self._id_locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}  # lock, holders + waiters
        self._following: dict[str, asyncio.Task[None]] = {}  # background refresh per notified id
        self._again: set[str] = set()  # notified again while its refresh ran
        self._resync_wanted = asyncio.Event()
        self._listener: StoreListener | None = None
        self._resync_task: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------

    async def start(self, target: ReplicaTarget) -> None:
        """Open the store (retrying while it is unreachable, up to the start-up timeout), serve everything it
        holds, then follow its changes."""
        self._target = target
        deadline = time.monotonic() + self._startup_timeout_s
        delay = STARTUP_RETRY_MIN_S
        while True:
            try:
                await asyncio.to_thread(self._store.open)
                stored = await asyncio.to_thread(self._store.load_all)
                break
            except ElserError as exc:
                if not _is_unavailable(exc):
                    raise
                where = self._store.description
                if time.monotonic() + delay > deadline:
                    raise unavailable(
                        f"endpoint store {where} still unreachable after {self._startup_timeout_s:g}s: {_cause(exc)}",
                        "STORE_UNAVAILABLE",
                    ) from exc
                log.warning(
                    "endpoint store %s unreachable (%s): retrying in %.1fs", where, _cause(exc), delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, STARTUP_RETRY_MAX_S)
        for endpoint in stored:
            await target.apply_stored(endpoint.inference_id, endpoint)
        self._available = True
        log.info("endpoint store %s: %d endpoints", self._store.description, len(stored))
        loop = asyncio.get_running_loop()
        self._listener = await asyncio.to_thread(self._store.listen, _LoopEvents(self, loop))
        self._resync_task = asyncio.create_task(self._resync_loop(), name="store-resync")

    async def close(self) -> None:
        if self._listener is not None:
            await asyncio.to_thread(self._listener.stop)
        tasks = [*self._following.values(), *([self._resync_task] if self._resync_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- what the core asks ------------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False while the store is unreachable: reads come from the last known state, changes are refused."""
        return self._available

    def check_writable(self) -> None:
        """Refuse a change at once (before any work) while the store is known to be unreachable."""
        if not self._available:
            raise store_unavailable()

    async def refresh(self, inference_id: str) -> None:
        """Bring `inference_id` to the store's state now; STORE_UNAVAILABLE when the store cannot be read."""
        assert self._target is not None, "start() first"
        async with self._one_at_a_time(inference_id):
            stored = await asyncio.to_thread(self._store.get, inference_id)
            await self._target.apply_stored(inference_id, stored)

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, inference_id: str) -> AsyncIterator[None]:
        """A lock per id that exists only while in use: lookups of ids nobody stored leave nothing behind."""
        lock, users = self._id_locks.setdefault(inference_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._id_locks[inference_id]

    async def read_through(self, inference_id: str | None) -> bool:
        """Before a read: refresh one id (or, for None, compare everything) from the store. False when the store
        is unreachable and the read is served from the last known state."""
        if not self._available:
            return False
        try:
            if inference_id is None:
                await self.resync()
            else:
                await self.refresh(inference_id)
        except ElserError as exc:
            if not _is_unavailable(exc):
                raise
            log.warning("%s: serving the last known endpoints", exc.reason)
            return False
        return True

    async def resync(self) -> None:
        """Compare every endpoint with the store and refresh those that differ."""
        assert self._target is not None, "start() first"
        stored = {e.inference_id: e for e in await asyncio.to_thread(self._store.load_all)}
        target = self._target
        differing = [
            inference_id
            for inference_id in sorted(set(stored) | set(target.local_endpoint_ids()))
            if stored.get(inference_id) != target.local_endpoint(inference_id)
        ]
        # Each is read again under its own lock: a notification handled meanwhile must not be undone.
        outcomes = await asyncio.gather(*(self.refresh(i) for i in differing), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    # --- what the listener reports (on the loop) ---------------------------------------------------------------

    def changed(self, inference_id: str) -> None:
        if inference_id in self._following:
            self._again.add(inference_id)
            return
        self._following[inference_id] = asyncio.create_task(
            self._follow(inference_id), name=f"store-refresh-{inference_id}"
        )

    def connected(self) -> None:
        if not self._available:
            log.info("endpoint store %s reachable again: comparing endpoints", self._store.description)
        self._available = True
        self._resync_wanted.set()

    def lost(self, reason: str) -> None:
        if self._available:
            log.warning(
                "endpoint store %s unreachable (%s): serving the last known endpoints, refusing changes "
                "until it is back",
                self._store.description,
                reason,
            )
        self._available = False

    async def _follow(self, inference_id: str) -> None:
        try:
            while True:
                self._again.discard(inference_id)
                try:
                    await self.refresh(inference_id)
                except ElserError as exc:
                    # Unreachable: the comparison after reconnecting catches up.
                    log.warning("could not apply the change of [%s]: %s", inference_id, exc.reason)
                    return
                except Exception:
                    log.exception("could not apply the change of [%s]", inference_id)
                    return
                if inference_id not in self._again:
                    return
        finally:
            del self._following[inference_id]

    async def _resync_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._resync_wanted.wait(), self._resync_interval_s)
            self._resync_wanted.clear()
            if not self._available:
                continue
            try:
                await self.resync()
            except ElserError as exc:
                log.warning("comparison with the endpoint store failed: %s", exc.reason)
            except Exception:
                log.exception("comparison with the endpoint store failed")


class _LoopEvents:
    """`StoreEvents` for the listener's thread: each report runs on the event loop."""

    def __init__(self, sync: ReplicaSync, loop: asyncio.AbstractEventLoop) -> None:
        self._sync = sync
        self._loop = loop

    def connected(self) -> None:
        self._call(self._sync.connected)

    def changed(self, inference_id: str) -> None:
        self._call(self._sync.changed, inference_id)

    def lost(self, reason: str) -> None:
        self._call(self._sync.lost, reason)

    def _call(self, callback: Callable[..., None], *args: str) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: the process is exiting
            self._loop.call_soon_threadsafe(callback, *args)
