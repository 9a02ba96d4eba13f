"""Recipients' emails through a real SMTP server: delivery, retries, dead letters."""

from __future__ import annotations

import io
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zxingcpp
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from PIL import Image

from openlocker.access.credentials import read_qr
from openlocker.core.clock import FrozenClock
from openlocker.core.context import Context
from openlocker.core.sql import Tx
from openlocker.notify.messages import QR_CID
from tests.factories import Factory
from tests.notify.conftest import (
    Inbox,
    configure,
    deposit_for_recipient,
    dispatch,
    outbox_row,
)
from tests.servers import _free_port


def _attempts(ctx: Context, outbox_id: str) -> list[tuple[str, str, str | None]]:
    with ctx.db.sql.transaction(write=False) as tx:
        return [
            (c, o, e)
            for c, o, e in tx.all(
                "SELECT channel, outcome, error FROM delivery_attempts WHERE outbox_id = :id"
                " ORDER BY seq",
                {"id": outbox_id},
            )
        ]


def test_a_deposit_emails_the_recipient_pin_link_and_qr(
    factory: Factory, ctx: Context, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    configure(ctx, smtp_url=f"smtp://127.0.0.1:{port}", smtp_from="Lockers <no-reply@lockers.test>")
    carrier = factory.org()
    site = factory.site("SM", name="Praga Koneser")
    parcel = deposit_for_recipient(factory, carrier, site, phone=None, language="pl")
    assert "pickup" not in parcel

    assert dispatch(ctx) == 1
    [email] = inbox.received
    outbox_id = outbox_row(ctx, parcel["id"])[0]
    assert email["Message-ID"] == f"<{outbox_id}@lockers.test>"
    assert email["To"] == "anna@example.com"
    assert email["Date"].datetime == datetime(2026, 1, 5, 9, tzinfo=UTC)  # the dispatcher's clock
    assert email["Content-Language"] == "pl"
    assert (
        email["Subject"]
        == f"Twoja paczka {parcel['tracking_number']} czeka w automacie Praga Koneser"
    )
    text = email.get_body(("plain",))
    html = email.get_body(("html",))
    assert text is not None and html is not None
    [qr] = [part for part in email.walk() if part.get_content_type() == "image/png"]
    assert qr["Content-ID"] == f"<{QR_CID}>"
    # The picture is the parcel's QR token, as a phone or the locker's camera reads it.
    shown = zxingcpp.read_barcode(Image.open(io.BytesIO(qr.get_content())))
    assert shown is not None and read_qr(shown.text).parcel_id == parcel["id"]
    assert f"cid:{QR_CID}" in html.get_content()
    # The PIN and the link are in the text part; they open the compartment.
    body = text.get_content()
    pin = next(word for word in body.split() if word.isdigit() and len(word) == 8)
    link = next(word for word in body.split() if word.startswith("https://lockers.test/p/"))
    assert link in html.get_content()
    state = outbox_row(ctx, parcel["id"])
    assert state[1] == "sent" and state[2] == 1
    assert _attempts(ctx, outbox_id) == [("email", "sent", None)]
    pickup = factory.client.post(
        f"/v1/sites/{site}/pickups", json={"pin": pin}, headers=factory.kiosk(site).headers
    )
    assert pickup.status_code == 200, pickup.text
    assert dispatch(ctx) == 0  # sent once, never again


def test_a_server_that_is_down_loses_nothing(
    factory: Factory, ctx: Context, clock: FrozenClock, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    configure(ctx, smtp_url=f"smtp://127.0.0.1:{_free_port()}", notify_backoff_seconds=10)
    carrier = factory.org()
    site = factory.site("S")
    parcel = deposit_for_recipient(factory, carrier, site, phone=None)

    assert dispatch(ctx) == 1
    outbox_id, state, attempts, error, available_at, _ = outbox_row(ctx, parcel["id"])
    assert (state, attempts) == ("pending", 1)
    assert "Connect" in error or "refused" in error.lower()
    due = Tx.time(available_at)
    assert due is not None
    assert clock.now + timedelta(seconds=5) <= due <= clock.now + timedelta(seconds=10)
    assert dispatch(ctx) == 0  # waits for its backoff (5 to 10 s)
    clock.advance(seconds=10)
    configure(ctx, smtp_url=f"smtp://127.0.0.1:{port}")
    assert dispatch(ctx) == 1
    assert len(inbox.received) == 1
    assert outbox_row(ctx, parcel["id"])[1:3] == ("sent", 2)
    assert [o for _, o, _ in _attempts(ctx, outbox_id)] == ["retry", "sent"]


def test_4xx_is_retried_and_5xx_is_dead_then_an_operator_retries(
    factory: Factory, ctx: Context, clock: FrozenClock, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    configure(ctx, smtp_url=f"smtp://127.0.0.1:{port}", notify_backoff_seconds=1)
    carrier = factory.org()
    site = factory.site("S")
    parcel = deposit_for_recipient(factory, carrier, site, phone=None)

    inbox.reply = "451 4.3.0 Try again later"
    assert dispatch(ctx) == 1
    assert outbox_row(ctx, parcel["id"])[1] == "pending"
    clock.advance(seconds=2)
    inbox.reply = "550 5.1.1 No such mailbox"
    assert dispatch(ctx) == 1
    outbox_id, state, attempts, error, _, _ = outbox_row(ctx, parcel["id"])
    assert (state, attempts) == ("dead", 2)
    assert "550" in error
    clock.advance(hours=1)
    assert dispatch(ctx) == 0  # dead stays dead
    assert inbox.received == []

    operator = factory.operator()
    dead = factory.client.get("/v1/outbox", params={"state": "dead"}, headers=operator.headers)
    assert [m["id"] for m in dead.json()["items"]] == [outbox_id]
    one = factory.client.get(f"/v1/outbox/{outbox_id}", headers=operator.headers).json()
    assert [d["outcome"] for d in one["deliveries"]] == ["retry", "failed"]
    assert "sealed" not in one
    retried = factory.client.post(f"/v1/outbox/{outbox_id}/retry", headers=operator.headers)
    assert retried.status_code == 200 and retried.json()["state"] == "pending"
    again = factory.client.post(f"/v1/outbox/{outbox_id}/retry", headers=operator.headers)
    assert again.status_code == 409 and again.json()["code"] == "not_dead"
    inbox.reply = None
    assert dispatch(ctx) == 1
    assert len(inbox.received) == 1
    assert outbox_row(ctx, parcel["id"])[1] == "sent"
    names = [
        e["name"]
        for e in factory.client.get(
            "/v1/events", params={"parcel_id": parcel["id"]}, headers=operator.headers
        ).json()["items"]
    ]
    assert names[-3:] == ["notification.dead", "notification.retried", "notification.sent"]


def test_temporary_failures_end_dead_after_the_policy(
    factory: Factory, ctx: Context, clock: FrozenClock, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    configure(
        ctx, smtp_url=f"smtp://127.0.0.1:{port}", notify_max_attempts=3, notify_backoff_seconds=1
    )
    inbox.reply = "421 4.7.0 Busy"
    parcel = deposit_for_recipient(factory, factory.org(), factory.site("S"), phone=None)
    for _ in range(3):
        assert dispatch(ctx) == 1
        clock.advance(seconds=10)
    assert outbox_row(ctx, parcel["id"])[1:3] == ("dead", 3)
    assert dispatch(ctx) == 0


def test_operator_routes_need_admin_and_refuse_bad_input(
    factory: Factory, client: TestClient
) -> None:
    carrier = factory.org()
    assert client.get("/v1/outbox", headers=carrier.headers).json()["code"] == "missing_scope"
    operator = factory.operator()
    bad = client.get("/v1/outbox", params={"state": "lost"}, headers=operator.headers)
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_input"
    cursor = client.get("/v1/outbox", params={"cursor": "x"}, headers=operator.headers)
    assert cursor.json()["code"] == "invalid_cursor"
    missing = client.post("/v1/outbox/obx_nope/retry", headers=operator.headers)
    assert missing.status_code == 404 and missing.json()["code"] == "message_not_found"


@pytest.fixture
def tls_context(tmp_path: Path) -> ssl.SSLContext:
    """A server context with a self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


def _login(
    server: object, session: object, envelope: object, mechanism: str, data: LoginPassword
) -> AuthResult:
    return AuthResult(success=(data.login, data.password) == (b"lockers", b"s3cret"))


def test_starttls_and_implicit_tls_with_a_login_deliver(
    factory: Factory, ctx: Context, tls_context: ssl.SSLContext
) -> None:
    inbox = Inbox()
    starttls_port, tls_port = _free_port(), _free_port()
    servers = [
        # STARTTLS is required before MAIL, and the login only after it.
        Controller(
            inbox,
            hostname="127.0.0.1",
            port=starttls_port,
            tls_context=tls_context,
            require_starttls=True,
            authenticator=_login,
        ),
        # Implicit TLS: the connection is TLS from its first byte.
        Controller(
            inbox,
            hostname="127.0.0.1",
            port=tls_port,
            ssl_context=tls_context,
            authenticator=_login,
            auth_require_tls=False,
        ),
    ]
    for server in servers:
        server.start()
    try:
        site = factory.site("SSS")
        carrier = factory.org()
        for url in (
            f"smtp://lockers:s3cret@127.0.0.1:{starttls_port}?starttls=1&verify=0",
            f"smtps://lockers:s3cret@127.0.0.1:{tls_port}?verify=0",
        ):
            configure(ctx, smtp_url=url)
            parcel = deposit_for_recipient(factory, carrier, site, phone=None)
            assert dispatch(ctx) == 1
            assert outbox_row(ctx, parcel["id"])[1] == "sent", url
        assert len(inbox.received) == 2
        # A certificate nobody vouches for is refused (and retried), unless verify=0.
        configure(ctx, smtp_url=f"smtps://lockers:s3cret@127.0.0.1:{tls_port}")
        parcel = deposit_for_recipient(factory, carrier, site, phone=None)
        assert dispatch(ctx) == 1
        state, error = outbox_row(ctx, parcel["id"])[1:4:2]
        assert state == "pending" and "CERTIFICATE_VERIFY_FAILED" in error
    finally:
        for server in servers:
            server.stop()
