"""The kiosk's end of the MQTT fleet channel (``docs/fleet.md``).

``FleetClient`` keeps one connection to the broker (client id ``kiosk-{site_id}``, a
persistent session, QoS 1) and, on every connect, publishes the retained ``online``
presence (its last will is the retained ``offline``), the newest compartment snapshot and
any answer the broker had not acknowledged. It heartbeats every ``heartbeat_seconds`` and
hands each command to ``run_command`` (the agent's), then publishes the answer.

A lock is pulsed at most once per command: ``execute`` records the command's
``message_id`` in the ``CommandLog`` (durably) before it runs it, so a command delivered
again (QoS 1 after a broker restart, the server's retry, the HTTP sync carrying the same
row, the kiosk itself restarted) is answered from the log and not run again. Commands for
another site, past their ``expires_at``, or not matching the contract are refused with a
logged reason. Connection loss is retried with jittered exponential backoff.

``AgentFleet`` wires the kiosk agent to it (``openlocker kiosk --mqtt URL``): the agent's
``run_command`` takes the HTTP sync's command rows and runs each id once, and
``agent_commands`` hands it MQTT commands as those rows, so a command that comes both ways
pulses its lock once; ``sync`` wakes the agent's sync; the snapshot follows the agent's
reading of the locks. Without a broker, or cut off from it, the agent works by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import aiomqtt
import orjson

from openlocker import __version__
from openlocker.core.clock import Clock, system_clock
from openlocker.core.ids import new_id
from openlocker.core.mqtt import (
    QOS,
    Answer,
    Broker,
    Command,
    CompartmentState,
    Heartbeat,
    OpenCommand,
    Presence,
    Refused,
    StateSnapshot,
    SyncCommand,
    Topics,
    encode,
    parse,
)
from openlocker.kiosk.boards import LockState

if TYPE_CHECKING:
    from openlocker.kiosk.agent import Agent
    from openlocker.kiosk.config import KioskSettings

log = logging.getLogger("openlocker.kiosk.fleet")

BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0
#: How long a stopping kiosk waits for the broker to take its "shutdown" presence: a slow
#: link or a busy board needs more than a round trip, and a kiosk that could not say it is
#: only seen offline once it has been silent (``kiosk_silent``).
SHUTDOWN_SAY_SECONDS = 5.0


@dataclass(frozen=True)
class Outcome:
    """What ``run_command`` made of a command: ``opened`` (the lock reads open), ``done``
    (a sync ran), ``declined`` (its parcel left the locker already), ``expired`` (the agent
    found it past ``expires_at`` too) or ``failed`` with a
    ``reason`` code (``lock_stuck``, ``board_timeout``, ``unknown_compartment`` …) and the
    lock's state when known."""

    result: Literal["opened", "done", "declined", "expired", "failed"]
    reason: str | None = None
    detail: str | None = None
    door: Literal["open", "closed"] | None = None
    locked: bool | None = None


RunCommand = Callable[[OpenCommand | SyncCommand], Awaitable[Outcome]]


def sync_row(command: OpenCommand) -> dict[str, Any]:
    """The command as the HTTP sync lists it (``docs/kiosk-sync.md``): the same id."""
    return {
        "id": command.message_id,
        "type": "open",
        "compartment_id": command.compartment_id,
        "parcel_id": command.parcel_id,
        "reason": command.reason,
        "expires_at": command.expires_at.isoformat(),
    }


