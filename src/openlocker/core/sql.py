"""Plain SQL on the engine's own connections, for the use cases on the hot path.

The ORM spends 0.3 to 0.5 ms of Python on each statement; the driver alone about 0.05 ms.
The parcel lifecycle runs thousands of times a second on a busy network, so its use cases
speak SQL through ``Tx``, a thin layer over the DBAPI connection. One code path still
serves both databases:

- statements are written once with ``:name`` parameters (rewritten for psycopg);
- ``Tx.lock()`` gives a row-lock clause and ``Tx.serialize()`` takes an advisory lock on
  PostgreSQL; both do nothing on SQLite, where a write transaction (``BEGIN IMMEDIATE``)
  already excludes other writers;
- datetimes go in aware and come out aware (``Tx.time``): SQLite stores them as naive UTC
  text, exactly as SQLAlchemy's ``UtcDateTime`` does, so ORM and SQL read the same rows;
- JSON goes in as text (``Tx.json_param``) and comes out as Python (``Tx.json``).

Writes whose result nobody reads (an audit event, outbox rows, a status change) are
``Tx.defer``-red and leave with the next statement or at commit. PostgreSQL gets them in
that statement, as data-modifying ``WITH`` parts: one round trip instead of several, the
largest single cost of a short transaction there. SQLite, in-process, runs them one by one.

Driver errors leave as SQLAlchemy's (``IntegrityError``, ``DataError``, ``OperationalError``),
so the API maps them the same way whichever layer raised them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from openlocker.core.green import GreenPool, in_greenlet

Params = Mapping[str, Any]
Row = tuple[Any, ...]

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_psycopg_sql: dict[str, str] = {}
_combined_sql: dict[tuple[str, ...], str] = {}
_insert_sql: dict[tuple[Any, ...], str] = {}
#: At most this many deferred writes ride in one statement.
MAX_DEFERRED = 16


def _to_psycopg(sql: str) -> str:
    converted = _psycopg_sql.get(sql)
    if converted is None:
        converted = _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))
        _psycopg_sql[sql] = converted
    return converted


def _prefixed(sql: str, prefix: str) -> str:
    """``sql`` with each ``:name`` parameter renamed ``:<prefix>name``."""
    return _NAMED.sub(lambda match: f":{prefix}{match.group(1)}", sql)


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        # SQLAlchemy's SQLite DATETIME storage format, naive UTC.
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    return value


class Tx:
    """One transaction's statements: from ``Database.sql.transaction()`` or ``Tx.of(session)``."""

    def __init__(self, dbapi_connection: Any, dialect: Dialect, *, deferring: bool = True) -> None:
        self.postgres = dialect.name == "postgresql"
        self._cursor = dbapi_connection.cursor()
        self._error = dialect.loaded_dbapi.Error
        self._deferring = deferring
        self._deferred: list[tuple[str, Params]] = []

    def lock(self, of: str | None = None, *, skip_locked: bool = False) -> str:
        """`` FOR UPDATE [OF table] [SKIP LOCKED]`` on PostgreSQL; SQLite's write transaction
        already keeps other writers out, so there it is empty."""
        if not self.postgres:
            return ""
        return " FOR UPDATE" + (f" OF {of}" if of else "") + (" SKIP LOCKED" if skip_locked else "")

    def serialize(self, key: int) -> None:
        """Hold, until this transaction ends, a lock on ``key`` (a signed 64-bit number): other
        transactions serializing on it wait. A PostgreSQL advisory lock, so no row has to exist
        to be locked; SQLite's write transaction already keeps other writers out."""
        if self.postgres:
            self.execute("SELECT pg_advisory_xact_lock(:key)", {"key": key})

    @classmethod
    def of(cls, session: Session) -> Tx:
        """Statements inside an ORM session's transaction; deferred writes run at once."""
        connection = session.connection()
        return cls(connection.connection.dbapi_connection, connection.dialect, deferring=False)

    def defer(self, sql: str, params: Params) -> None:
        """A write (INSERT, UPDATE, DELETE) whose result nobody reads: sent with the next
        statement or at commit, whichever comes first.

        Writes deferred together must not change the same row: on PostgreSQL they run as
        parts of one statement, which sees the database as it was before any of them.
        """
        if not self._deferring:
            self.execute(sql, params)
            return
        self._deferred.append((sql, params))
        if len(self._deferred) >= MAX_DEFERRED:
            self.flush()

    def flush(self) -> None:
        """Send the deferred writes now (one statement on PostgreSQL)."""
        if not self._deferred:
            return
        if self.postgres:
            self.execute(*self._deferred.pop())
        else:
            deferred, self._deferred = self._deferred, []
            for write in deferred:
                self._run(*write)

    def execute(self, sql: str, params: Params | None = None) -> Any:
        """Run one statement (after the deferred writes); the driver's cursor has its rows."""
        if self._deferred:
            if self.postgres and sql.startswith(("INSERT", "UPDATE", "DELETE")):
                sql, params = self._with_deferred(sql, params or {})
            else:
                self.flush()
        return self._run(sql, params)

    def _with_deferred(self, sql: str, params: Params) -> tuple[str, Params]:
        """One statement: the deferred writes as ``WITH`` parts, then ``sql``."""
        deferred, self._deferred = self._deferred, []
        key = (*(write for write, _ in deferred), sql)
        combined = _combined_sql.get(key)
        if combined is None:
            parts = ", ".join(
                f"w{i} AS ({_prefixed(write, f'w{i}_')})" for i, (write, _) in enumerate(deferred)
            )
            combined = _combined_sql[key] = f"WITH {parts} {sql}"
        merged = dict(params)
        for i, (_, values) in enumerate(deferred):
            merged.update({f"w{i}_{name}": value for name, value in values.items()})
        return combined, merged

    def _run(self, sql: str, params: Params | None) -> Any:
        try:
            if self.postgres:
                self._cursor.execute(_to_psycopg(sql), params)
            elif params:
                self._cursor.execute(sql, {k: _sqlite_value(v) for k, v in params.items()})
            else:
                self._cursor.execute(sql)
        except self._error as error:
            raise DBAPIError.instance(sql, params, error, self._error) from error
        return self._cursor

    def one(self, sql: str, params: Params | None = None) -> Row | None:
        row: Row | None = self.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: Params | None = None) -> list[Row]:
        rows: list[Row] = self.execute(sql, params).fetchall()
        return rows

    def scalar(self, sql: str, params: Params | None = None) -> Any:
        row = self.one(sql, params)
        return None if row is None else row[0]

    @staticmethod
    def time(value: Any) -> datetime | None:
        """A datetime column's value, aware UTC (SQLite hands back text)."""
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    @staticmethod
    def json(value: Any) -> Any:
        """A JSON column's value as Python (psycopg parses it already, SQLite does not)."""
        return orjson.loads(value) if isinstance(value, str | bytes) else value

    @staticmethod
    def json_param(value: Any) -> str:
        return orjson.dumps(value).decode()


