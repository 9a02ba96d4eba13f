"""A kiosk's store as the sync fills it, and kiosk event pushes, in one line each."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from openlocker.access.credentials import kiosk_digest
from openlocker.audit.service import seal_pending
from openlocker.core.context import Context
from openlocker.core.keys import unb64url
from tests.factories import Org

_events = itertools.count(1)


@dataclass
class Store:
    """What a kiosk keeps: the rows of every sync answer applied in order (active rows kept,
    inactive ones removed), and the cursor."""

    credentials: dict[str, dict[str, Any]] = field(default_factory=dict)
    couriers: dict[str, dict[str, Any]] = field(default_factory=dict)
    expected: dict[str, dict[str, Any]] = field(default_factory=dict)
    cursor: str | None = None
    last: dict[str, Any] = field(default_factory=dict)
    calls: int = 0

    def apply(self, answer: dict[str, Any]) -> None:
        for name, key in (("credentials", "id"), ("couriers", "id"), ("expected", "parcel_id")):
            kept: dict[str, dict[str, Any]] = getattr(self, name)
            for row in answer[name]:
                if row["active"]:
                    kept[row[key]] = row
                else:
                    kept.pop(row[key], None)
        self.cursor = answer["cursor"]
        self.last = answer
        self.calls += 1

    def digest(self, kind: str, secret: str) -> str:
        return kiosk_digest(unb64url(self.last["digest_key"]), kind, secret)

    def by_pin(self, pin: str) -> dict[str, Any] | None:
        wanted = self.digest("pin", pin)
        return next((c for c in self.credentials.values() if c["pin"] == wanted), None)


def sync(client: TestClient, site: str, kiosk: Org, store: Store, *, limit: int = 1000) -> Store:
    """Sync until the server says there is no more."""
    for _ in range(10_000):
        params: dict[str, Any] = {"limit": limit}
        if store.cursor is not None:
            params["cursor"] = store.cursor
        answer = client.get(f"/v1/sites/{site}/kiosk/sync", params=params, headers=kiosk.headers)
        assert answer.status_code == 200, answer.text
        store.apply(answer.json())
        if not answer.json()["more"]:
            return store
    raise AssertionError("the sync never ended")


def sealed_sync(
    ctx: Context, client: TestClient, site: str, kiosk: Org, store: Store, **kw: Any
) -> Store:
    """Seal the audit trail (as a server's background job does), then sync."""
    seal_pending(ctx)
    return sync(client, site, kiosk, store, **kw)


def event(type_: str, at: datetime, **fields: Any) -> dict[str, Any]:
    """A kiosk event of ``type_`` with a fresh id."""
    number = next(_events)
    return {"id": f"kev_{number:06d}", "seq": number, "type": type_, "at": at.isoformat(), **fields}


def push(
    client: TestClient, site: str, kiosk: Org, *events: dict[str, Any]
) -> list[dict[str, Any]]:
    answer = client.post(
        f"/v1/sites/{site}/kiosk/events", json={"events": list(events)}, headers=kiosk.headers
    )
    assert answer.status_code == 200, answer.text
    results: list[dict[str, Any]] = answer.json()["results"]
    return results


def active_sets(ctx: Context, site: str) -> set[str]:
    with ctx.db.engine.connect() as conn:
        return {
            row[0]
            for row in conn.execute(
                text(
                    "SELECT id FROM credential_sets WHERE site_id = :s AND active"
                    " AND kiosk_pin IS NOT NULL"
                ),
                {"s": site},
            )
        }


def one(ctx: Context, sql: str, **params: Any) -> Any:
    with ctx.db.engine.connect() as conn:
        return conn.execute(text(sql), params).one()


def audit_names(ctx: Context, site: str) -> list[str]:
    with ctx.db.engine.connect() as conn:
        return [
            row[0]
            for row in conn.execute(
                text("SELECT name FROM audit_events WHERE site_id = :s ORDER BY seq"), {"s": site}
            )
        ]
