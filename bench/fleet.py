"""The MQTT fleet channel: how soon a remote open reaches the lock, and what a fleet costs.

1. Remote open: a real ``openlocker serve`` with its fleet consumer, Mosquitto on
   127.0.0.1:1883, and one kiosk in this process: ``FleetClient`` with the Kerong driver on
   the pty emulator of ``kiosk/boards/emulators.py``. Each open is timed from the moment
   ``POST /v1/compartments/{id}/open`` is sent to the moment the emulator has read the unlock
   frame in full (p50, p99, max), and to the API's confirmed answer.
1b. The same through the real agent: ``python -m openlocker.kiosk --mqtt`` in its own
   process, its Kerong driver on the pty emulator of this one, syncing over HTTP as well.
2. Fleet: N lightweight kiosks (one MQTT connection each, presence and a heartbeat every
   ``--interval`` seconds, as ``FleetClient`` sends them) in a child process, against the
   same server; its CPU (every process of it) is sampled from /proc over ``--seconds``,
   before the kiosks connect and while they heartbeat, as % of one core.

    PYTHONPATH=. python bench/fleet.py [--opens 300] [--kiosks 1000] [--interval 10]
        [--seconds 60] [--workers 1] [--database-url URL] [--agent-opens 300]

Uses the shared broker under a topic root of its own, and clears what it retained.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import httpx
from sqlalchemy import text

from openlocker.core.config import Settings
from openlocker.core.context import Context
from openlocker.core.db import Database
from openlocker.core.ids import new_id
from openlocker.core.keys import Keyring
from openlocker.core.migrate import upgrade
from openlocker.core.mqtt import QOS, Broker, CompartmentState, Heartbeat, Presence, Topics, encode
from openlocker.kiosk.boards import kerong
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.emulators import KerongEmulator
from openlocker.kiosk.boards.kerong import KerongBoard
from openlocker.kiosk.config import KioskSettings
from openlocker.kiosk.mqtt import FleetClient, Outcome, SqliteCommandLog
from openlocker.kiosk.run import spawn_kiosk, stop_kiosk
from openlocker.lockers.schemas import CompartmentIn, SiteIn
from openlocker.lockers.service import do_create_site
from openlocker.orgs.service import do_create_api_key, do_create_organization
from tests.factories import TEST_ACTOR
from tests.servers import _free_port, serving

BROKER = "mqtt://127.0.0.1:1883"
SECRET = "bench-secret"


def percentiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return (
        f"p50 {cuts[49] * 1e3:7.2f} ms  p99 {cuts[98] * 1e3:7.2f} ms"
        f"  max {max(samples) * 1e3:7.2f} ms"
    )


def make_sites(ctx: Context, count: int, compartments: int) -> list[str]:
    sites = []
    with ctx.db.transaction() as session:
        for n in range(count):
            spec = SiteIn(
                name=f"Bench site {n}",
                address="Bench street 1",
                lat=52.2,
                lon=21.0,
                compartments=[
                    CompartmentIn(label=f"A{i + 1}", size="M", floor_height_mm=300)
                    for i in range(compartments)
                ],
            )
            sites.append(do_create_site(session, ctx, TEST_ACTOR, spec).id)
    return sites


def operator_key(ctx: Context) -> str:
    with ctx.db.transaction() as session:
        org = do_create_organization(session, ctx, TEST_ACTOR, "Bench operator", "operator")
        session.flush()
        _, key = do_create_api_key(session, ctx, TEST_ACTOR, org.id, "bench", ["admin"])
    return key


def cpu_seconds(pid: int) -> float:
    """User and system CPU of ``pid`` and every process under it, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        pids += [int(child) for child in children]
    return total


