"""The channels a message leaves by: SMTP, an SMS gateway over HTTP, and the demo's mailbox.

A transport's ``send`` returns when the channel has accepted the message and raises
``TemporaryFailure`` (worth retrying: a server that is down, busy or answers 4xx) or
``PermanentFailure`` (5xx, a refused recipient: retrying will not help). ``delivered`` tells,
where the channel can, whether a message was accepted before a dispatcher crashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import httpx

from openlocker.core.context import Context
from openlocker.core.sql import insert_rows

Channel = Literal["email", "sms"]


class TemporaryFailure(Exception):
    """The channel did not take the message now; a later attempt may succeed."""


class PermanentFailure(Exception):
    """The channel refused the message; retrying the same message will not help."""


@dataclass(frozen=True)
class Outgoing:
    """One message for one channel, composed: ``body`` is MIME bytes or the SMS text."""

    outbox_id: str
    to: str
    subject: str | None
    body: bytes | str


class Transport(Protocol):
    channel: Channel

    async def send(self, outgoing: Outgoing) -> None: ...

    async def delivered(self, outbox_id: str) -> bool | None:
        """Whether the channel took this message already; ``None`` when it cannot tell."""
        ...

    async def aclose(self) -> None: ...


# --- SMTP ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpServer:
    """``smtp://[user:pass@]host[:port][?starttls=1]`` (port 25, or 587 with STARTTLS) or
    ``smtps://[user:pass@]host[:port]`` (implicit TLS, port 465); ``?verify=0`` accepts any
    certificate (a test server's)."""

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None
    verify: bool

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("OPENLOCKER_SMTP_URL is smtp://host[:port] or smtps://host[:port]")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        starttls = query.get("starttls", "0") in ("1", "true", "yes")
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 587 if starttls else 25),
            implicit_tls=implicit,
            starttls=starttls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            verify=query.get("verify", "1") not in ("0", "false", "no"),
        )


