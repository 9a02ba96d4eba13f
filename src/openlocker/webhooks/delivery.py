"""The webhook job: fan out, claim due deliveries, send them signed, record each outcome.

Deliveries follow the Standard Webhooks specification: a JSON body, and the headers
``webhook-id`` (the delivery's id, the same on every attempt), ``webhook-timestamp`` (unix
seconds of the attempt) and ``webhook-signature`` (``v1,`` and the base64 HMAC-SHA256 of
``id.timestamp.body`` under the endpoint's secret; during a rotation's overlap one such
signature per secret, space-separated). A 2xx answer delivers; anything else, or none
within ``webhooks_timeout_seconds``, is retried on ``service.SCHEDULE``.

Sends run concurrently on the event loop, at most ``webhooks_concurrency`` per process and
``webhooks_per_endpoint`` to one endpoint, so a slow endpoint uses its own few slots and
no other's. The database work runs in worker threads. Delivery is at least once: a process
that dies between sending and recording lets its lease run out, and the delivery is sent
again with the same ``webhook-id``, by which receivers recognise a repeat.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import ssl
import time
from datetime import datetime

import anyio.to_thread
import httpx

from openlocker import __version__
from openlocker.core.config import Settings
from openlocker.core.context import Context
from openlocker.core.errors import InvalidInput
from openlocker.webhooks.service import (
    SECRET_PREFIX,
    Claimed,
    Outcome,
    claim_due,
    fan_out,
    record_outcome,
)
from openlocker.webhooks.urls import AddressRefused, Target, check_url, resolve

log = logging.getLogger("openlocker.webhooks")
_MAX_ERROR = 500


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """One ``webhook-signature`` entry: ``v1,`` and the base64 HMAC-SHA256 of
    ``id.timestamp.body`` under the secret's bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class Sender:
    """Makes one attempt: resolves and checks the endpoint's host, connects to the checked
    address (TLS still verified against the host's name), posts the signed body.

    ``verify`` is the trust store for https (tests pass their own authority).
    """

    def __init__(self, settings: Settings, *, verify: ssl.SSLContext | bool = True) -> None:
        self._settings = settings
        self._verify = verify
        # One client per host name: a pooled TLS connection is never reused for another name
        # that happens to share its address.
        self._clients: dict[str, httpx.AsyncClient] = {}

    def _client(self, host: str) -> httpx.AsyncClient:
        client = self._clients.get(host)
        if client is None:
            client = self._clients[host] = httpx.AsyncClient(
                verify=self._verify,
                follow_redirects=False,
                # No proxy from the environment: it would connect to an address not checked.
                trust_env=False,
                timeout=self._settings.webhooks_timeout_seconds,
            )
        return client

    async def attempt(self, claimed: Claimed, at: datetime) -> Outcome:
        """Send ``claimed`` once; never raises for what the endpoint or the network does."""
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        timeout = self._settings.webhooks_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                status_code = await self._post(claimed, at)
        except TimeoutError:
            error = f"no answer within {timeout:g} s"
        except (AddressRefused, InvalidInput) as exc:  # where it points, or its form, is refused
            error = str(exc)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        duration_ms = round((time.monotonic() - started) * 1000)
        return Outcome(at, duration_ms, status_code, error[:_MAX_ERROR] if error else None)

    async def _post(self, claimed: Claimed, at: datetime) -> int:
        allow_private = self._settings.webhooks_allow_private
        target = await resolve(
            check_url(claimed.url, allow_private=allow_private), allow_private=allow_private
        )
        timestamp = int(at.timestamp())
        signatures = " ".join(
            sign(secret, claimed.delivery_id, timestamp, claimed.body) for secret in claimed.secrets
        )
        host = target.url.hostname
        assert host is not None
        async with self._client(host).stream(
            "POST",
            _pinned_url(target),
            content=claimed.body.encode(),
            headers={
                "host": target.url.netloc,
                "content-type": "application/json",
                "user-agent": f"OpenLocker-Webhooks/{__version__}",
                "webhook-id": claimed.delivery_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signatures,
            },
            extensions={"sni_hostname": host} if target.url.scheme == "https" else {},
        ) as response:
            # The answer's body is not read: only its status counts.
            return response.status_code

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def _pinned_url(target: Target) -> str:
    """The endpoint's URL with the checked address in place of its host name."""
    address = f"[{target.address}]" if ":" in target.address else target.address
    return target.url._replace(netloc=f"{address}:{target.port}").geturl()