def server_pid(port: int) -> int:
    """The ``openlocker serve`` process listening on ``port``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, PermissionError):
            continue
        # ``openlocker serve --port P``, or the uvicorn it becomes with several workers.
        if b"--port" in cmdline and str(port).encode() in cmdline:
            return int(proc.name)
    raise RuntimeError("server process not found")


async def remote_opens(
    base: str, key: str, ctx: Context, site_id: str, root: str, opens: int
) -> tuple[list[float], list[float], int]:
    with ctx.db.engine.connect() as conn:
        compartments = [
            row[0]
            for row in conn.execute(
                text("SELECT id FROM compartments WHERE site_id = :s ORDER BY label"),
                {"s": site_id},
            )
        ]
    addresses = {cid: (n // 16, n % 16) for n, cid in enumerate(compartments)}
    bank = Bank(1, 16)
    with KerongEmulator(bank) as emulator, tempfile.TemporaryDirectory() as folder:
        board = KerongBoard(emulator.port, settle=0.02)
        await board.start()

        async def run_command(command: object) -> Outcome:
            address = addresses[command.compartment_id]  # type: ignore[attr-defined]
            state = await board.open(address)
            return Outcome("opened", door="open" if state.door_open else "closed")

        log = SqliteCommandLog(Path(folder) / "commands.db")
        client = FleetClient(BROKER, site_id, run_command, log, version="bench", topic_root=root)
        running = asyncio.ensure_future(client.run())
        await asyncio.wait_for(client.connected.wait(), 10)
        await client.publish_state(
            [
                CompartmentState(
                    compartment_id=c, board=a[0], lock=a[1], locked=True, door="closed"
                )
                for c, a in addresses.items()
            ]
        )
        to_frame: list[float] = []
        to_answer: list[float] = []
        confirmed = 0
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            for n in range(opens):
                compartment = compartments[n % len(compartments)]
                address = addresses[compartment]
                seen = len(emulator.received)
                started = time.perf_counter()
                answer = await http.post(
                    f"/v1/compartments/{compartment}/open",
                    json={"reason": "bench"},
                    headers=headers,
                )
                to_answer.append(time.perf_counter() - started)
                confirmed += answer.json().get("confirmed") is True
                frame = kerong.unlock_frame(*address)
                arrival = next(r.at for r in emulator.received[seen:] if r.frame == frame)
                to_frame.append(arrival - started)
                bank.close_door(address)
                await asyncio.sleep(0.01)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        log.close()
        await board.close()
    return to_frame, to_answer, confirmed


def kiosk_key(ctx: Context, site_id: str) -> str:
    with ctx.db.transaction() as session:
        org = do_create_organization(session, ctx, TEST_ACTOR, "Bench kiosks", "operator")
        session.flush()
        _, key = do_create_api_key(session, ctx, TEST_ACTOR, org.id, "kiosk", [f"kiosk:{site_id}"])
    return key


def agent_remote_opens(
    base: str, key: str, ctx: Context, site_id: str, root: str, opens: int, folder: Path
) -> tuple[list[float], list[float], int]:
    """Remote opens through the real agent (``python -m openlocker.kiosk --mqtt``, Kerong
    driver on the emulator, settle 20 ms as above): API call to the unlock frame on the
    wire, and to the answer."""
    with ctx.db.engine.connect() as conn:
        compartments = {
            row[0]: (int(row[1]), int(row[2]))
            for row in conn.execute(
                text("SELECT id, board, lock FROM compartments WHERE site_id = :s"),
                {"s": site_id},
            )
        }
    headers = {"Authorization": f"Bearer {key}"}
    bank = Bank(1, 16)
    with KerongEmulator(bank) as emulator:
        settings = KioskSettings(
            site_id=site_id,
            server=base,
            key=kiosk_key(ctx, site_id),
            boards=(f"kerong:{emulator.port},settle=0.02,poll=0.05",),
            data_dir=folder / "agent",
            ui_port=_free_port(),
            mqtt_url=BROKER,
            mqtt_topic_root=root,
        )
        kiosk = spawn_kiosk(settings, log=(folder / "agent.log").open("wb"))
        to_frame: list[float] = []
        to_answer: list[float] = []
        confirmed = 0
        results: collections.Counter[str] = collections.Counter()
        try:
            with httpx.Client(base_url=base, timeout=30, headers=headers) as http:
                deadline = time.monotonic() + 30
                while http.get(f"/v1/sites/{site_id}/kiosk").json()["state"] is None:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the agent never came online on the fleet channel")
                    time.sleep(0.1)
                ids = sorted(compartments)
                for n in range(opens):
                    compartment = ids[n % len(ids)]
                    address = compartments[compartment]
                    seen = len(emulator.received)
                    started = time.perf_counter()
                    answer = http.post(
                        f"/v1/compartments/{compartment}/open", json={"reason": "bench"}
                    )
                    to_answer.append(time.perf_counter() - started)
                    confirmed += answer.json().get("confirmed") is True
                    frame = kerong.unlock_frame(*address)
                    arrival = _arrival(emulator, seen, frame)
                    if arrival is None:
                        results[str(answer.json().get("result"))] += 1
                        continue
                    to_frame.append(arrival - started)
                    bank.close_door(address)
                    time.sleep(0.02)
        finally:
            stop_kiosk(kiosk)
    if results:
        print(f"  opens that pulsed no lock, by the API's result: {dict(results)}")
    return to_frame, to_answer, confirmed


def _arrival(
    emulator: KerongEmulator, seen: int, frame: bytes, wait_s: float = 2.0
) -> float | None:
    """When ``frame`` reached the emulator after its ``seen`` first requests; None when it
    has not within ``wait_s`` (the emulator's reader thread may lag the answer a little)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        found = next((r.at for r in emulator.received[seen:] if r.frame == frame), None)
        if found is not None:
            return found
        time.sleep(0.005)
    return None


def light_kiosks(sites: list[str], root: str, interval: float, seconds: float) -> None:
    """Child process: one connection per site; presence, then a heartbeat every
    ``interval`` (first ones spread over it), for ``seconds``; then offline and clear."""
    asyncio.run(_light_kiosks(sites, root, interval, seconds))


async def _light_kiosk(
    site_id: str, topics: Topics, interval: float, stop_at: float, ready: asyncio.Event
) -> None:
    now = datetime.now(UTC)

    def presence(status: str, reason: str) -> bytes:
        return encode(
            Presence.model_validate(
                {
                    "message_id": new_id("msg"),
                    "site_id": site_id,
                    "sent_at": now,
                    "status": status,
                    "reason": reason,
                    "version": "bench",
                }
            )
        )

    will = aiomqtt.Will(
        topics.of(site_id, "presence"), presence("offline", "connection_lost"), QOS, True
    )
    options = Broker.from_url(BROKER).client_options()
    for attempt in range(5):
        try:
            async with aiomqtt.Client(
                **options, identifier=f"bench-{site_id}", will=will, clean_session=True, timeout=30
            ) as client:
                await client.publish(
                    topics.of(site_id, "presence"), presence("online", "connected"), QOS, True
                )
                ready.set()
                await asyncio.sleep(random.uniform(0, interval))
                started = time.monotonic()
                while time.monotonic() < stop_at:
                    beat = Heartbeat(
                        message_id=new_id("msg"),
                        site_id=site_id,
                        sent_at=datetime.now(UTC),
                        version="bench",
                        uptime_seconds=time.monotonic() - started,
                        queued_events=0,
                    )
                    await client.publish(topics.of(site_id, "heartbeat"), encode(beat), QOS)
                    await asyncio.sleep(interval)
                await client.publish(
                    topics.of(site_id, "presence"), presence("offline", "shutdown"), QOS, True
                )
                await client.publish(topics.of(site_id, "presence"), b"", QOS, True)
                return
        except aiomqtt.MqttError:
            await asyncio.sleep(0.5 * (attempt + 1))


async def _light_kiosks(sites: list[str], root: str, interval: float, seconds: float) -> None:
    topics = Topics(root)
    stop_at = time.monotonic() + seconds
    readies = [asyncio.Event() for _ in sites]
    tasks = []
    for site_id, ready in zip(sites, readies, strict=True):
        tasks.append(asyncio.ensure_future(_light_kiosk(site_id, topics, interval, stop_at, ready)))
        await asyncio.sleep(0.002)  # connect at about 500 a second
    await asyncio.gather(*tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opens", type=int, default=300)
    parser.add_argument("--kiosks", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database-url")
    parser.add_argument("--agent-opens", type=int, default=300)
    args = parser.parse_args()
    root = f"bench-{os.urandom(4).hex()}/openlocker/v1"
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{folder}/bench.db"
        settings = Settings(database_url=url, secret_key=SECRET, data_dir=Path(folder) / "data")
        ctx = Context(Database(url), Keyring(SECRET), settings)
        if url.startswith("postgresql"):
            with ctx.db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade(ctx.db)
        key = operator_key(ctx)
        [open_site, agent_site] = make_sites(ctx, 2, 16)
        fleet = make_sites(ctx, args.kiosks, 1)
        server_id = f"bench-server-{os.urandom(3).hex()}"
        os.environ.update(
            OPENLOCKER_MQTT_URL=BROKER,
            OPENLOCKER_MQTT_TOPIC_ROOT=root,
            OPENLOCKER_MQTT_CLIENT_ID=server_id,
        )
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"database: {ctx.db.engine.dialect.name}, server workers: {args.workers}")
        with serving(ctx, workers=args.workers) as base:
            time.sleep(2)  # the consumer takes the lead and connects
            to_frame, to_answer, confirmed = asyncio.run(
                remote_opens(base, key, ctx, open_site, root, args.opens)
            )
            print(
                f"remote open, API call to unlock frame on the wire ({len(to_frame)}):"
                f" {percentiles(to_frame)}"
            )
            print(
                f"remote open, API call to confirmed answer      ({len(to_answer)}):"
                f" {percentiles(to_answer)}  confirmed {confirmed}/{len(to_answer)}"
            )
            to_frame, to_answer, confirmed = agent_remote_opens(
                base, key, ctx, agent_site, root, args.agent_opens, Path(folder)
            )
            print(
                f"remote open through the agent, API call to unlock frame ({len(to_frame)}):"
                f" {percentiles(to_frame)}"
            )
            print(
                f"remote open through the agent, API call to the answer   ({len(to_answer)}):"
                f" {percentiles(to_answer)}  confirmed {confirmed}/{len(to_answer)}"
            )
            pid = server_pid(int(base.rsplit(":", 1)[1]))
            idle_from, idle_cpu = time.monotonic(), cpu_seconds(pid)
            time.sleep(min(30.0, args.seconds))
            idle = (cpu_seconds(pid) - idle_cpu) / (time.monotonic() - idle_from)
            print(f"server CPU with no kiosk connected: {idle * 100:5.1f}% of a core")
            warmup = args.interval + args.kiosks / 500 + 5
            kiosks = multiprocessing.get_context("spawn").Process(
                target=light_kiosks,
                args=(fleet, root, args.interval, warmup + args.seconds + 5),
            )
            kiosks.start()
            time.sleep(warmup)
            busy_from, busy_cpu = time.monotonic(), cpu_seconds(pid)
            time.sleep(args.seconds)
            busy = (cpu_seconds(pid) - busy_cpu) / (time.monotonic() - busy_from)
            with ctx.db.engine.connect() as conn:
                online, fresh = conn.execute(
                    text(
                        "SELECT COUNT(*) FILTER (WHERE status = 'online'),"
                        " COUNT(*) FILTER (WHERE last_heartbeat_at > :recent)"
                        " FROM fleet_kiosks WHERE site_id NOT IN (:open, :agent)"
                    )
                    if ctx.db.engine.dialect.name == "postgresql"
                    else text(
                        "SELECT SUM(status = 'online'), SUM(last_heartbeat_at > :recent)"
                        " FROM fleet_kiosks WHERE site_id NOT IN (:open, :agent)"
                    ),
                    {
                        "recent": _recent(ctx, args.interval * 1.5),
                        "open": open_site,
                        "agent": agent_site,
                    },
                ).one()
            print(
                f"{args.kiosks} kiosks, a heartbeat every {args.interval:g} s:"
                f" server CPU {busy * 100:5.1f}% of a core over {args.seconds:g} s"
                f" ({(busy - idle) * 100:+.1f} points over idle);"
                f" online {online}, heartbeat within {args.interval * 1.5:g} s {fresh}"
            )
            kiosks.join(args.seconds + 60)
        print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        asyncio.run(forget_sessions([server_id, f"kiosk-{open_site}"], root, open_site))
        asyncio.run(forget_sessions([f"kiosk-{agent_site}"], root, agent_site))
        ctx.db.dispose()


async def forget_sessions(client_ids: list[str], root: str, site_id: str) -> None:
    """Leave the shared broker as found: the persistent sessions and retained messages."""
    options = Broker.from_url(BROKER).client_options()
    for client_id in client_ids:
        async with aiomqtt.Client(**options, identifier=client_id, clean_session=True) as client:
            for channel in ("presence", "state"):
                await client.publish(Topics(root).of(site_id, channel), b"", QOS, True)


def _recent(ctx: Context, seconds: float) -> datetime:
    from datetime import timedelta

    moment = datetime.now(UTC) - timedelta(seconds=seconds)
    return moment.replace(tzinfo=None) if ctx.db.engine.dialect.name == "sqlite" else moment


if __name__ == "__main__":
    main()
