"""Cursor pages of lists, newest first: ``{"items": [...], "next_cursor": ...}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openlocker.core.errors import InvalidInput
from openlocker.core.keys import b64url, unb64url


def newest_first(
    select: str,
    id_column: str,
    filters: dict[str, Any],
    cursor: str | None,
    limit: int,
    *,
    conditions: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[str, dict[str, Any]]:
    """A page of ``select``'s rows, newest ``id_column`` first: the columns of ``filters``
    equal to their values (None: not filtered), each of ``conditions`` (SQL and its
    parameters) true, after ``cursor``, ``limit + 1`` rows (the extra one says whether there
    is a next page)."""
    where = [f"{column} = :f{i}" for i, column in enumerate(filters) if filters[column] is not None]
    params: dict[str, Any] = {
        f"f{i}": value for i, value in enumerate(filters.values()) if value is not None
    }
    for condition, values in (conditions or {}).items():
        where.append(condition)
        params.update(values)
    if cursor is not None:
        where.append(f"{id_column} < :cursor")
        params["cursor"] = decode_cursor(cursor)
    sql = select + (" WHERE " + " AND ".join(where) if where else "")
    return f"{sql} ORDER BY {id_column} DESC LIMIT :limit", {**params, "limit": limit + 1}


def encode_cursor(last_id: str) -> str:
    """The cursor of the page after the row ``last_id``."""
    return b64url(last_id.encode())


def decode_cursor(cursor: str) -> str:
    """The row id a cursor names; ``invalid_cursor`` when it names none."""
    try:
        return unb64url(cursor).decode("ascii")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("The cursor is not valid.", code="invalid_cursor") from exc
