"""Deployment events for WatchDeployment: snapshots fanned out to any number of watchers.

Every event is a full snapshot, so a slow watcher can skip intermediate ones: its small queue keeps the newest
events and the deployment never waits on a watcher.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from elser_server.core import errors

WATCHER_QUEUE_SIZE = 16


class Phase(enum.Enum):
    DOWNLOADING = "downloading"
    CONVERTING = "converting"  # a downloaded TorchScript/HF model becomes an ONNX package (child process)
    STARTING = "starting"
    STARTED = "started"
    FULLY_ALLOCATED = "fully_allocated"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class AllocationCause(enum.Enum):
    DEPLOYMENT_START = "deployment_start"
    USER_UPDATE = "user_update"
    ADAPTIVE_SCALE_UP = "adaptive_scale_up"
    ADAPTIVE_SCALE_DOWN = "adaptive_scale_down"
    SCALE_TO_ZERO = "scale_to_zero"
    SCALE_FROM_ZERO = "scale_from_zero"
    FAILURE = "failure"


@dataclass(frozen=True)
class DeploymentEvent:
    deployment_id: str
    model_id: str
    phase: Phase
    target_allocations: int = 0
    current_allocations: int = 0
    cause: AllocationCause = AllocationCause.DEPLOYMENT_START
    bytes_done: int = 0
    bytes_total: int = 0
    reason: str | None = None
    time: float = field(default_factory=time.time)


class _Subscription:
    """A watcher's queue: events, then None (the stream ends) or an error (the stream fails with it)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[DeploymentEvent | errors.ElserError | None] = asyncio.Queue(
            WATCHER_QUEUE_SIZE
        )

    def offer(self, item: DeploymentEvent | errors.ElserError | None) -> None:
        if self.queue.full():
            self.queue.get_nowait()  # drop the oldest snapshot; the newer one supersedes it
        self.queue.put_nowait(item)


class EventHub:
    """Per deployment id: the latest snapshot and its watchers."""

    def __init__(self) -> None:
        self._latest: dict[str, DeploymentEvent] = {}
        self._subscribers: dict[str, set[_Subscription]] = {}
        self._shut_down = False

    def publish(self, event: DeploymentEvent) -> None:
        """Fan `event` out; a snapshot equal to the latest one (but for its time) says nothing new and is
        not sent again (a scaling step and the end of the scaling publish the same state, say)."""
        latest = self._latest.get(event.deployment_id)
        if latest is not None and dataclasses.replace(latest, time=event.time) == event:
            return
        self._latest[event.deployment_id] = event
        for sub in self._subscribers.get(event.deployment_id, ()):
            sub.offer(event)

    def forget(self, deployment_id: str) -> None:
        """The deployment is gone: drop its latest snapshot (its watchers, if any, stay subscribed)."""
        self._latest.pop(deployment_id, None)

    def close(self, deployment_id: str, final: DeploymentEvent) -> None:
        """Send `final` to every watcher of `deployment_id` and end their streams."""
        self._latest.pop(deployment_id, None)
        for sub in self._subscribers.pop(deployment_id, set()):
            sub.offer(final)
            sub.offer(None)

    def shut_down(self) -> None:
        """The server is stopping: every watch fails with `shutting_down()` now (so watchers reconnect elsewhere
        instead of holding the shutdown), and so does every later one."""
        self._shut_down = True
        for subs in self._subscribers.values():
            for sub in subs:
                sub.offer(errors.shutting_down())

    def backlogs(self, deployment_id: str) -> list[int]:
        """For each open watch of `deployment_id`, how many items wait unread in its queue."""
        return [sub.queue.qsize() for sub in self._subscribers.get(deployment_id, ())]

    async def watch(self, deployment_id: str, initial: DeploymentEvent) -> AsyncIterator[DeploymentEvent]:
        if self._shut_down:
            raise errors.shutting_down()
        sub = _Subscription()
        self._subscribers.setdefault(deployment_id, set()).add(sub)
        try:
            yield self._latest.get(deployment_id, initial)
            while (item := await sub.queue.get()) is not None:
                if isinstance(item, errors.ElserError):
                    raise item
                yield item
        finally:
            subs = self._subscribers.get(deployment_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscribers[deployment_id]
