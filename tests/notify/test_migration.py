"""Migration 0005 both ways: waiting messages stay waiting, sent ones stay sent."""

from __future__ import annotations

from sqlalchemy import text

from openlocker.core.context import Context
from tests.factories import Factory
from tests.notify.conftest import configure, deposit_for_recipient, dispatch
from tests.test_migrations import _migrate


def test_outbox_states_survive_0005_down_and_up(factory: Factory, ctx: Context) -> None:
    configure(ctx, mailbox=True)
    carrier = factory.org()
    site = factory.site("SS")
    sent = deposit_for_recipient(factory, carrier, site)
    assert dispatch(ctx) == 1
    waiting = deposit_for_recipient(factory, carrier, site)

    _migrate(ctx, "0003", down=True)
    with ctx.db.engine.connect() as conn:
        rows = dict(
            conn.execute(
                text(
                    "SELECT parcel_id, sent_at IS NOT NULL FROM outbox"
                    " WHERE topic = 'recipient.pickup_ready'"
                )
            ).all()
        )
    assert {k: bool(v) for k, v in rows.items()} == {sent["id"]: True, waiting["id"]: False}

    _migrate(ctx, "head")
    ctx.cache.clear()
    with ctx.db.engine.connect() as conn:
        states = dict(
            conn.execute(
                text("SELECT parcel_id, state FROM outbox WHERE topic = 'recipient.pickup_ready'")
            ).all()
        )
        reminders = conn.execute(text("SELECT DISTINCT reminder_hours FROM sites")).all()
    assert states == {sent["id"]: "sent", waiting["id"]: "pending"}
    assert reminders == [(24,)]
    assert dispatch(ctx) == 1
