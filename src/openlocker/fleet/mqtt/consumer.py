"""The fleet consumer: one per network, inside ``openlocker serve``.

Every server process runs ``FleetConsumer.run()``; only the one holding the leader lock
consumes (PostgreSQL: a session advisory lock on a connection of its own, which also
``LISTEN``s for commands queued by the other processes; SQLite: a file lock in the data
folder). It alone connects to the broker, under one client id with a persistent session, so
the broker queues what kiosks send while it restarts, and a second process that wrongly
believed itself leader would only push the first off the broker. When the leader stops or
loses its database connection, another process takes over within
``fleet_leader_retry_seconds``.

The leader subscribes to every site's answers, presence, heartbeat and state, writes what
it heard every ``fleet_flush_seconds`` (``service.record_heard``), publishes door commands
from the outbox when woken or every ``fleet_poll_seconds`` (``service.due_commands``), and
marks kiosks silent (``service.mark_silent``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import psycopg
from sqlalchemy.exc import OperationalError

from openlocker.core.context import Context
from openlocker.core.mqtt import QOS, Broker, Refused, Topics, encode, parse
from openlocker.fleet.mqtt import service
from openlocker.fleet.mqtt.service import NOTIFY_CHANNEL, Heard

log = logging.getLogger("openlocker.fleet")

#: The advisory lock key the leader holds (any fixed 64-bit number; this one spells "fleet").
LEADER_KEY = 0x666C656574
LOCK_FILE = "fleet-consumer.lock"
#: Subscribed channels: everything a kiosk sends.
HEARD = ("answers", "presence", "heartbeat", "state")
#: Messages held for the next flush at most; past it the oldest heartbeats are the loss.
MAX_BUFFER = 20_000
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0


class FleetConsumer:
    """Consumes the fleet channel when this process is the leader; see the module doc."""

    def __init__(self, ctx: Context, broker: Broker | None = None) -> None:
        settings = ctx.settings
        if broker is None:
            if not settings.mqtt_url:
                raise ValueError("the fleet consumer needs OPENLOCKER_MQTT_URL")
            broker = Broker.from_url(settings.mqtt_url)
        self.ctx = ctx
        self.broker = broker
        self.topics = Topics(settings.mqtt_topic_root)
        self.leading = False
        self.connected = False
        self._client: aiomqtt.Client | None = None
        self._buffer: list[Heard] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._full: asyncio.Event | None = None

    def wake(self) -> None:
        """Look for commands to publish now (callable from any thread)."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        """Lead whenever this process can, until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._wake, self._full = asyncio.Event(), asyncio.Event()
        retry = self.ctx.settings.fleet_leader_retry_seconds
        while True:
            try:
                async with self._leadership() as lease:
                    log.info("fleet consumer leading", extra={"client_id": self.client_id})
                    await self._lead(lease)
            except (psycopg.Error, OSError) as error:
                log.warning("fleet leadership lost", extra={"error": str(error)[:200]})
            except Exception:  # a bug or a database gone: lead again later, not never
                log.exception("fleet consumer failed")
            await asyncio.sleep(retry)

    @property
    def client_id(self) -> str:
        return self.ctx.settings.mqtt_client_id

    @contextlib.asynccontextmanager
    async def _leadership(self) -> AsyncIterator[asyncio.Future[Any]]:
        """Held while this process leads; yields what completes when the lease is lost."""
        if self.ctx.db.engine.dialect.name == "postgresql":
            async with self._pg_leadership() as lease:
                yield lease
        else:
            async with self._file_leadership() as lease:
                yield lease

    @contextlib.asynccontextmanager
    async def _pg_leadership(self) -> AsyncIterator[asyncio.Future[Any]]:
        url = self.ctx.db.engine.url.set(drivername="postgresql").render_as_string(False)
        retry = self.ctx.settings.fleet_leader_retry_seconds
        while True:
            connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
            row = await (
                await connection.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_KEY,))
            ).fetchone()
            if row is not None and row[0]:
                break
            await connection.close()
            await asyncio.sleep(retry)
        try:
            await connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
            listening = asyncio.ensure_future(self._listen(connection))
            try:
                yield listening
            finally:
                listening.cancel()
                with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
                    await listening
        finally:
            # Closing the session releases the lock.
            with contextlib.suppress(psycopg.Error):
                await connection.close()

    async def _listen(self, connection: psycopg.AsyncConnection[Any]) -> None:
        """Wake the publisher on each ``NOTIFY``; returns (by raising) when the connection, and
        with it the lock, is gone."""
        assert self._wake is not None
        while True:
            async for _ in connection.notifies(timeout=5.0):
                self._wake.set()
            await connection.execute("SELECT 1")

    @contextlib.asynccontextmanager
    async def _file_leadership(self) -> AsyncIterator[asyncio.Future[Any]]:
        folder = self.ctx.settings.data_folder
        folder.mkdir(parents=True, exist_ok=True)
        path: Path = folder / LOCK_FILE
        retry = self.ctx.settings.fleet_leader_retry_seconds
        with path.open("a") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(retry)
            try:
                # A file lock is not lost while the process lives.
                yield asyncio.get_running_loop().create_future()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    async def _lead(self, lease: asyncio.Future[Any]) -> None:
        self.leading = True
        jobs = [
            asyncio.ensure_future(job)
            for job in (self._connection(), self._flusher(), self._publisher(), self._watch())
        ]
        try:
            done, _ = await asyncio.wait([lease, *jobs], return_when=asyncio.FIRST_COMPLETED)
            for finished in done:
                finished.result()
        finally:
            for job in jobs:
                job.cancel()
            for job in jobs:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await job
            self.leading = False
            # What was heard and not yet written is written; the broker has acknowledged it.
            with contextlib.suppress(Exception):
                await self._flush()

    async def _connection(self) -> None:
        """Stay connected and take every message heard; reconnect with jittered backoff."""
        assert self._wake is not None
        delay = BACKOFF_MIN
        while True:
            try:
                async with aiomqtt.Client(
                    **self.broker.client_options(),
                    identifier=self.client_id,
                    clean_session=False,
                    protocol=aiomqtt.ProtocolVersion.V311,
                    timeout=10,
                ) as client:
                    await client.subscribe([(self.topics.every(c), QOS) for c in HEARD])
                    self._client, self.connected, delay = client, True, BACKOFF_MIN
                    log.info("fleet broker connected", extra={"host": self.broker.host})
                    self._wake.set()  # commands queued while away go out now
                    async for message in client.messages:
                        self._take(message)
            except aiomqtt.MqttError as error:
                log.warning("fleet broker unreachable", extra={"error": str(error)[:200]})
            finally:
                self._client, self.connected = None, False
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, BACKOFF_MAX)

    def _take(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        where = self.topics.site_and_channel(topic)
        if where is None or where[1] not in HEARD:
            log.warning("fleet message refused", extra={"reason": "unknown_topic", "topic": topic})
            return
        site_id, channel = where
        payload = message.payload if isinstance(message.payload, bytes) else b""
        if not payload:
            return  # a retained message being removed (an empty payload clears it)
        try:
            heard = parse(channel, site_id, payload)
        except Refused as refused:
            log.warning(
                "fleet message refused",
                extra={
                    "reason": refused.reason,
                    "detail": refused.detail,
                    "site_id": site_id,
                    "channel": channel,
                    "retained": bool(message.retain),
                },
            )
            return
        self._buffer.append(Heard(site_id, heard, self.ctx.clock(), bool(message.retain)))
        if len(self._buffer) > MAX_BUFFER:
            del self._buffer[: len(self._buffer) - MAX_BUFFER]
            log.error("fleet buffer full: oldest messages dropped")
        if len(self._buffer) >= 1000 and self._full is not None:
            self._full.set()

    async def _flusher(self) -> None:
        assert self._full is not None
        interval = self.ctx.settings.fleet_flush_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), interval)
            self._full.clear()
            await self._flush()

    async def _flush(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        try:
            recorded = await asyncio.to_thread(service.record_heard, self.ctx, batch)
        except OperationalError:
            # The database is away: keep the batch for the next flush.
            log.warning("fleet batch not recorded: database unavailable", exc_info=True)
            self._buffer[:0] = batch[-MAX_BUFFER:]
            return
        except Exception:
            log.exception("fleet batch not recorded", extra={"messages": len(batch)})
            return
        if recorded.answered:
            log.info("fleet answers recorded", extra={"commands": recorded.answered})

    async def _publisher(self) -> None:
        assert self._wake is not None
        poll = self.ctx.settings.fleet_poll_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll)
            self._wake.clear()
            client = self._client
            if client is None:
                continue
            try:
                due = await asyncio.to_thread(service.due_commands, self.ctx)
            except Exception:
                log.exception("fleet commands not read")
                continue
            sent = await asyncio.gather(
                *(
                    client.publish(
                        self.topics.of(d.command.site_id, "commands"), encode(d.command), qos=QOS
                    )
                    for d in due
                ),
                return_exceptions=True,
            )
            published = []
            for item, outcome in zip(due, sent, strict=True):
                if isinstance(outcome, BaseException):
                    log.warning(
                        "fleet command not published",
                        extra={"command_id": item.command.message_id, "error": str(outcome)},
                    )
                else:
                    published.append(item.command)
            if published:
                log.info(
                    "fleet commands published",
                    extra={"commands": [c.message_id for c in published]},
                )
                try:
                    await asyncio.to_thread(service.record_published, self.ctx, published)
                except Exception:  # published again later: the kiosk drops the repeat
                    log.exception("fleet publishing not recorded")

    async def _watch(self) -> None:
        """Mark silent kiosks and skip expired commands, a few times per
        ``fleet_silence_seconds``."""
        interval = min(10.0, max(0.5, self.ctx.settings.fleet_silence_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                silent = await asyncio.to_thread(service.mark_silent, self.ctx)
                expired = await asyncio.to_thread(service.expire_commands, self.ctx)
            except Exception:
                log.exception("fleet silence check failed")
                continue
            if silent:
                log.warning("kiosks silent", extra={"sites": silent})
            if expired:
                log.info("fleet commands expired unanswered", extra={"commands": expired})
