"""Reminders before the deadline and notices at expiry: once per parcel, none after pickup."""

from __future__ import annotations

from fastapi.testclient import TestClient

from openlocker.core.clock import FrozenClock
from openlocker.core.context import Context
from openlocker.notify.service import queue_notices
from openlocker.parcels.service import expire_due
from tests.factories import Factory
from tests.notify.conftest import Inbox, configure, deposit_for_recipient, dispatch, outbox_row


def _pin(email: object) -> str:
    text = email.get_body(("plain",)).get_content()  # type: ignore[attr-defined]
    return next(w for w in text.split() if w.isdigit() and len(w) == 8)


def test_reminder_reuses_the_kept_credentials_once_and_the_expiry_notice_follows(
    factory: Factory, ctx: Context, clock: FrozenClock, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    configure(ctx, smtp_url=f"smtp://127.0.0.1:{port}")
    site = factory.site("SS", dwell_hours=72)
    parcel = deposit_for_recipient(factory, factory.org(), site, phone=None)
    assert dispatch(ctx) == 1
    assert outbox_row(ctx, parcel["id"])[5] is not None  # kept sealed for the reminder

    clock.advance(hours=47)
    assert queue_notices(ctx) == 0  # 25 h before the deadline
    clock.advance(hours=1, seconds=1)
    assert queue_notices(ctx) == 1
    assert queue_notices(ctx) == 0  # once
    assert dispatch(ctx) == 1
    first, reminder = inbox.received
    assert reminder["Subject"].startswith("Reminder: parcel")
    assert _pin(reminder) == _pin(first)
    assert outbox_row(ctx, parcel["id"], "recipient.reminder")[5] is None

    clock.advance(hours=25)
    assert expire_due(ctx) == (1, 0)
    assert queue_notices(ctx) == 1
    assert queue_notices(ctx) == 0
    # The parcel left the locker: its kept credentials are gone.
    assert outbox_row(ctx, parcel["id"])[5] is None
    assert dispatch(ctx) == 1
    notice = inbox.received[-1]
    assert "not collected" in notice["Subject"]
    assert not [p for p in notice.walk() if p.get_content_type() == "image/png"]


def test_no_reminder_after_pickup_nor_where_the_site_turns_them_off(
    factory: Factory, ctx: Context, clock: FrozenClock, client: TestClient
) -> None:
    carrier = factory.org()
    site = factory.site("SS", dwell_hours=48)
    collected = factory.deposited(carrier, site)
    waiting = deposit_for_recipient(factory, carrier, site)
    assert factory.pick_up(site, collected).status_code == 200
    sender_parcel = collected  # notify "sender": its sender messages the recipient itself
    with ctx.db.sql.transaction() as tx:
        tx.execute("UPDATE parcels SET status = 'picked_up' WHERE id = :id", {"id": waiting["id"]})
    clock.advance(hours=30)
    assert queue_notices(ctx) == 0
    assert outbox_row(ctx, sender_parcel["id"], "recipient.reminder") is None

    quiet = client.post(
        "/v1/sites",
        headers=factory.operator().headers,
        json={
            "name": "Quiet",
            "address": "Cicha 1",
            "lat": 52.2,
            "lon": 21.0,
            "reminder_hours": None,
            "expiry_notice": False,
            "language": "pl",
            "timezone": "Europe/Warsaw",
            "compartments": [{"label": "A1", "size": "S", "floor_height_mm": 300}],
        },
    )
    assert quiet.status_code == 201, quiet.text
    assert quiet.json()["reminder_hours"] is None and quiet.json()["timezone"] == "Europe/Warsaw"
    deposit_for_recipient(factory, carrier, quiet.json()["id"])
    clock.advance(hours=71)
    assert queue_notices(ctx) == 0
    clock.advance(hours=2)
    expire_due(ctx)
    assert queue_notices(ctx) == 0
    bad = client.post(
        "/v1/sites",
        headers=factory.operator().headers,
        json={"name": "X", "address": "Y", "lat": 0, "lon": 0, "timezone": "Mars/Olympus"},
    )
    assert bad.status_code == 422 and "timezone" in bad.json()["detail"]
