"""Idempotency-Key: the first answer to an organization's key at an endpoint is kept and
given again to a retry; the same key with another request is refused."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from openlocker.core.context import Context
from openlocker.core.errors import InvalidInput
from openlocker.core.sql import Tx


def request_digest(payload: Any) -> str:
    """A request's fingerprint: its JSON with sorted keys, hashed."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class StoredAnswer:
    status_code: int
    body: str


def stored_answer(tx: Tx, org_id: str, endpoint: str, key: str, digest: str) -> StoredAnswer | None:
    """The first answer to this organization's ``key`` at ``endpoint``; refuses another request
    under the same key (``idempotency_key_reused``)."""
    row = tx.one(
        "SELECT request_digest, status_code, body FROM idempotency_records"
        " WHERE org_id = :org_id AND endpoint = :endpoint AND key = :key",
        {"org_id": org_id, "endpoint": endpoint, "key": key},
    )
    if row is None:
        return None
    if row[0] != digest:
        raise InvalidInput(
            "This Idempotency-Key was used with a different request.", code="idempotency_key_reused"
        )
    return StoredAnswer(row[1], row[2])


def remember_answer(
    tx: Tx,
    ctx: Context,
    org_id: str,
    endpoint: str,
    key: str,
    digest: str,
    status_code: int,
    body: str,
) -> None:
    """Keep the answer to a request sent with an ``Idempotency-Key`` (never a credential)."""
    tx.defer(
        "INSERT INTO idempotency_records"
        " (org_id, endpoint, key, request_digest, status_code, body, created_at)"
        " VALUES (:org_id, :endpoint, :key, :digest, :status_code, :body, :at)",
        {
            "org_id": org_id,
            "endpoint": endpoint,
            "key": key,
            "digest": digest,
            "status_code": status_code,
            "body": body,
            "at": ctx.clock(),
        },
    )