class Dispatcher:
    """One process's webhook job: ``step`` fans out and starts the due sends; ``run`` steps
    every ``webhooks_interval_seconds`` until stopped."""

    def __init__(self, ctx: Context, sender: Sender | None = None) -> None:
        self.ctx = ctx
        self.sender = sender or Sender(ctx.settings)
        self._in_flight: dict[str, int] = {}
        self._tasks: set[asyncio.Task[str]] = set()
        self._freed = asyncio.Event()

    async def step(self) -> list[asyncio.Task[str]]:
        """Fan out new messages, then start sending what is due and fits the bounds; returns
        the sends started (they finish on their own)."""
        settings = self.ctx.settings
        await anyio.to_thread.run_sync(fan_out, self.ctx)
        room = settings.webhooks_concurrency - len(self._tasks)
        if room <= 0:
            return []
        claimed = await anyio.to_thread.run_sync(
            lambda: claim_due(
                self.ctx,
                limit=room,
                per_endpoint=settings.webhooks_per_endpoint,
                in_flight=dict(self._in_flight),
            )
        )
        return [self._start(held) for held in claimed]

    async def run_once(self) -> list[str]:
        """One step, waiting for its sends; returns their deliveries' states (for tests and
        one-off runs)."""
        return list(await asyncio.gather(*await self.step()))

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Step until ``stop`` is set or the task is cancelled; a failed step is logged."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            started: list[asyncio.Task[str]] = []
            try:
                started = await self.step()
            except Exception:
                log.exception("webhook step failed")
            if not started:
                await self._idle(stop)

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for the next step: the interval, or less when a send frees its slot (a fast
        endpoint with a backlog is not held to its bound per interval)."""
        waits = [asyncio.ensure_future(self._freed.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(
            waits,
            timeout=self.ctx.settings.webhooks_interval_seconds,
            return_when=asyncio.FIRST_COMPLETED,
        )
        for wait in waits:
            wait.cancel()
        self._freed.clear()

    def _start(self, claimed: Claimed) -> asyncio.Task[str]:
        endpoint = claimed.endpoint_id
        self._in_flight[endpoint] = self._in_flight.get(endpoint, 0) + 1
        task = asyncio.create_task(self._deliver(claimed))
        self._tasks.add(task)

        def done(_: asyncio.Task[str]) -> None:
            self._tasks.discard(task)
            self._in_flight[endpoint] -= 1
            if not self._in_flight[endpoint]:
                del self._in_flight[endpoint]
            self._freed.set()

        task.add_done_callback(done)
        return task

    async def _deliver(self, claimed: Claimed) -> str:
        outcome = await self.sender.attempt(claimed, self.ctx.clock())
        try:
            state = await anyio.to_thread.run_sync(record_outcome, self.ctx, claimed, outcome)
        except Exception:
            # The lease runs out and the delivery is sent again: at least once, never lost.
            log.exception(
                "webhook outcome not recorded", extra={"delivery_id": claimed.delivery_id}
            )
            raise
        if not outcome.delivered:
            log.info(
                "webhook attempt failed",
                extra={
                    "delivery_id": claimed.delivery_id,
                    "endpoint_id": claimed.endpoint_id,
                    "status_code": outcome.status_code,
                    "error": outcome.error,
                    "state": state,
                },
            )
        return state

    async def aclose(self) -> None:
        """Stop the sends in flight (their leases run out and they are sent again) and close
        the connections."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.sender.aclose()


async def run_webhooks(ctx: Context, stop: asyncio.Event | None = None) -> None:
    """Deliver webhooks until cancelled or ``stop`` is set: the job ``openlocker serve`` runs
    in every process, and what a worker process runs to deliver them alone."""
    dispatcher = Dispatcher(ctx)
    try:
        await dispatcher.run(stop)
    finally:
        await dispatcher.aclose()
