"""Running a kiosk: in this process (``serve_kiosk``, ``KioskThread``, ``sim_kiosk`` for the
demo) or as a child process (``spawn_kiosk``), as the tests do, or from ``openlocker kiosk``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx
import uvicorn

from openlocker.core.clock import Clock, system_clock
from openlocker.kiosk.agent import Agent
from openlocker.kiosk.api import create_kiosk_app
from openlocker.kiosk.boards import BoardDriver, board_from_spec
from openlocker.kiosk.config import KioskSettings
from openlocker.kiosk.doors import Doors
from openlocker.kiosk.link import ServerLink
from openlocker.kiosk.store import KioskStore

log = logging.getLogger("openlocker.kiosk")


class _Server(uvicorn.Server):
    """uvicorn, but signals are the kiosk's to handle (it stops the agent too)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_kiosk(
    settings: KioskSettings,
    *,
    drivers: Sequence[BoardDriver] | None = None,
    clock: Clock = system_clock,
    stop: asyncio.Event | None = None,
    started: Callable[[Agent], None] | None = None,
) -> None:
    """Run the kiosk until ``stop`` is set, or SIGTERM or SIGINT when on the main thread.

    ``drivers`` replaces the boards of ``settings.boards`` (tests pass sim boards they act
    on). ``started`` is called with the agent once the UI port answers.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    store = KioskStore(settings.store_path)
    doors = Doors(
        list(drivers) if drivers is not None else [board_from_spec(s) for s in settings.boards]
    )
    link = ServerLink(
        settings.server, settings.site_id, settings.key, timeout_s=settings.request_timeout_s
    )
    agent = Agent(settings, store, doors, link, clock=clock)
    fleet = None
    if settings.mqtt_url:
        # Imported here: a kiosk that polls alone loads no MQTT client.
        from openlocker.kiosk.mqtt import AgentFleet

        fleet = AgentFleet(agent, settings, clock=clock)
    fleet_task: asyncio.Task[None] | None = None
    try:
        await agent.start()
        server = _Server(
            uvicorn.Config(
                create_kiosk_app(agent),
                host=settings.ui_host,
                port=settings.ui_port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )
        running = asyncio.create_task(agent.run())
        if fleet is not None:
            fleet_task = asyncio.create_task(fleet.run())
            fleet_task.add_done_callback(_fleet_ended)
        serving = asyncio.create_task(server.serve())
        stopped = asyncio.create_task(stop.wait())
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)
        if started is not None and server.started:
            started(agent)
        await asyncio.wait([running, serving, stopped], return_when=asyncio.FIRST_COMPLETED)
        if fleet_task is not None:
            fleet_task.cancel()  # first: it says offline while the rest stops
            with contextlib.suppress(asyncio.CancelledError):
                await fleet_task
        server.should_exit = True
        await serving
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        stopped.cancel()
        for task in (running, serving):
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        if fleet_task is not None and not fleet_task.done():
            fleet_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fleet_task
        if fleet is not None:
            fleet.close()
        await agent.close()
        store.close()


def _fleet_ended(task: asyncio.Task[None]) -> None:
    """The fleet channel is a speed-up: if it fails, the kiosk goes on polling, and says so."""
    if not task.cancelled() and task.exception() is not None:
        log.error("fleet channel stopped: polling alone", exc_info=task.exception())


class KioskThread:
    """A kiosk in a thread of this process, with its own event loop: for the demo and tests.

    with KioskThread(settings, drivers=[SimBoard(Bank(2, 16))]) as kiosk:
        httpx.post(f"{kiosk.url}/api/pickup", json={"pin": "…"})
    """

    def __init__(
        self,
        settings: KioskSettings,
        *,
        drivers: Sequence[BoardDriver] | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.settings = settings
        self.url = f"http://{settings.ui_host}:{settings.ui_port}"
        self.agent: Agent | None = None
        self._drivers = drivers
        self._clock = clock
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._main, name=f"kiosk {settings.site_id}", daemon=True
        )

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()

            def ready(agent: Agent) -> None:
                self.agent = agent
                self._ready.set()

            await serve_kiosk(
                self.settings,
                drivers=self._drivers,
                clock=self._clock,
                stop=self._stop,
                started=ready,
            )

        try:
            asyncio.run(main())
        except BaseException as error:
            self._error = error
        finally:
            self._ready.set()

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s) or self.agent is None:
            raise RuntimeError(f"the kiosk did not start: {self._error!r}")

    def call(self, function: Callable[[Agent], object]) -> object:
        """Run ``function(agent)`` on the kiosk's loop (the store is used there alone)."""
        assert self._loop is not None and self.agent is not None
        agent = self.agent

        async def run() -> object:
            result = function(agent)
            if asyncio.iscoroutine(result):
                return await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self._error is not None and not isinstance(self._error, asyncio.CancelledError):
            raise self._error

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def sim_kiosk(
    server: str,
    site_id: str,
    key: str,
    *,
    ui_port: int,
    data_dir: Path,
    ui_host: str = "127.0.0.1",
    wait_s: float = 60.0,
    mqtt_url: str | None = None,
    mqtt_password: str | None = None,
) -> KioskThread:
    """A kiosk on sim boards sized to the site's compartment map, in a thread of this
    process, not yet started: what ``openlocker demo`` runs per site.

    Waits (up to ``wait_s``) for ``server`` to list the site's compartments
    (``GET /v1/sites/{id}/compartments``), so it may be called while the server starts.
    Its touchscreen API is ``kiosk.url``; ``/api/sim/doors/…`` plays the people at the doors.
    With ``mqtt_url`` (and ``mqtt_password``) it is on the fleet channel too.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            answer = httpx.get(
                f"{server.rstrip('/')}/v1/sites/{site_id}/compartments",
                headers={"Authorization": f"Bearer {key}"},
                timeout=5,
            )
            if answer.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not list the compartments of {site_id}")
        time.sleep(0.2)
    boards = 1 + max(
        (c["board"] for c in answer.json()["items"] if c["board"] is not None), default=0
    )
    settings = KioskSettings(
        site_id=site_id,
        server=server,
        key=key,
        boards=(f"sim:{boards}x16",),
        data_dir=data_dir,
        ui_host=ui_host,
        ui_port=ui_port,
        mqtt_url=mqtt_url,
        mqtt_password=mqtt_password,
    )
    return KioskThread(settings)


def kiosk_command(settings: KioskSettings) -> list[str]:
    """The command line that runs ``settings`` as its own process (the lean entry point,
    ``python -m openlocker.kiosk``, which loads none of the server); the key and the broker
    go in the environment (``kiosk_env``), not on the command line where ``ps`` shows them."""
    command = [
        sys.executable,
        "-m",
        "openlocker.kiosk",
        "--site",
        settings.site_id,
        "--server",
        settings.server,
        "--ui-host",
        settings.ui_host,
        "--ui-port",
        str(settings.ui_port),
        "--data",
        str(settings.data_dir),
        "--sync-interval",
        str(settings.sync_interval_s),
        "--offline-retry",
        str(settings.offline_retry_s),
        "--door-left-open",
        str(settings.door_left_open_s),
        "--heartbeat",
        str(settings.heartbeat_s),
        "--mqtt-topic-root",
        settings.mqtt_topic_root,
    ]
    for spec in settings.boards:
        command += ["--board", spec]
    return command


def kiosk_env(settings: KioskSettings) -> dict[str, str]:
    """The environment that gives ``kiosk_command`` its secrets: the kiosk key, and the
    fleet channel's broker and password when it has them."""
    env = {"OPENLOCKER_KIOSK_KEY": settings.key}
    if settings.mqtt_url:
        env["OPENLOCKER_KIOSK_MQTT_URL"] = settings.mqtt_url
    if settings.mqtt_password:
        env["OPENLOCKER_KIOSK_MQTT_PASSWORD"] = settings.mqtt_password
    return env


def spawn_kiosk(
    settings: KioskSettings,
    *,
    log: IO[bytes] | int | None = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
    wait_s: float = 30.0,
) -> subprocess.Popen[bytes]:
    """Start ``settings`` as a child process and wait until its ``/healthz`` answers.

    The child has its own session (``os.killpg`` ends it with what it started); stop it with
    SIGTERM. Its log (JSON lines on stderr) goes to ``log``.
    """
    # The broker is the settings' alone: none inherited from this process's environment.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("OPENLOCKER_KIOSK_MQTT_")}
    child_env = {**inherited, **(env or {}), **kiosk_env(settings)}
    process = subprocess.Popen(
        kiosk_command(settings),
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    url = f"http://{settings.ui_host}:{settings.ui_port}/healthz"
    deadline = time.monotonic() + wait_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the kiosk exited with status {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the kiosk did not answer /healthz in time")
        time.sleep(0.05)


def stop_kiosk(process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> int:
    """SIGTERM the kiosk and wait; SIGKILL when it does not stop in time. Its exit status."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()