def insert_rows(
    table: str, shared: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
) -> tuple[str, dict[str, Any]]:
    """A multi-row INSERT and its parameters; a value in ``shared`` is one parameter for all
    rows (psycopg caches the parsing of statements with at most 50 parameters)."""
    per_row = list(rows[0])
    key = (table, *shared, "|", *per_row, len(rows))
    sql = _insert_sql.get(key)
    if sql is None:
        values = ", ".join(
            "(" + ", ".join([f":{c}" for c in shared] + [f":{c}_{i}" for c in per_row]) + ")"
            for i in range(len(rows))
        )
        sql = _insert_sql[key] = (
            f"INSERT INTO {table} ({', '.join([*shared, *per_row])}) VALUES {values}"
        )
    params = dict(shared)
    for i, row in enumerate(rows):
        params.update((f"{column}_{i}", value) for column, value in row.items())
    return sql, params


class SqlRunner:
    """Opens ``Tx`` transactions on an engine's pooled connections.

    Inside a greenlet (``core.green.run_in_greenlet``) PostgreSQL transactions use
    connections that wait on the event loop; everywhere else, the engine's own pool.
    """

    def __init__(
        self, engine: Engine, writer_lock: threading.Lock | None, *, pool_size: int = 10
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self._writer_lock = writer_lock
        self._error = engine.dialect.loaded_dbapi.Error
        self.green: GreenPool | None = None
        if self.dialect.name == "postgresql":
            conninfo = engine.url.set(drivername="postgresql").render_as_string(False)
            self.green = GreenPool(conninfo, pool_size)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        """Committed when the block ends, rolled back on any error."""
        if self.green is not None and in_greenlet():
            try:
                connection = self.green.acquire()
            except self._error as error:  # cannot connect: the same 503 as the engine's pool
                raise DBAPIError.instance(None, None, error, self._error) from error
            try:
                yield from self._run(connection, write)
            finally:
                self.green.release(connection)
            return
        lock = self._writer_lock if write else None
        if lock is not None:
            lock.acquire()
        try:
            pooled = self.engine.raw_connection()
            try:
                yield from self._run(pooled.dbapi_connection, write)
            finally:
                pooled.close()
        finally:
            if lock is not None:
                lock.release()

    def _run(self, connection: Any, write: bool) -> Iterator[Tx]:
        tx = Tx(connection, self.dialect)
        if not tx.postgres:
            tx.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield tx
            tx.flush()
        except BaseException:
            with suppress(self._error):  # a broken connection cannot roll back: it is dropped
                connection.rollback()
            raise
        try:
            connection.commit()
        except self._error as error:
            raise DBAPIError.instance(None, None, error, self._error) from error