def _classify(error: Exception) -> Exception:
    """An SMTP error as a temporary or permanent failure (RFC 5321: 4xx or 5xx)."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        codes = [refusal.code for refusal in error.recipients]
        text = "; ".join(f"{r.code} {r.message}" for r in error.recipients)
        permanent = all(code >= 500 for code in codes)
        return (PermanentFailure if permanent else TemporaryFailure)(f"recipient refused: {text}")
    if isinstance(error, aiosmtplib.SMTPResponseException):
        kind = PermanentFailure if error.code >= 500 else TemporaryFailure
        return kind(f"{error.code} {error.message}")
    return TemporaryFailure(f"{type(error).__name__}: {error}")


class SmtpTransport:
    """Sends over a small pool of kept-open SMTP connections (one message at a time each),
    so a batch is not held up by one connection's round trips."""

    channel: Channel = "email"

    def __init__(self, url: str, sender: str, *, connections: int, timeout: float) -> None:
        self.server = SmtpServer.from_url(url)
        self.sender = sender
        self.timeout = timeout
        # Made once: loading the system's certificates costs tens of milliseconds.
        self._tls = (
            self._tls_context() if self.server.implicit_tls or self.server.starttls else None
        )
        self._idle: asyncio.Queue[aiosmtplib.SMTP | None] = asyncio.Queue()
        for _ in range(connections):
            self._idle.put_nowait(None)  # a slot; its connection opens when first used

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.server.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _client(self) -> aiosmtplib.SMTP:
        server = self.server
        return aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.implicit_tls,
            start_tls=server.starttls,
            validate_certs=server.verify,
            tls_context=self._tls,
            timeout=self.timeout,
        )

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[aiosmtplib.SMTP]:
        client = await self._idle.get()
        try:
            if client is None or not client.is_connected:
                client = self._client()
                await client.connect()
            yield client
        except BaseException:
            if client is not None and client.is_connected:
                client.close()
            client = None
            raise
        finally:
            self._idle.put_nowait(client)

    async def send(self, outgoing: Outgoing) -> None:
        assert isinstance(outgoing.body, bytes)
        try:
            async with self._connection() as client:
                await client.sendmail(self.sender, [outgoing.to], outgoing.body)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise _classify(error) from error

    async def delivered(self, outbox_id: str) -> bool | None:
        return None  # SMTP has no way to ask

    async def aclose(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client is not None and client.is_connected:
                with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                    await client.quit()


# --- SMS -----------------------------------------------------------------------------------


def sms_format(url: str, setting: str) -> Literal["twilio", "json"]:
    """``twilio`` for a Twilio-style ``…/Messages.json`` URL (or when set), else ``json``."""
    if setting in ("twilio", "json"):
        return setting  # type: ignore[return-value]
    return "twilio" if urlsplit(url).path.endswith("/Messages.json") else "json"


class SmsTransport:
    """POSTs each SMS to a gateway: Twilio's form (``To``, ``From``, ``Body``; the URL's user
    and password as basic auth) or JSON (``{"to", "from", "text", "reference"}``). The
    outbox id goes along as ``Idempotency-Key`` for gateways that drop repeats."""

    channel: Channel = "sms"

    def __init__(self, url: str, *, form: str, sender: str | None, timeout: float) -> None:
        parts = urlsplit(url)
        self.format = sms_format(url, form)
        self.sender = sender
        auth = (
            httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
            if parts.username
            else None
        )
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        self.url = parts._replace(netloc=netloc).geturl()
        self._client = httpx.AsyncClient(auth=auth, timeout=timeout)

    async def send(self, outgoing: Outgoing) -> None:
        text = str(outgoing.body)
        headers = {"Idempotency-Key": outgoing.outbox_id}
        try:
            if self.format == "twilio":
                form = {"To": outgoing.to, "Body": text}
                if self.sender:
                    form["From"] = self.sender
                response = await self._client.post(self.url, data=form, headers=headers)
            else:
                body = {"to": outgoing.to, "text": text, "reference": outgoing.outbox_id}
                if self.sender:
                    body["from"] = self.sender
                response = await self._client.post(self.url, json=body, headers=headers)
        except httpx.HTTPError as error:
            raise TemporaryFailure(f"{type(error).__name__}: {error}") from error
        if response.is_success:
            return
        reason = f"HTTP {response.status_code}: {response.text[:300]}"
        if response.status_code in (408, 409, 425, 429) or response.status_code >= 500:
            raise TemporaryFailure(reason)
        raise PermanentFailure(reason)

    async def delivered(self, outbox_id: str) -> bool | None:
        return None

    async def aclose(self) -> None:
        await self._client.aclose()


# --- the demo's mailbox --------------------------------------------------------------------


class MailboxTransport:
    """Keeps each message in ``mailbox_messages`` as its recipient would receive it. Storing
    is the channel, so it can always tell whether a message arrived: exactly once."""

    def __init__(self, ctx: Context, channel: Channel) -> None:
        self.ctx = ctx
        self.channel = channel

    async def send(self, outgoing: Outgoing) -> None:
        body = outgoing.body.decode() if isinstance(outgoing.body, bytes) else outgoing.body
        await asyncio.to_thread(self._store, outgoing, body, self.ctx.clock())

    def _store(self, outgoing: Outgoing, body: str, at: datetime) -> None:
        sql, params = insert_rows(
            "mailbox_messages",
            {"channel": self.channel, "at": at},
            [
                {
                    "outbox_id": outgoing.outbox_id,
                    "recipient": outgoing.to,
                    "subject": outgoing.subject,
                    "body": body,
                }
            ],
        )
        with self.ctx.db.sql.transaction() as tx:
            tx.execute(sql + " ON CONFLICT (outbox_id, channel) DO NOTHING", params)

    async def delivered(self, outbox_id: str) -> bool | None:
        return await asyncio.to_thread(self._has, outbox_id)

    def _has(self, outbox_id: str) -> bool:
        with self.ctx.db.sql.transaction(write=False) as tx:
            return (
                tx.one(
                    "SELECT 1 FROM mailbox_messages WHERE outbox_id = :id AND channel = :channel",
                    {"id": outbox_id, "channel": self.channel},
                )
                is not None
            )

    async def aclose(self) -> None:
        return None


def transports_from_settings(ctx: Context) -> dict[Channel, Transport]:
    """The configured channels: SMTP and the SMS gateway, else the mailbox when it is on."""
    settings = ctx.settings
    found: dict[Channel, Transport] = {}
    if settings.smtp_url:
        found["email"] = SmtpTransport(
            settings.smtp_url,
            settings.smtp_from,
            connections=settings.notify_concurrency,
            timeout=settings.notify_timeout_seconds,
        )
    elif settings.mailbox:
        found["email"] = MailboxTransport(ctx, "email")
    if settings.sms_url:
        found["sms"] = SmsTransport(
            settings.sms_url,
            form=settings.sms_format,
            sender=settings.sms_from,
            timeout=settings.notify_timeout_seconds,
        )
    elif settings.mailbox:
        found["sms"] = MailboxTransport(ctx, "sms")
    return found
