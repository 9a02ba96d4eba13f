"""Plain SQL on the engine's own connections, for the use cases on the hot path.

The ORM spends 0.3 to 0.5 ms of Python on each statement; the driver alone about 0.05 ms.
The parcel lifecycle runs thousands of times a second on a busy network, so its use cases
speak SQL through ``Tx``, a thin layer over the DBAPI connection. One code path still
serves both databases:

- statements are written once with ``:name`` parameters (rewritten for psycopg);
- ``Tx.for_update`` / ``Tx.skip_locked`` are row-lock clauses on PostgreSQL and empty on
  SQLite, where a write transaction (``BEGIN IMMEDIATE``) already excludes other writers;
- datetimes go in aware and come out aware (``Tx.time``): SQLite stores them as naive UTC
  text, exactly as SQLAlchemy's ``UtcDateTime`` does, so ORM and SQL read the same rows;
- JSON goes in as text (``Tx.json_param``) and comes out as Python (``Tx.json``).

Driver errors leave as SQLAlchemy's (``IntegrityError``, ``DataError``, ``OperationalError``),
so the API maps them the same way whichever layer raised them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

Params = Mapping[str, Any]
Row = tuple[Any, ...]

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_psycopg_sql: dict[str, str] = {}


def _to_psycopg(sql: str) -> str:
    converted = _psycopg_sql.get(sql)
    if converted is None:
        converted = _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))
        _psycopg_sql[sql] = converted
    return converted


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        # SQLAlchemy's SQLite DATETIME storage format, naive UTC.
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    return value


class Tx:
    """One transaction's statements; use ``Database.sql()`` or ``Tx.of(session)``."""

    def __init__(self, dbapi_connection: Any, dialect: Dialect) -> None:
        self.postgres = dialect.name == "postgresql"
        self._cursor = dbapi_connection.cursor()
        self._error = dialect.loaded_dbapi.Error
        self.for_update = " FOR UPDATE" if self.postgres else ""
        self.skip_locked = " FOR UPDATE SKIP LOCKED" if self.postgres else ""

    @classmethod
    def of(cls, session: Session) -> Tx:
        """Statements inside an ORM session's transaction (flush pending objects first)."""
        connection = session.connection()
        return cls(connection.connection.dbapi_connection, connection.dialect)

    def execute(self, sql: str, params: Params | None = None) -> Any:
        """Run one statement; the driver's cursor is returned for its rows."""
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

    def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        """Run one statement for each parameter set (pipelined by psycopg)."""
        try:
            if self.postgres:
                self._cursor.executemany(_to_psycopg(sql), rows)
            else:
                self._cursor.executemany(
                    sql, [{k: _sqlite_value(v) for k, v in r.items()} for r in rows]
                )
        except self._error as error:
            raise DBAPIError.instance(sql, None, error, self._error) from error

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


def values_clause(columns: Sequence[str], rows: int) -> tuple[str, list[list[str]]]:
    """``(:c_0, :d_0), (:c_1, :d_1)…`` for a multi-row INSERT, and each row's parameter names."""
    names = [[f"{c}_{i}" for c in columns] for i in range(rows)]
    clause = ", ".join("(" + ", ".join(f":{n}" for n in row) + ")" for row in names)
    return clause, names


class SqlRunner:
    """Opens ``Tx`` transactions on an engine's pooled connections."""

    def __init__(self, engine: Engine, writer_lock: threading.Lock | None) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self._writer_lock = writer_lock
        self._error = engine.dialect.loaded_dbapi.Error

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        """Committed when the block ends, rolled back on any error."""
        lock = self._writer_lock if write else None
        if lock is not None:
            lock.acquire()
        try:
            connection = self.engine.raw_connection()
            try:
                tx = Tx(connection.dbapi_connection, self.dialect)
                if not tx.postgres:
                    tx.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield tx
                except BaseException:
                    connection.rollback()
                    raise
                with self._translated_errors():
                    connection.commit()
            finally:
                connection.close()
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        try:
            yield
        except self._error as error:
            raise DBAPIError.instance(None, None, error, self._error) from error
