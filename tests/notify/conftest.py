"""A real SMTP server (aiosmtpd) and a real HTTP server on 127.0.0.1, and a dispatcher run."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from openlocker.core.context import Context
from openlocker.notify.dispatcher import Dispatcher
from openlocker.notify.transports import transports_from_settings
from tests.factories import Factory, Org
from tests.servers import _free_port

RECIPIENT = {"name": "Anna", "email": "anna@example.com", "phone": "+48 600 100 200"}


@dataclass
class Inbox:
    """What the SMTP server took, and what it answers (``reply`` for RCPT: None is 250)."""

    received: list[EmailMessage] = field(default_factory=list)
    reply: str | None = None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.reply is not None:
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@dataclass
class Gateway:
    """An SMS gateway: records each POST and answers ``status`` with ``body``."""

    posts: list[dict[str, Any]] = field(default_factory=list)
    status: int = 201
    body: str = '{"status": "queued"}'


@pytest.fixture
def sms_gateway() -> Iterator[tuple[Gateway, str]]:
    gateway = Gateway()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"])).decode()
            if self.headers["Content-Type"].startswith("application/json"):
                body = json.loads(raw)
            else:
                body = {k: v[0] for k, v in parse_qs(raw).items()}
            gateway.posts.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(gateway.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(gateway.body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield gateway, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def configure(ctx: Context, **settings: Any) -> None:
    """Change the context's settings (the dispatcher reads them at each run)."""
    ctx.settings = ctx.settings.model_copy(update=settings)


def dispatch(ctx: Context) -> int:
    """One dispatcher batch over the configured channels, as the server's loop runs it."""

    async def once() -> int:
        transports = transports_from_settings(ctx)
        try:
            return await Dispatcher(ctx, transports).dispatch_once()
        finally:
            for transport in transports.values():
                await transport.aclose()

    return asyncio.run(once())


def deposit_for_recipient(
    factory: Factory, carrier: Org, site: str, **recipient: Any
) -> dict[str, Any]:
    """A deposited parcel whose recipient OpenLocker tells (no codes in the answer)."""
    return factory.deposited(
        carrier, site, notify="openlocker", recipient={**RECIPIENT, **recipient}
    )


def outbox_row(ctx: Context, parcel_id: str, topic: str = "recipient.pickup_ready") -> Any:
    with ctx.db.sql.transaction(write=False) as tx:
        return tx.one(
            "SELECT id, state, attempts, last_error, available_at, sealed FROM outbox"
            " WHERE parcel_id = :p AND topic = :t",
            {"p": parcel_id, "t": topic},
        )
