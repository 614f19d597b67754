"""Replicas on one PostgreSQL store, in one event loop: two real cores (tiny model, onnxruntime) built by the
composition root, each with its own data directory, following the store through LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import psycopg
import pytest
from elser_cluster import PostgresServer
from elser_server.app import build_core
from elser_server.core.endpoint_rules import parse_put_request
from elser_server.core.errors import Code, ElserError
from elser_server.core.events import Phase
from elser_server.core.service import InferenceCore
from psycopg.types.json import Jsonb
from support import PUT_BODY, PgDatabase, eventually_async, server_settings


def body(num_allocations: int = 1) -> dict[str, Any]:
    return {
        **PUT_BODY,
        "service_settings": {**PUT_BODY["service_settings"], "num_allocations": num_allocations},
    }


def known(core: InferenceCore) -> list[str]:
    """What a replica serves now, without asking the store."""
    return [e.inference_id for e in core.known_endpoints() if not e.inference_id.startswith(".")]


@pytest.fixture
async def replicas(
    tiny_repository: Path, tmp_path: Path, pg_database: PgDatabase
) -> AsyncIterator[Callable[..., Any]]:
    async with AsyncExitStack() as stack:

        async def start(name: str, url: str = pg_database.url, **overrides: Any) -> InferenceCore:
            settings = server_settings(
                tiny_repository,
                tmp_path / name,
                store_url=url,
                store_password_file=pg_database.password_file,
                replica_name=name,
                **overrides,
            )
            core = build_core(settings)
            await core.start()
            stack.push_async_callback(core.close)
            return core

        yield start


async def test_put_update_delete_reach_the_other_replica(replicas: Callable[..., Any]) -> None:
    a, b = await replicas("a"), await replicas("b")
    await a.put_endpoint("e", "sparse_embedding", body())
    await eventually_async(lambda: known(b) == ["e"], 30, "b learns of the PUT")
    assert len(await b.infer("e", None, ["served by b"])) == 1
    assert b.deployment_stats("e").replica == "b" and a.deployment_stats("e").replica == "a"

    await a.update_endpoint("e", None, {"service_settings": {"num_allocations": 2}})
    await eventually_async(
        lambda: b.deployment_stats("e").snapshot.target_allocations == 2, 30, "b scales to 2"
    )
    (on_b,) = await b.get_endpoints("e")
    assert on_b.service_settings.num_allocations == 2

    watch = b.watch_deployment("e")
    assert (await anext(watch)).phase in (Phase.STARTED, Phase.FULLY_ALLOCATED)
    await a.delete_endpoint("e")
    await eventually_async(lambda: known(b) == [], 30, "b forgets the endpoint")
    events = [event async for event in watch]
    assert events[-1].phase is Phase.STOPPED and events[-1].reason == "inference endpoint deleted"
    with pytest.raises(ElserError) as info:
        await b.infer("e", None, ["gone"])
    assert info.value.code is Code.NOT_FOUND


async def test_a_replica_never_answers_404_for_an_endpoint_just_stored_elsewhere(
    replicas: Callable[..., Any],
) -> None:
    # b's resync is far away and its notification may not have arrived: reads and inference ask the store.
    a, b = await replicas("a"), await replicas("b")
    for i in range(5):
        await a.put_endpoint(f"fresh-{i}", "sparse_embedding", body())
        assert len(await b.infer(f"fresh-{i}", None, ["at once"])) == 1
    await a.put_endpoint("listed", "sparse_embedding", body())
    assert "listed" in [e.inference_id for e in await b.get_endpoints()]
    await a.put_endpoint("updated", "sparse_embedding", body())
    updated = await b.update_endpoint("updated", None, {"service_settings": {"num_allocations": 2}})
    assert updated.service_settings.num_allocations == 2


async def test_racing_puts_of_one_id_have_one_winner_that_both_serve(replicas: Callable[..., Any]) -> None:
    a, b = await replicas("a"), await replicas("b")
    outcomes = await asyncio.gather(
        a.put_endpoint("race", "sparse_embedding", body(1)),
        b.put_endpoint("race", "sparse_embedding", body(2)),
        return_exceptions=True,
    )
    errors = [o for o in outcomes if isinstance(o, ElserError)]
    (winner,) = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(errors) == 1
    assert (errors[0].http_status, errors[0].es_type, errors[0].reason) == (
        400,
        "resource_already_exists_exception",
        "Inference endpoint [race] already exists",
    )
    wanted = winner.endpoint.service_settings.num_allocations
    for core in (a, b):
        await eventually_async(
            lambda core=core: (
                "race" in known(core)  # type: ignore[misc]
                and core.deployment_stats("race").snapshot.target_allocations == wanted
            ),
            30,
            "the winner's definition everywhere",
        )


async def test_a_replica_started_later_serves_everything(replicas: Callable[..., Any]) -> None:
    a = await replicas("a")
    for name in ("one", "two"):
        await a.put_endpoint(name, "sparse_embedding", body())
    c = await replicas("c")
    assert known(c) == ["one", "two"]
    assert len(await c.infer("two", None, ["late"])) == 1


async def test_lookups_of_ids_nobody_stored_leave_nothing_behind(replicas: Callable[..., Any]) -> None:
    a = await replicas("a")

    def locks() -> int:
        return sum(1 for o in gc.get_objects() if type(o) is asyncio.Lock)

    before = locks()
    for i in range(300):
        with pytest.raises(ElserError) as info:
            await a.infer(f"typo-{i}", None, ["x"])
        assert info.value.code is Code.NOT_FOUND
    assert locks() - before < 10  # not one lock per id looked up


def write_unannounced(db: PgDatabase, endpoint: dict[str, Any]) -> None:
    """Store an endpoint with the notification trigger off: what a replica misses when a NOTIFY is lost."""
    with psycopg.connect(db.url_with_password, autocommit=True) as conn, conn.transaction():
        conn.execute("ALTER TABLE elser_endpoints DISABLE TRIGGER elser_endpoints_notify")
        conn.execute(
            "INSERT INTO elser_endpoints (inference_id, config) VALUES (%s, %s)",
            (endpoint["inference_id"], Jsonb(endpoint)),
        )
        conn.execute("ALTER TABLE elser_endpoints ENABLE TRIGGER elser_endpoints_notify")


async def test_the_periodic_comparison_finds_what_no_notification_announced(
    replicas: Callable[..., Any], pg_database: PgDatabase
) -> None:
    a = await replicas("a", store_resync_interval_s=0.2)
    silent = parse_put_request("silent", "sparse_embedding", body()).endpoint
    await asyncio.to_thread(write_unannounced, pg_database, silent.to_dict())
    await eventually_async(lambda: known(a) == ["silent"], 30, "the resync finds it")
    assert len(await a.infer("silent", None, ["found"])) == 1


async def test_store_outage_serves_known_endpoints_and_refuses_changes_whole(
    tiny_repository: Path, tmp_path: Path
) -> None:
    server = PostgresServer()
    server.start()
    try:
        async with AsyncExitStack() as stack:
            cores = []
            for name in ("a", "b"):
                core = build_core(
                    server_settings(
                        tiny_repository, tmp_path / name, store_url=server.url(), replica_name=name
                    )
                )
                await core.start()
                stack.push_async_callback(core.close)
                cores.append(core)
            a, b = cores
            await a.put_endpoint("kept", "sparse_embedding", body())
            await b.put_endpoint("doomed", "sparse_embedding", body())
            await eventually_async(lambda: known(a) == known(b) == ["doomed", "kept"], 30, "both know both")

            server.stop()
            await eventually_async(lambda: not a.store_available and not b.store_available, 30, "both notice")
            for core in (a, b):
                assert len(await core.infer("kept", None, ["still served"])) == 1
                assert [e.inference_id for e in await core.get_endpoints()] == [
                    ".elser-2-elasticsearch",
                    "doomed",
                    "kept",
                ]
            changes = (
                a.put_endpoint("new", "sparse_embedding", body()),
                a.update_endpoint("kept", None, {"service_settings": {"num_allocations": 2}}),
                a.delete_endpoint("doomed"),
            )
            for change in changes:
                started = time.monotonic()
                with pytest.raises(ElserError) as info:
                    await change
                assert time.monotonic() - started < 1.0  # refused before any work
                error = info.value
                assert (error.code, error.http_status, error.error_reason) == (
                    Code.UNAVAILABLE,
                    503,
                    "STORE_UNAVAILABLE",
                )
                assert error.retry_after_s is not None and "No change was made" in error.reason
            assert (
                known(a) == ["doomed", "kept"] and a.deployment_stats("kept").snapshot.target_allocations == 1
            )
            # ES's own refusals come first; a dry run writes nothing, so it needs no store.
            with pytest.raises(ElserError) as info:
                await a.delete_endpoint(".elser-2-elasticsearch")
            assert info.value.error_reason == "RESERVED_INFERENCE_ID"
            assert (await a.delete_endpoint("doomed", dry_run=True)).acknowledged is False

            server.start()
            await eventually_async(lambda: a.store_available and b.store_available, 30, "both reconnect")
            await b.delete_endpoint("doomed")
            await a.put_endpoint("new", "sparse_embedding", body())
            await eventually_async(
                lambda: known(a) == known(b) == ["kept", "new"], 30, "changes after recovery converge"
            )
    finally:
        server.close()
