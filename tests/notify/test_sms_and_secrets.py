"""SMS through a local HTTP gateway; no code in a log line, the outbox or the attempts."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from openlocker.core.clock import FrozenClock
from openlocker.core.context import Context
from tests.factories import Factory
from tests.notify.conftest import (
    Gateway,
    Inbox,
    configure,
    deposit_for_recipient,
    dispatch,
    outbox_row,
)


def test_twilio_form_post_carries_pin_and_link_to_the_e164_number(
    factory: Factory, ctx: Context, sms_gateway: tuple[Gateway, str]
) -> None:
    gateway, base = sms_gateway
    configure(
        ctx,
        sms_url=f"{base.replace('http://', 'http://AC1:tok@')}/2010-04-01/Accounts/AC1/Messages.json",
        sms_from="+48500000000",
    )
    parcel = deposit_for_recipient(
        factory, factory.org(), factory.site("S"), email=None, phone="600 100 200"
    )
    assert dispatch(ctx) == 1
    [post] = gateway.posts
    assert post["path"].endswith("/Messages.json")
    assert post["headers"]["Authorization"].startswith("Basic ")
    assert post["headers"]["Idempotency-Key"] == outbox_row(ctx, parcel["id"])[0]
    assert post["body"]["To"] == "+48600100200" and post["body"]["From"] == "+48500000000"
    assert "PIN " in post["body"]["Body"] and "https://lockers.test/p/" in post["body"]["Body"]
    assert outbox_row(ctx, parcel["id"])[1] == "sent"


def test_json_gateway_and_both_channels_each_sent_once(
    factory: Factory,
    ctx: Context,
    clock: FrozenClock,
    smtp: tuple[Inbox, int],
    sms_gateway: tuple[Gateway, str],
) -> None:
    inbox, port = smtp
    gateway, base = sms_gateway
    configure(
        ctx, smtp_url=f"smtp://127.0.0.1:{port}", sms_url=f"{base}/send", notify_backoff_seconds=1
    )
    parcel = deposit_for_recipient(factory, factory.org(), factory.site("S"))
    gateway.status = 503  # the SMS gateway is down, the email goes
    assert dispatch(ctx) == 1
    assert len(inbox.received) == 1 and len(gateway.posts) == 1
    assert outbox_row(ctx, parcel["id"])[1] == "pending"
    gateway.status = 200
    clock.advance(seconds=5)
    assert dispatch(ctx) == 1
    assert len(inbox.received) == 1  # the email is not sent again
    assert len(gateway.posts) == 2
    assert set(gateway.posts[1]["body"]) == {"to", "text", "reference"}
    assert outbox_row(ctx, parcel["id"])[1] == "sent"


def test_no_code_in_logs_outbox_or_attempts_even_when_the_gateway_echoes_it(
    factory: Factory,
    ctx: Context,
    clock: FrozenClock,
    sms_gateway: tuple[Gateway, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway, base = sms_gateway
    configure(ctx, sms_url=f"{base}/send", notify_backoff_seconds=1)
    caplog.set_level(logging.DEBUG)
    parcel = deposit_for_recipient(factory, factory.org(), factory.site("S"), email=None)
    gateway.status = 400
    gateway.body = "refused"
    assert dispatch(ctx) == 1
    sms = gateway.posts[0]["body"]["text"]
    pin = sms.split("PIN ")[1].split()[0]
    link = sms.split()[-1]
    codes = [pin, link, link.rsplit("/", 1)[1]]
    # A gateway that answers with the message it refused: the attempt keeps its reason only.
    gateway.body = f"refused: {sms}"
    factory.client.post(
        f"/v1/outbox/{outbox_row(ctx, parcel['id'])[0]}/retry", headers=factory.operator().headers
    )
    assert dispatch(ctx) == 1
    with ctx.db.engine.connect() as conn:
        dump = "\n".join(
            repr(tuple(row))
            for table in ("outbox", "delivery_attempts", "audit_events")
            for row in conn.execute(text(f"SELECT * FROM {table}"))
        )
        errors = [e for (e,) in conn.execute(text("SELECT error FROM delivery_attempts"))]
    assert any("refused: " in (e or "") and "[code]" in (e or "") for e in errors)
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    for code in codes:
        assert code not in dump
        assert code not in logged


def test_a_parcel_picked_up_before_its_message_left_is_not_messaged(
    factory: Factory, ctx: Context, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    configure(ctx, smtp_url=f"smtp://127.0.0.1:{port}")
    carrier = factory.org()
    site = factory.site("SS")
    parcel = deposit_for_recipient(factory, carrier, site, phone=None)
    replayed = factory.client.post(
        f"/v1/parcels/{parcel['id']}/credentials", headers=carrier.headers
    )
    assert replayed.status_code == 200
    assert dispatch(ctx) == 1  # the other one is skipped, not claimed
    assert len(inbox.received) == 1  # the first credentials were voided: only the new ones go
    with ctx.db.sql.transaction(write=False) as tx:
        states = sorted(
            (state, error or "")
            for state, error in tx.all(
                "SELECT state, last_error FROM outbox"
                " WHERE parcel_id = :p AND topic LIKE 'recipient.%'",
                {"p": parcel["id"]},
            )
        )
    assert states == [("sent", ""), ("skipped", "newer credentials replaced these")]

    other = deposit_for_recipient(factory, carrier, site, phone=None)
    with ctx.db.sql.transaction() as tx:  # the recipient was quicker than the message
        tx.execute("UPDATE parcels SET status = 'picked_up' WHERE id = :id", {"id": other["id"]})
    assert dispatch(ctx) == 0
    assert len(inbox.received) == 1
    row = outbox_row(ctx, other["id"])
    assert row[1] == "skipped" and row[3] == "the parcel is picked_up" and row[5] is None
