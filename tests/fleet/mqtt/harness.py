"""A real kiosk on the fleet channel for tests: ``FleetClient`` and a sim board, in a thread
with its own event loop; the command callback opens the sim lock. And a Mosquitto of the
test's own, for the access rules and broker restarts."""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt

from openlocker.core.clock import Clock
from openlocker.core.mqtt import CompartmentState, OpenCommand, SyncCommand
from openlocker.fleet.mqtt.mosquitto import acl, listener
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.base import BoardDriver
from openlocker.kiosk.boards.faults import Address, BoardFault
from openlocker.kiosk.boards.sim import SimBoard
from openlocker.kiosk.mqtt import FleetClient, Outcome, SqliteCommandLog

T = TypeVar("T")
SHARED_BROKER = "mqtt://127.0.0.1:1883"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SimKiosk:
    """One site's kiosk: compartment ids mapped to locks of ``board`` (a sim bank unless
    given), its command log in ``data``. ``start()`` runs it, ``stop()`` ends it; both may be
    called again (a restarted kiosk keeps its log)."""

    def __init__(
        self,
        site_id: str,
        compartments: dict[str, Address],
        data: Path,
        *,
        root: str,
        clock: Clock,
        broker: str = SHARED_BROKER,
        board: BoardDriver | None = None,
        heartbeat_seconds: float = 0.2,
        version: str = "kiosk-test-1",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.site_id = site_id
        self.compartments = compartments
        self.data = data
        self.root = root
        self.clock = clock
        self.broker = broker
        self.board = board or SimBoard(Bank(1, 16), poll_interval=0.05)
        self.heartbeat_seconds = heartbeat_seconds
        self.version = version
        self.username, self.password = username, password
        #: Set by a test to hold a command in the middle of its run (a slow door).
        self.hold: threading.Event | None = None
        self.commands: list[OpenCommand | SyncCommand] = []
        self.client: FleetClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        data.mkdir(parents=True, exist_ok=True)

    @property
    def bank(self) -> Bank:
        assert isinstance(self.board, SimBoard)
        return self.board.bank

    def pulses(self, compartment_id: str) -> int:
        return self.bank.snapshot(self.compartments[compartment_id]).pulses

    def broker_url(self) -> str:
        if self.username is None:
            return self.broker
        scheme, rest = self.broker.split("://", 1)
        return f"{scheme}://{self.username}:{self.password}@{rest}"

    def start(self) -> None:
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self._main(ready))
            loop.close()

        self._thread = threading.Thread(target=main, name=f"kiosk {self.site_id}", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the kiosk did not start"

    async def _main(self, ready: threading.Event) -> None:
        await self.board.start()
        command_log = SqliteCommandLog(self.data / "fleet-commands.db")
        self.client = FleetClient(
            self.broker_url(),
            self.site_id,
            self.run_command,
            command_log,
            version=self.version,
            heartbeat_seconds=self.heartbeat_seconds,
            topic_root=self.root,
            clock=self.clock,
        )
        self._task = asyncio.ensure_future(self.client.run())
        ready.set()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        finally:
            command_log.close()
            await self.board.close()

    async def run_command(self, command: OpenCommand | SyncCommand) -> Outcome:
        """The agent's part, as small as it gets: open the mapped lock of the sim board."""
        self.commands.append(command)
        if not isinstance(command, OpenCommand):
            return Outcome("done")
        address = self.compartments.get(command.compartment_id)
        if address is None:
            return Outcome("failed", reason="unknown_compartment")
        if self.hold is not None:
            await asyncio.to_thread(self.hold.wait, 30)
        try:
            state = await self.board.open(address)
        except BoardFault as fault:
            return Outcome("failed", reason=fault.code, detail=str(fault))
        await self.publish_state()
        return Outcome("opened", door="open" if state.door_open else "closed", locked=state.locked)

    async def publish_state(self) -> None:
        assert self.client is not None
        reading = await self.board.read_all()
        await self.client.publish_state(
            [
                CompartmentState(
                    compartment_id=compartment_id,
                    board=address[0],
                    lock=address[1],
                    locked=reading.states[address].locked,
                    door="open" if reading.states[address].door_open else "closed",
                    item=reading.states[address].item,
                )
                for compartment_id, address in self.compartments.items()
            ]
        )

    def call(self, work: Callable[[], Coroutine[Any, Any, T]], timeout: float = 10) -> T:
        """Run ``work()`` on the kiosk's loop and return its result."""
        assert self._loop is not None
        future: Future[T] = asyncio.run_coroutine_threadsafe(work(), self._loop)
        return future.result(timeout)

    def wait_connected(self, timeout: float = 10) -> None:
        wait_for(lambda: self.client is not None and self.client.connected.is_set(), timeout)

    def stop(self) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        if self._thread is not None:
            self._thread.join(10)
        self._thread = self._loop = self._task = None


def wait_for(condition: Callable[[], object], timeout: float = 10, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(step)


@contextmanager
def kiosk(*args: Any, **kwargs: Any) -> Iterator[SimKiosk]:
    """A started ``SimKiosk``; afterwards its retained messages and session are removed
    from the broker, which other tests share."""
    running = SimKiosk(*args, **kwargs)
    running.start()
    try:
        yield running
    finally:
        running.stop()
        asyncio.run(
            forget(running.broker_url(), f"kiosk-{running.site_id}", running.root, running.site_id)
        )


async def forget(url: str, client_id: str, root: str, site_id: str | None = None) -> None:
    """Drop ``client_id``'s persistent session, and ``site_id``'s retained messages."""
    from openlocker.core.mqtt import Broker, Topics

    try:
        async with aiomqtt.Client(
            **Broker.from_url(url).client_options(), identifier=client_id, clean_session=True
        ) as client:
            if site_id is not None:
                for channel in ("presence", "state"):
                    await client.publish(Topics(root).of(site_id, channel), b"", qos=1, retain=True)
    except aiomqtt.MqttError:
        pass  # a broker the test stopped keeps nothing anyway


class Listener:
    """A raw MQTT client that records what arrives on ``topics`` (a test's ear on the
    broker), and can publish as anyone the broker lets it be."""

    def __init__(self, url: str = SHARED_BROKER, topics: tuple[str, ...] = ()) -> None:
        self.url = url
        self.topics = topics
        self.received: list[aiomqtt.Message] = []
        self.subscribed = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: aiomqtt.Client | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._stop: asyncio.Event | None = None

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        from openlocker.core.mqtt import Broker

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with aiomqtt.Client(**Broker.from_url(self.url).client_options()) as client:
            self._client = client
            for topic in self.topics:
                await client.subscribe(topic, 1)
            self.subscribed.set()
            reader = asyncio.ensure_future(self._read(client))
            await self._stop.wait()
            reader.cancel()

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.received.append(message)

    def __enter__(self) -> Listener:
        self._thread.start()
        assert self.subscribed.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        assert self._loop is not None and self._client is not None
        asyncio.run_coroutine_threadsafe(
            self._client.publish(topic, payload, qos=1, retain=retain), self._loop
        ).result(10)

    def on(self, topic: str) -> list[bytes]:
        return [m.payload for m in self.received if m.topic.value == topic]  # type: ignore[misc]


class Mosquitto:
    """A Mosquitto of the test's own on a free port, with persistence in ``folder``; with
    ``users`` (name → password) it also has the documented access rules."""

    def __init__(
        self, folder: Path, *, users: dict[str, str] | None = None, root: str = "openlocker/v1"
    ) -> None:
        self.folder = folder
        self.port = free_port()
        self.users = users
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            # Run as whoever runs the test (as root it would switch to a user that cannot
            # read the test's folder).
            f"user {getpass.getuser()}",
            f"persistence_location {folder}/",
            "log_dest file " + str(folder / "log"),
            "log_type all",
        ]
        if users is None:
            lines += [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence true"]
        else:
            passwords = folder / "passwd"
            passwords.touch()
            for name, password in users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(passwords), name, password],
                    check=True,
                    capture_output=True,
                )
            (folder / "acl").write_text(acl(root))
            lines.append(listener(self.port, str(passwords), str(folder / "acl")).strip())
        self.config = folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def add_user(self, name: str, password: str) -> None:
        """Add a user to the password file and have the broker read it again (SIGHUP)."""
        assert self.users is not None
        self.users[name] = password
        subprocess.run(
            ["mosquitto_passwd", "-b", str(self.folder / "passwd"), name, password],
            check=True,
            capture_output=True,
        )
        if self.process is not None:
            self.process.send_signal(signal.SIGHUP)
            time.sleep(0.2)

    def url(self, user: str | None = None) -> str:
        if user is None or self.users is None:
            return f"mqtt://127.0.0.1:{self.port}"
        return f"mqtt://{user}:{self.users[user]}@127.0.0.1:{self.port}"

    def start(self) -> None:
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen(
            [mosquitto, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(listening, 10)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def log(self) -> str:
        path = self.folder / "log"
        return path.read_text() if path.exists() else ""

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def unique_root() -> str:
    """A topic root of the test's own on the shared broker."""
    return f"test-{os.urandom(6).hex()}/openlocker/v1"
