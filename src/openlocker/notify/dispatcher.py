"""The dispatcher: takes recipients' messages from the outbox and delivers them.

It looks for due messages at once again after a batch that held any, and after
``notify_poll_seconds`` (0.2 s) when there were none, so a message waits for at most the
batch under way and a poll. A batch is claimed and composed in a
worker thread (the database and the QR codes are blocking work), its messages are sent
concurrently over the configured channels, and the outcomes are recorded in one
transaction.

How close to exactly once: a claimed message is ``sending`` under a lease. If the dispatcher
dies before recording the outcome, the lease runs out and another dispatcher takes the
message; a channel that can tell (the demo's mailbox) is asked whether it arrived, and one
that cannot (SMTP, SMS) is not sent to again: the attempt is recorded as ``unknown`` and the
message goes ``dead`` for an operator to retry. So no message reaches a recipient twice
through a crash, and none is lost silently; what a crash between sending and recording
costs is a message an operator looks at. Emails carry a ``Message-ID`` derived from the
outbox id, the same on every attempt, so a duplicate an operator's retry might cause is
recognisable (docs/notifications.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from datetime import datetime

from openlocker.core.context import Context
from openlocker.notify.messages import (
    Notice,
    compose_email,
    compose_sms,
    sender_domain,
    warm_up,
)
from openlocker.notify.service import (
    Attempt,
    Claim,
    claim_due,
    do_record_results,
    do_release,
    queue_notices,
    scrub,
)
from openlocker.notify.transports import (
    Channel,
    Outgoing,
    PermanentFailure,
    TemporaryFailure,
    Transport,
    transports_from_settings,
)

log = logging.getLogger("openlocker.notify")
#: For the crash test only: the process exits right after a channel accepted a message,
#: before the outcome is recorded (tests/notify/test_crash.py).
EXIT_AFTER_SEND = "OPENLOCKER_NOTIFY_EXIT_AFTER_SEND"
UNKNOWN = (
    "a dispatcher stopped while sending this message; it is not sent again so that the"
    " recipient never gets it twice: retry it if it did not arrive"
)

Composed = tuple[dict[Channel, Outgoing], tuple[str, ...]]


class Dispatcher:
    """Delivers the due messages of ``TOPICS`` over ``transports`` (by channel)."""

    def __init__(self, ctx: Context, transports: dict[Channel, Transport]) -> None:
        self.ctx = ctx
        self.transports = transports
        self.sender = ctx.settings.smtp_from
        self.domain = sender_domain(self.sender)
        self._limit = asyncio.Semaphore(ctx.settings.notify_concurrency)
        self._exit_after_send = os.environ.get(EXIT_AFTER_SEND) == "1"

    async def run(self) -> None:
        """Dispatch until cancelled; a batch under way is finished first (bounded by the
        send timeout), so stopping a server does not leave messages ``sending``."""
        settings = self.ctx.settings
        try:
            await asyncio.to_thread(warm_up)
        except Exception:  # each message then fails on its own, visibly
            log.exception("warming up the message templates failed")
        try:
            while True:
                batch = asyncio.ensure_future(self.dispatch_once())
                try:
                    handled = await asyncio.shield(batch)
                except asyncio.CancelledError:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(batch, settings.notify_timeout_seconds + 5)
                    raise
                except Exception:
                    log.exception("dispatch failed")
                    handled = 0
                if handled == 0:
                    await asyncio.sleep(settings.notify_poll_seconds)
        finally:
            for transport in self.transports.values():
                with contextlib.suppress(Exception):
                    await transport.aclose()

    async def dispatch_once(self) -> int:
        """Claim, compose, send and record one batch; returns how many messages it held."""
        claims = await asyncio.to_thread(claim_due, self.ctx)
        if not claims:
            return 0
        try:
            composed = await asyncio.to_thread(self._compose_all, claims)
        except BaseException:
            await asyncio.to_thread(do_release, self.ctx, claims)
            raise
        results = await asyncio.gather(
            *(self._deliver(claim, ready) for claim, ready in zip(claims, composed, strict=True))
        )
        await asyncio.to_thread(do_record_results, self.ctx, results)
        return len(claims)

    def _compose_all(self, claims: Sequence[Claim]) -> list[Composed | Exception]:
        composed: list[Composed | Exception] = []
        for claim in claims:
            try:
                composed.append(self._compose(claim))
            except Exception as error:  # one message's bad data must not stop the batch
                composed.append(error)
        return composed

    def _compose(self, claim: Claim) -> Composed:
        payload = claim.payload
        deadline = payload.get("expires_at")
        dropped_off = payload.get("dropped_off_at")
        notice = Notice(
            outbox_id=claim.id,
            topic=claim.topic,
            # A return receipt names the return by the reference its customer knows.
            tracking_number=str(payload.get("tracking_number") or payload.get("reference") or ""),
            recipient=dict(payload.get("recipient") or {}),
            site=claim.site,
            deadline=datetime.fromisoformat(deadline) if deadline else None,
            credentials=claim.credentials,
            message_domain=self.domain,
            return_id=payload.get("return_id"),
            dropped_off_at=datetime.fromisoformat(dropped_off) if dropped_off else None,
            compartment=payload.get("compartment"),
        )
        secrets = claim.credentials.secrets if claim.credentials else ()
        ready: dict[Channel, Outgoing] = {}
        email = compose_email(notice, self.sender, at=self.ctx.clock())
        if email is not None:
            ready["email"] = Outgoing(claim.id, email.to, email.subject, email.message)
        sms = compose_sms(notice)
        if sms is not None:
            ready["sms"] = Outgoing(claim.id, str(notice.recipient["phone"]), None, sms)
        return ready, secrets

    async def _deliver(
        self, claim: Claim, ready: Composed | Exception
    ) -> tuple[Claim, list[Attempt]]:
        if isinstance(ready, Exception):
            log.error("message could not be composed", extra={"outbox_id": claim.id})
            return claim, [Attempt("message", "failed", f"not composed: {type(ready).__name__}")]
        outgoing, secrets = ready
        wanted = {ch: out for ch, out in outgoing.items() if ch not in claim.done}
        reachable = [ch for ch in wanted if ch in self.transports]
        attempts: list[Attempt] = []
        for channel in wanted:
            if channel not in self.transports:
                # Said once per attempt; the message waits only if no channel can carry it.
                outcome = "skipped" if reachable else "retry"
                attempts.append(Attempt(channel, outcome, f"no {channel} channel is configured"))
        sends = [self._send(claim, self.transports[ch], wanted[ch], secrets) for ch in reachable]
        attempts += await asyncio.gather(*sends)
        return claim, attempts

    async def _send(
        self, claim: Claim, transport: Transport, outgoing: Outgoing, secrets: tuple[str, ...]
    ) -> Attempt:
        channel = transport.channel
        if claim.recovered:
            delivered = await transport.delivered(claim.id)
            if delivered is None:
                return Attempt(channel, "unknown", UNKNOWN)
            if delivered:
                return Attempt(channel, "sent", "the channel had it before a dispatcher stopped")
        async with self._limit:
            try:
                await transport.send(outgoing)
            except TemporaryFailure as error:
                return Attempt(channel, "retry", scrub(str(error), secrets))
            except PermanentFailure as error:
                return Attempt(channel, "failed", scrub(str(error), secrets))
            except Exception as error:  # a transport's bug: retried, and its type logged
                log.error(
                    "transport failed", extra={"channel": channel, "error": type(error).__name__}
                )
                return Attempt(channel, "retry", f"unexpected {type(error).__name__}")
        if self._exit_after_send:
            os._exit(3)
        return Attempt(channel, "sent")


async def run_worker(ctx: Context) -> None:
    """``openlocker worker``: the dispatcher and the reminders job until SIGINT or SIGTERM."""
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    for stop in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(stop, main.cancel)
    notices = asyncio.create_task(_queue_notices_every(ctx))
    try:
        await Dispatcher(ctx, transports_from_settings(ctx)).run()
    except asyncio.CancelledError:
        pass
    finally:
        notices.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await notices


async def _queue_notices_every(ctx: Context) -> None:
    while True:
        try:
            await asyncio.to_thread(queue_notices, ctx)
        except Exception:
            log.exception("queueing notices failed")
        await asyncio.sleep(ctx.settings.notices_interval_seconds)