def agent_commands(
    run_command: Callable[[Mapping[str, Any]], Awaitable[str]],
    sync_now: Callable[[], object],
    lock_of: Callable[[str], LockState | None] | None = None,
) -> RunCommand:
    """A ``RunCommand`` for an agent whose one entry for door commands takes the HTTP sync's
    rows and answers a result (``opened``, ``expired``, ``declined``, ``failed``), and runs
    each id once itself: an MQTT command goes in as that row, a ``sync`` wakes its sync.
    ``lock_of(compartment_id)``, when given, is the lock as read after the command (the
    answer's ``door`` and ``locked``)."""

    async def run(command: OpenCommand | SyncCommand) -> Outcome:
        if isinstance(command, SyncCommand):
            sync_now()
            return Outcome("done")
        result = await run_command(sync_row(command))
        lock = lock_of(command.compartment_id) if lock_of is not None else None
        read: dict[str, Any] = (
            {"door": "open" if lock.door_open else "closed", "locked": lock.locked} if lock else {}
        )
        if result in ("opened", "expired", "declined"):
            return Outcome(result, **read)  # type: ignore[arg-type]
        return Outcome("failed", reason="door_not_opened", detail=str(result)[:500], **read)

    return run


@dataclass(frozen=True)
class Seen:
    """A command already in the log: its answer, or None when it was begun and never
    finished (the kiosk stopped while running it)."""

    answer: Answer | None


class CommandLog(Protocol):
    """Where a kiosk remembers the commands it took. Each call must be durable when it
    returns: a command begun before a power cut must read as seen after it."""

    def begin(self, message_id: str) -> Seen | None:
        """Record ``message_id`` as taken; None when it is new (the caller runs it), else
        what is known of it. Atomic: of two callers with one id, one gets None."""

    def finish(self, message_id: str, answer: Answer) -> None:
        """Keep the answer (it is not yet delivered)."""

    def delivered(self, message_id: str) -> None:
        """The broker acknowledged the answer."""

    def undelivered(self) -> list[Answer]:
        """Answers not acknowledged yet, oldest first."""


class SqliteCommandLog:
    """A ``CommandLog`` in a SQLite file of its own (``synchronous=FULL``: a command begun
    survives a power cut). Entries older than ``keep`` are forgotten; a command expires in
    minutes, so its replay is refused by expiry long before then."""

    def __init__(self, path: Path | str, *, keep: timedelta = timedelta(days=30)) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS fleet_commands (message_id TEXT PRIMARY KEY,"
            " begun_at REAL NOT NULL, answer BLOB, delivered INTEGER NOT NULL DEFAULT 0)"
        )
        self._db.execute(
            "DELETE FROM fleet_commands WHERE begun_at < ?", (time.time() - keep.total_seconds(),)
        )

    def begin(self, message_id: str) -> Seen | None:
        inserted = self._db.execute(
            "INSERT INTO fleet_commands (message_id, begun_at) VALUES (?, ?)"
            " ON CONFLICT (message_id) DO NOTHING",
            (message_id, time.time()),
        ).rowcount
        if inserted:
            return None
        row = self._db.execute(
            "SELECT answer FROM fleet_commands WHERE message_id = ?", (message_id,)
        ).fetchone()
        return Seen(Answer.model_validate_json(row[0]) if row and row[0] else None)

    def finish(self, message_id: str, answer: Answer) -> None:
        self._db.execute(
            "UPDATE fleet_commands SET answer = ?, delivered = 0 WHERE message_id = ?",
            (encode(answer), message_id),
        )

    def delivered(self, message_id: str) -> None:
        self._db.execute(
            "UPDATE fleet_commands SET delivered = 1 WHERE message_id = ?", (message_id,)
        )

    def undelivered(self) -> list[Answer]:
        rows = self._db.execute(
            "SELECT answer FROM fleet_commands WHERE answer IS NOT NULL AND delivered = 0"
            " ORDER BY begun_at"
        ).fetchall()
        return [Answer.model_validate_json(answer) for (answer,) in rows]

    def close(self) -> None:
        self._db.close()


