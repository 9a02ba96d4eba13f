"""A customer who drops a return off gets a receipt: by email through a real SMTP server, by
SMS through a local gateway, in the demo's mailbox, in their language."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from openlocker.api.app import create_app
from openlocker.core.context import Context
from tests.factories import Factory, Org
from tests.notify.conftest import Gateway, Inbox, configure, dispatch, outbox_row
from tests.orders.helpers import events, outbox


def _issue(factory: Factory, org: Org, customer: dict[str, Any], reference: str) -> Any:
    body = {"reference": reference, "size": "M", "customer": customer}
    return factory.client.post("/v1/returns", json=body, headers=org.headers)


def _drop_off(factory: Factory, org: Org, site: str, customer: dict[str, Any]) -> dict[str, Any]:
    issued = _issue(factory, org, customer, "RMA-7")
    assert issued.status_code == 201, issued.text
    dropped = factory.client.post(
        f"/v1/sites/{site}/returns",
        json={"code": issued.json()["code"]},
        headers=factory.kiosk(site).headers,
    )
    assert dropped.status_code == 201, dropped.text
    return dropped.json()  # type: ignore[no-any-return]


def test_the_customer_gets_a_receipt_by_email_and_sms_in_their_language(
    factory: Factory, ctx: Context, smtp: tuple[Inbox, int], sms_gateway: tuple[Gateway, str]
) -> None:
    inbox, port = smtp
    gateway, base = sms_gateway
    configure(
        ctx,
        smtp_url=f"smtp://127.0.0.1:{port}",
        smtp_from="Lockers <no-reply@lockers.test>",
        sms_url=f"{base}/sms",
    )
    site = factory.site("SM", name="Praga Koneser")
    customer = {"email": "ola@example.com", "phone": "600 100 200", "language": "pl"}
    dropped = _drop_off(factory, factory.org(), site, customer)

    assert dispatch(ctx) == 1
    [email] = inbox.received
    assert email["To"] == "ola@example.com"
    assert email["Subject"] == "Potwierdzenie: zwrot RMA-7 nadany w automacie Praga Koneser"
    assert email["Content-Language"] == "pl"
    text = email.get_body(("plain",))
    html = email.get_body(("html",))
    assert text is not None and html is not None
    body = " ".join(text.get_content().split())
    label = dropped["compartment"]["label"]
    assert (
        f"Twój zwrot RMA-7 został nadany w automacie Praga Koneser dnia 5 stycznia 2026, 09:00,"
        f" w skrytce {label}." in body
    )
    assert f"Numer potwierdzenia: {dropped['return_id']}" in body
    assert "Test street 1" in body
    assert "Mamy Twój zwrot" in html.get_content()
    # A receipt opens nothing: no PIN, no QR code, no link.
    assert not [part for part in email.walk() if part.get_content_type() == "image/png"]
    assert "/p/" not in text.get_content() and "PIN" not in text.get_content()

    [sms] = gateway.posts
    assert sms["body"]["to"] == "+48600100200"
    assert sms["body"]["text"] == (
        f"Zwrot RMA-7 nadany w automacie Praga Koneser, Test street 1 dnia 5 stycznia 2026,"
        f" 09:00 (skrytka {label}). Zachowaj tę wiadomość jako potwierdzenie."
    )
    row = outbox_row(ctx, dropped["parcel_id"], "recipient.return_receipt")
    assert row[1] == "sent"
    assert dispatch(ctx) == 0  # sent once
    assert "return.dropped_off" in events(ctx)


def test_a_receipt_leaves_even_when_the_courier_was_quicker(
    factory: Factory, ctx: Context, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    configure(ctx, smtp_url=f"smtp://127.0.0.1:{port}")
    site = factory.site("M")
    carrier = factory.org()
    dropped = _drop_off(factory, carrier, site, {"email": "ola@example.com"})
    scanned = factory.client.post(
        f"/v1/sites/{site}/collection/{dropped['parcel_id']}", headers=carrier.headers
    )
    assert scanned.json()["status"] == "collected"

    assert dispatch(ctx) == 1
    [email] = inbox.received
    assert email["Subject"].startswith("Receipt: return RMA-7 dropped off at ")
    text = email.get_body(("plain",))
    assert text is not None
    assert "Your return RMA-7 was dropped off at" in " ".join(text.get_content().split())


def test_without_email_or_phone_no_receipt_is_queued(factory: Factory, ctx: Context) -> None:
    site = factory.site("M")
    _drop_off(factory, factory.org(), site, {"name": "Ola"})
    assert outbox(ctx, "recipient.return_receipt") == []
    assert outbox(ctx, "webhook.carrier")  # the organization still hears of it


def test_a_bad_email_or_phone_is_refused_naming_the_field(factory: Factory) -> None:
    carrier = factory.org()
    for customer, field in (
        ({"phone": "12"}, "phone"),
        ({"email": "not-an-address"}, "email"),
    ):
        refused = _issue(factory, carrier, customer, f"RMA-{field}")
        assert refused.status_code == 422, refused.text
        assert any(
            error["loc"][-2:] == ["customer", field] for error in refused.json()["errors"]
        ), refused.json()


def test_the_demo_mailbox_shows_the_receipt(ctx: Context) -> None:
    configure(ctx, mailbox=True)
    with TestClient(create_app(ctx, run_jobs=False)) as client:
        factory = Factory(ctx, client)
        site = factory.site("M", name="Mokotów Galeria")
        dropped = _drop_off(factory, factory.org(), site, {"email": "ola@example.com"})
        assert dispatch(ctx) == 1
        inbox = client.get("/demo/mailbox")
        assert "Receipt: return RMA-7 dropped off at Mokotów Galeria" in inbox.text
        [page] = re.findall(r'href="(/demo/mailbox/\d+)"', inbox.text)
        frame = re.search(r'<iframe src="([^"]+)"', client.get(page).text)
        assert frame is not None
        html = client.get(frame.group(1)).text
        assert "We have your return" in html and dropped["return_id"] in html
