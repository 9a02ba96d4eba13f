"""PostgreSQL connections that wait on the event loop, for use cases run in a greenlet.

A server worker runs the lifecycle's use cases on its event loop. With a blocking driver
the whole worker waits while PostgreSQL answers, and a worker that holds more keep-alive
connections than the others (connections land wherever a worker accepts first) becomes
the bottleneck while the others idle. Run in a greenlet (``run_in_greenlet``), the same
synchronous use-case code waits on the loop instead: each ``execute`` hands the loop back
until the answer arrives, and the worker serves its other requests meanwhile.

The adapters below make a psycopg ``AsyncConnection`` look like the DBAPI connection
``core.sql.Tx`` expects. SQLite needs none of this: it runs in-process.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

import psycopg
from sqlalchemy.util.concurrency import await_only, greenlet_spawn, in_greenlet

T = TypeVar("T")

__all__ = ["GreenPool", "in_greenlet", "run_in_greenlet"]


async def run_in_greenlet(function: Callable[..., T], *args: Any) -> T:
    """Call synchronous ``function`` so that its database waits yield to the event loop."""
    result: T = await greenlet_spawn(function, *args)
    return result


class _Cursor:
    def __init__(self, cursor: psycopg.AsyncCursor[Any]) -> None:
        self._cursor = cursor

    def execute(self, query: str, params: Any = None) -> _Cursor:
        await_only(self._cursor.execute(query, params))
        return self

    def fetchone(self) -> Any:
        return await_only(self._cursor.fetchone())

    def fetchall(self) -> list[Any]:
        return await_only(self._cursor.fetchall())


class GreenConnection:
    """An ``AsyncConnection`` with the blocking DBAPI surface, for code in a greenlet."""

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.connection = connection

    def cursor(self) -> _Cursor:
        return _Cursor(self.connection.cursor())

    def commit(self) -> None:
        await_only(self.connection.commit())

    def rollback(self) -> None:
        await_only(self.connection.rollback())


class _LoopPool:
    """Idle connections of one event loop, at most ``size`` open."""

    def __init__(self, conninfo: str, size: int) -> None:
        self.conninfo = conninfo
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        self.slots = asyncio.Semaphore(size)

    async def acquire(self) -> psycopg.AsyncConnection[Any]:
        await self.slots.acquire()
        try:
            while self.idle:
                connection = self.idle.pop()
                if not connection.closed:
                    return connection
            return await psycopg.AsyncConnection.connect(self.conninfo)
        except BaseException:
            self.slots.release()
            raise

    def release(self, connection: psycopg.AsyncConnection[Any]) -> None:
        """From inside a greenlet: back to the idle list, or closed if it failed."""
        try:
            if connection.broken or connection.closed or connection.info.transaction_status:
                with suppress(psycopg.Error):
                    await_only(connection.close())
            else:
                self.idle.append(connection)
        finally:
            self.slots.release()


class GreenPool:
    """Async PostgreSQL connections, a pool per event loop (connections belong to one)."""

    def __init__(self, conninfo: str, size: int) -> None:
        self.conninfo = conninfo
        self.size = size
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPool] = (
            weakref.WeakKeyDictionary()
        )

    def _pool(self) -> _LoopPool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = _LoopPool(self.conninfo, self.size)
        return pool

    def acquire(self) -> GreenConnection:
        """From inside a greenlet: a connection of the running loop's pool."""
        return GreenConnection(await_only(self._pool().acquire()))

    def release(self, connection: GreenConnection) -> None:
        """From inside a greenlet."""
        self._pool().release(connection.connection)

    async def close(self) -> None:
        """Close the running loop's idle connections (at the app's shutdown)."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            for connection in pool.idle:
                await connection.close()
