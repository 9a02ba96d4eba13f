"""Use cases in a greenlet wait on the event loop; a database they cannot reach is a 503."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi.testclient import TestClient

from openlocker.api.errors import PROBLEM
from openlocker.core.context import Context
from openlocker.core.db import Database
from openlocker.core.green import run_in_greenlet
from tests.factories import Factory

NOWHERE = "postgresql://openlocker@127.0.0.1:1/nowhere"


def _loop_ticks_while_postgresql_sleeps(db: Database, ticks: list[int]) -> int:
    with db.sql.transaction(write=False) as tx:
        before = ticks[0]
        tx.execute("SELECT pg_sleep(0.3)")
        return ticks[0] - before


async def _with_a_ticking_loop(call: Callable[[list[int]], Awaitable[int]]) -> int:
    """What ``call`` returns while a coroutine on the same loop counts in ``ticks[0]``."""
    ticks = [0]

    async def tick() -> None:
        while True:
            ticks[0] += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    try:
        return await call(ticks)
    finally:
        ticker.cancel()


def test_a_use_case_in_a_greenlet_lets_the_loop_run_while_postgresql_works(
    pg_migrated: str,
) -> None:
    db = Database(pg_migrated)

    async def in_a_greenlet(ticks: list[int]) -> int:
        return await run_in_greenlet(_loop_ticks_while_postgresql_sleeps, db, ticks)

    async def on_the_loop(ticks: list[int]) -> int:
        return _loop_ticks_while_postgresql_sleeps(db, ticks)

    async def both() -> tuple[int, int]:
        try:
            waiting = await _with_a_ticking_loop(in_a_greenlet)
            return waiting, await _with_a_ticking_loop(on_the_loop)
        finally:
            assert db.sql.green is not None
            await db.sql.green.close()

    waiting_on_the_loop, blocking = asyncio.run(both())
    db.dispose()
    assert waiting_on_the_loop > 0
    assert blocking == 0  # the same call outside a greenlet holds the loop: the count is fair


def test_the_api_answers_503_when_the_database_cannot_be_reached(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    carrier = factory.org()
    site = factory.site("S")
    assert factory.announce(carrier, site).status_code == 201  # the carrier's key is cached
    reachable, ctx.db = ctx.db, Database(NOWHERE)
    try:
        # A cached key's announce runs in a greenlet (api.fastpath); an unknown key's lookup
        # runs in a thread.
        in_a_greenlet = factory.announce(carrier, site)
        in_a_thread = client.get("/v1/parcels", headers={"Authorization": "Bearer olk_unknown"})
    finally:
        ctx.db.dispose()
        ctx.db = reachable
    for answer in (in_a_greenlet, in_a_thread):
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == PROBLEM
        assert answer.json()["code"] == "database_unavailable"
