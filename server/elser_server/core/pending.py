"""Endpoints whose PUT timed out (ES's 408) while their deployment was starting.

ES (9.x) validates a new endpoint by starting its deployment and running one inference before it stores anything,
so a PUT that times out stores no endpoint, and nothing stops the deployment: it goes on starting, and ES users stop
it through the trained-model API. This service has no such API, so the deployment is kept `keep_s` for a retried PUT
of the same id to adopt it; meanwhile GET and the list show the endpoint with its deployment's state, stats and
watches report it and DELETE stops it. Then it is stopped, so a client that never comes back holds no memory.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from elser_server.core.deployments import Deployments
from elser_server.core.es_validation import format_time_value
from elser_server.core.events import DeploymentEvent, EventHub, Phase
from elser_server.core.keyed_locks import KeyedLocks
from elser_server.core.types import Endpoint

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    endpoint: Endpoint
    expiry: asyncio.Task[None] | None = None


class PendingEndpoints:
    """The endpoints of timed-out PUTs by inference id. `locks` are the core's per-id locks: every change of an id
    (PUT, DELETE, this expiry) happens under its lock."""

    def __init__(self, deployments: Deployments, events: EventHub, locks: KeyedLocks, keep_s: float) -> None:
        self._deployments = deployments
        self._events = events
        self._locks = locks
        self.keep_s = keep_s
        self._pending: dict[str, _Pending] = {}

    def add(self, endpoint: Endpoint) -> None:
        """The PUT of `endpoint` timed out (or its caller left): keep its deployment `keep_s` from now."""
        self.take(endpoint.inference_id)
        entry = _Pending(endpoint)
        entry.expiry = asyncio.create_task(
            self._expire(endpoint.inference_id, entry), name=f"expire-{endpoint.inference_id}"
        )
        self._pending[endpoint.inference_id] = entry

    def take(self, inference_id: str) -> Endpoint | None:
        """Forget `inference_id` (a PUT adopts its deployment, or it is deleted); its endpoint, if it was pending."""
        entry = self._pending.pop(inference_id, None)
        if entry is None:
            return None
        if entry.expiry is not None:
            entry.expiry.cancel()
        return entry.endpoint

    def get(self, inference_id: str) -> Endpoint | None:
        entry = self._pending.get(inference_id)
        return entry.endpoint if entry is not None else None

    def endpoints(self) -> list[Endpoint]:
        return [entry.endpoint for entry in self._pending.values()]

    async def discard(self, inference_id: str, reason: str) -> None:
        """Stop the pending deployment of `inference_id` (the caller holds its lock); its watchers end."""
        endpoint = self.take(inference_id)
        if endpoint is None:
            return
        await self._deployments.stop(inference_id)
        final = DeploymentEvent(
            inference_id, endpoint.service_settings.model_id, Phase.STOPPED, reason=reason
        )
        self._events.close(inference_id, final)

    def close(self) -> None:
        for inference_id in list(self._pending):
            self.take(inference_id)

    async def _expire(self, inference_id: str, entry: _Pending) -> None:
        await asyncio.sleep(self.keep_s)
        async with self._locks.hold(inference_id):
            if self._pending.get(inference_id) is not entry:
                return  # adopted or deleted meanwhile
            kept = format_time_value(self.keep_s)
            log.info(
                "stopping deployment [%s]: its PUT timed out and none adopted it within [%s]",
                inference_id,
                kept,
            )
            entry.expiry = None  # this task: not to be cancelled by its own discard
            await self.discard(
                inference_id,
                f"stopped: the PUT of [{inference_id}] timed out and no PUT adopted its deployment within [{kept}]",
            )