class FleetClient:
    """One kiosk's connection to the fleet channel; see the module doc.

    ``run()`` until cancelled (it says ``offline`` on the way out); ``publish_state()`` when
    a door or lock changes.
    """

    def __init__(
        self,
        broker: Broker | str,
        site_id: str,
        run_command: RunCommand,
        command_log: CommandLog,
        *,
        version: str,
        heartbeat_seconds: float = 10.0,
        topic_root: str = "openlocker/v1",
        queued_events: Callable[[], int | None] | None = None,
        clock: Clock = system_clock,
        client_id: str | None = None,
    ) -> None:
        self.broker = Broker.from_url(broker) if isinstance(broker, str) else broker
        self.site_id = site_id
        self.run_command = run_command
        self.log = command_log
        self.version = version
        self.heartbeat_seconds = heartbeat_seconds
        self.topics = Topics(topic_root)
        self.queued_events = queued_events
        self.clock = clock
        self.client_id = client_id or f"kiosk-{site_id}"
        self._client: aiomqtt.Client | None = None
        self._state: StateSnapshot | None = None
        self._running: set[str] = set()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._started = time.monotonic()
        self.connected = asyncio.Event()
        #: How many times it connected so far (a reconnect counts one more).
        self.connections = 0

    # -- the connection ---------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until cancelled, reconnecting with jittered exponential backoff."""
        delay = BACKOFF_MIN
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as error:
                log.warning(
                    "fleet broker connection lost",
                    extra={"site_id": self.site_id, "error": str(error)[:200], "retry_in": delay},
                )
            else:
                delay = BACKOFF_MIN
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, BACKOFF_MAX)

    async def _session(self) -> None:
        connected_at = self.clock()
        will = aiomqtt.Will(
            self.topics.of(self.site_id, "presence"),
            encode(self._presence("offline", "connection_lost", connected_at)),
            qos=QOS,
            retain=True,
        )
        client = aiomqtt.Client(
            **self.broker.client_options(),
            identifier=self.client_id,
            clean_session=False,
            protocol=aiomqtt.ProtocolVersion.V311,
            will=will,
            timeout=10,
        )
        async with client:
            try:
                await client.subscribe(self.topics.of(self.site_id, "commands"), QOS)
                self._client = client
                await self._publish("presence", self._presence("online", "connected"), True)
                if self._state is not None:
                    await self._publish("state", self._state, retain=True)
                for answer in self.log.undelivered():
                    await self._deliver(answer)
                self.connections += 1
                self.connected.set()
                log.info("fleet broker connected", extra={"site_id": self.site_id})
                beating = asyncio.ensure_future(self._heartbeats())
                try:
                    async for message in client.messages:
                        self._take(message.payload)
                finally:
                    beating.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await beating
            except asyncio.CancelledError:
                # Stopping: say so (the will is only for a connection lost).
                try:
                    await asyncio.wait_for(
                        self._publish("presence", self._presence("offline", "shutdown"), True),
                        SHUTDOWN_SAY_SECONDS,
                    )
                except (aiomqtt.MqttError, TimeoutError) as error:
                    log.warning(
                        "fleet broker not told of the shutdown",
                        extra={"site_id": self.site_id, "error": repr(error)[:200]},
                    )
                raise
            finally:
                self._client = None
                self.connected.clear()

    def _presence(
        self, status: Literal["online", "offline"], reason: str, at: datetime | None = None
    ) -> Presence:
        return Presence.model_validate(
            {
                "message_id": new_id("msg"),
                "site_id": self.site_id,
                "sent_at": at or self.clock(),
                "status": status,
                "reason": reason,
                "version": self.version,
            }
        )

    async def _heartbeats(self) -> None:
        while True:
            beat = Heartbeat(
                message_id=new_id("msg"),
                site_id=self.site_id,
                sent_at=self.clock(),
                version=self.version,
                uptime_seconds=round(time.monotonic() - self._started, 3),
                queued_events=self.queued_events() if self.queued_events else None,
            )
            with contextlib.suppress(aiomqtt.MqttError):
                await self._publish("heartbeat", beat)
            await asyncio.sleep(self.heartbeat_seconds)

    async def _publish(
        self,
        channel: str,
        message: Answer | Presence | Heartbeat | StateSnapshot,
        retain: bool = False,
    ) -> None:
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("not connected")
        await client.publish(
            self.topics.of(self.site_id, channel), encode(message), qos=QOS, retain=retain
        )

    async def publish_state(self, compartments: Sequence[CompartmentState]) -> None:
        """The compartments as they read now, retained; kept and sent again on reconnect."""
        self._state = StateSnapshot(
            message_id=new_id("msg"),
            site_id=self.site_id,
            sent_at=self.clock(),
            compartments=list(compartments),
        )
        with contextlib.suppress(aiomqtt.MqttError):
            await self._publish("state", self._state, retain=True)

    # -- commands -----------------------------------------------------------------------

    def _take(self, payload: object) -> None:
        try:
            command = parse(
                "commands", self.site_id, payload if isinstance(payload, bytes) else b""
            )
        except Refused as refused:
            log.warning(
                "fleet command refused",
                extra={"site_id": self.site_id, "reason": refused.reason, "detail": refused.detail},
            )
            if refused.reason == "site_mismatch":
                self._refuse_other_site(payload)
            return
        task = asyncio.ensure_future(self._execute(command))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _refuse_other_site(self, payload: object) -> None:
        """Answer a well-formed command for another site ``refused`` (on this site's topic),
        so the server learns of the misrouting; nothing is run."""
        with contextlib.suppress(Exception):
            data = orjson.loads(payload if isinstance(payload, bytes) else b"")
            message_id, transaction_id = str(data["message_id"]), str(data["transaction_id"])
            answer = self._answer(message_id, transaction_id, "refused", reason="wrong_site")
            if self.log.begin(message_id) is None:
                self.log.finish(message_id, answer)
            task = asyncio.ensure_future(self._deliver(answer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _execute(self, command: Command) -> Answer | None:
        """Run ``command`` once for all deliveries of it and publish its answer, which the
        log keeps until the broker acknowledged it; returns the answer (None when a delivery
        of it is running right now, which answers for both)."""
        message_id = command.message_id
        if message_id in self._running:
            log.info("fleet command already running", extra={"command_id": message_id})
            return None
        seen = self.log.begin(message_id)
        if seen is not None:
            answer = seen.answer
            if answer is None:
                # Begun before the kiosk stopped, never finished: the lock may have been
                # pulsed, so it is not pulsed again; the operator may open anew.
                answer = self._answer_for(command, "failed", reason="interrupted")
                self.log.finish(message_id, answer)
            log.info(
                "fleet command repeated: answered from the log, not run",
                extra={"command_id": message_id, "result": answer.result},
            )
        else:
            self._running.add(message_id)
            try:
                answer = await self._run(command)
                self.log.finish(message_id, answer)
            finally:
                self._running.discard(message_id)
        await self._deliver(answer)
        return answer

    async def _run(self, command: Command) -> Answer:
        if command.site_id != self.site_id:
            log.warning(
                "fleet command refused",
                extra={"command_id": command.message_id, "reason": "wrong_site"},
            )
            return self._answer_for(command, "refused", reason="wrong_site")
        if self.clock() >= command.expires_at:
            log.warning(
                "fleet command refused",
                extra={
                    "command_id": command.message_id,
                    "reason": "expired",
                    "expires_at": command.expires_at.isoformat(),
                },
            )
            return self._answer_for(command, "expired", reason="expired")
        try:
            outcome = await self.run_command(command)
        except Exception as error:  # the agent's bug must not leave the command unanswered
            log.exception("fleet command failed", extra={"command_id": command.message_id})
            outcome = Outcome("failed", reason="agent_error", detail=type(error).__name__)
        return self._answer_for(
            command,
            outcome.result,
            reason=outcome.reason,
            detail=outcome.detail,
            door=outcome.door,
            locked=outcome.locked,
        )

    def _answer_for(self, command: Command, result: str, **fields: object) -> Answer:
        compartment = command.compartment_id if isinstance(command, OpenCommand) else None
        return self._answer(
            command.message_id,
            command.transaction_id,
            result,
            compartment_id=compartment,
            **fields,
        )

    def _answer(
        self, command_id: str, transaction_id: str, result: str, **fields: object
    ) -> Answer:
        return Answer.model_validate(
            {
                "message_id": new_id("msg"),
                "site_id": self.site_id,
                "sent_at": self.clock(),
                "command_id": command_id,
                "transaction_id": transaction_id,
                "result": result,
                **{name: value for name, value in fields.items() if value is not None},
            },
            strict=False,
        )

    async def _deliver(self, answer: Answer) -> None:
        """Publish ``answer``; when the broker acknowledged it, the log knows. Not connected:
        it waits in the log for the next connection."""
        try:
            await self._publish("answers", answer)
        except aiomqtt.MqttError as error:
            log.info(
                "fleet answer kept for the next connection",
                extra={"command_id": answer.command_id, "error": str(error)[:200]},
            )
            return
        self.log.delivered(answer.command_id)


def broker_of(url: str, site_id: str, password: str | None = None) -> Broker:
    """The broker of a kiosk's ``--mqtt URL``; ``password`` (``OPENLOCKER_KIOSK_MQTT_PASSWORD``,
    which ``ps`` does not show) when the URL has none, with the site id as the user when the
    URL names none (a kiosk's MQTT user is its site id). ``ValueError`` for a bad URL."""
    broker = Broker.from_url(url)
    if password and broker.password is None:
        broker = replace(broker, username=broker.username or site_id, password=password)
    return broker


class AgentFleet:
    """The kiosk agent on the fleet channel (``openlocker kiosk --mqtt``), beside its HTTP
    sync: commands go through ``agent.run_command`` (so one that comes by MQTT and by the
    sync runs once), ``sync`` wakes the sync, the heartbeat carries the version and the
    queued events, and the compartment snapshot is published at start and whenever a lock
    reads otherwise or the map changes (only when it differs from the last one).

    Build it before ``agent.start()`` (it follows the start's reading), ``run()`` it on the
    agent's loop until cancelled (it says ``offline``), then ``close()``.
    """

    def __init__(
        self, agent: Agent, settings: KioskSettings, *, clock: Clock = system_clock
    ) -> None:
        assert settings.mqtt_url, "a kiosk on the fleet channel has a broker"
        self.agent = agent
        self.command_log = SqliteCommandLog(settings.command_log_path)
        self.client = FleetClient(
            broker_of(settings.mqtt_url, settings.site_id, settings.mqtt_password),
            settings.site_id,
            agent_commands(agent.run_command, sync_now=agent.wake_sync, lock_of=self._lock_of),
            self.command_log,
            version=__version__,
            heartbeat_seconds=settings.heartbeat_s,
            topic_root=settings.mqtt_topic_root,
            queued_events=agent.store.queued,
            clock=clock,
        )
        self._changed = asyncio.Event()
        self._published: list[CompartmentState] | None = None
        agent.state_listeners.append(self._changed.set)

    def _lock_of(self, compartment_id: str) -> LockState | None:
        compartment = self.agent.store.compartment(compartment_id)
        if compartment is None or compartment.address is None:
            return None
        return self.agent.locks.get(compartment.address)

    def snapshot(self) -> list[CompartmentState]:
        """Every compartment on this kiosk's boards whose lock has been read, as last read;
        ``fault`` on those whose board does not answer now."""
        faulted = self.agent.faulted_boards
        states = []
        for compartment in self.agent.store.compartments():
            lock = self.agent.locks.get(compartment.address) if compartment.address else None
            if lock is None:
                continue
            board, number = lock.address
            states.append(
                CompartmentState(
                    compartment_id=compartment.id,
                    board=board,
                    lock=number,
                    locked=lock.locked,
                    door="open" if lock.door_open else "closed",
                    item=lock.item,
                    fault="board_fault" if board in faulted else None,
                )
            )
        return states[:1000]

    async def run(self) -> None:
        """Stay on the channel and publish the snapshot as it changes, until cancelled."""
        states = asyncio.ensure_future(self._publish_states())
        try:
            await self.client.run()
        finally:
            states.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await states

    async def _publish_states(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            snapshot = self.snapshot()
            if snapshot != self._published:
                self._published = snapshot
                await self.client.publish_state(snapshot)

    def close(self) -> None:
        self.command_log.close()
