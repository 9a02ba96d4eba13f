"""The real kiosk agent on the fleet channel, against a real ``openlocker serve`` whose
consumer leads on a broker (the shared Mosquitto under a topic root of the test's own, or a
``Mosquitto`` of the test's own): what the kiosk's fleet tests share."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from openlocker.core.context import Context
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.base import BoardDriver
from openlocker.kiosk.boards.sim import SimBoard
from openlocker.kiosk.config import KioskSettings
from openlocker.kiosk.run import KioskThread
from tests.fleet.mqtt.harness import SHARED_BROKER, forget
from tests.kiosk.e2e import Locker, kiosk_settings
from tests.servers import serving


@contextmanager
def fleet_server(
    ctx: Context,
    monkeypatch: pytest.MonkeyPatch,
    root: str,
    *,
    broker: str = SHARED_BROKER,
    **settings: float,
) -> Iterator[str]:
    """``openlocker serve`` (one worker) with its consumer on ``broker`` under ``root``, short
    intervals, and ``settings`` (``silence_seconds=1`` is ``OPENLOCKER_FLEET_SILENCE_SECONDS``);
    yields its base URL. Its broker session is dropped afterwards."""
    client_id = f"server-{os.urandom(4).hex()}"
    env = {
        "OPENLOCKER_MQTT_URL": broker,
        "OPENLOCKER_MQTT_TOPIC_ROOT": root,
        "OPENLOCKER_MQTT_CLIENT_ID": client_id,
        "OPENLOCKER_FLEET_FLUSH_SECONDS": "0.02",
        "OPENLOCKER_FLEET_POLL_SECONDS": "0.1",
        "OPENLOCKER_FLEET_LEADER_RETRY_SECONDS": "0.2",
        "OPENLOCKER_FLEET_COMMAND_RETRY_SECONDS": "1",
        "OPENLOCKER_FLEET_OPEN_WAIT_SECONDS": "5",
    }
    env |= {f"OPENLOCKER_FLEET_{name.upper()}": str(value) for name, value in settings.items()}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        with serving(ctx, workers=1, log_level="INFO") as base:
            yield base
    finally:
        asyncio.run(forget(broker, client_id, root))


def fleet_settings(
    tmp: Path, site: str, key: str, base: str, *, broker: str, root: str, **timings: Any
) -> KioskSettings:
    """A kiosk of ``site`` on the fleet channel, syncing every 0.2 s unless told."""
    heartbeat_s = timings.pop("heartbeat_s", 0.2)
    return kiosk_settings(
        tmp,
        site,
        key,
        base,
        mqtt_url=broker,
        mqtt_topic_root=root,
        heartbeat_s=heartbeat_s,
        **timings,
    )


@contextmanager
def fleet_locker(
    settings: KioskSettings, bank: Bank, drivers: Sequence[BoardDriver] | None = None
) -> Iterator[Locker]:
    """The kiosk of ``settings`` in a thread, on a sim board of ``bank`` unless ``drivers``
    are given; afterwards its broker session and retained messages are dropped."""
    try:
        with KioskThread(
            settings, drivers=drivers or [SimBoard(bank, poll_interval=0.02)]
        ) as kiosk:
            yield Locker(kiosk, bank)
    finally:
        asyncio.run(
            forget(
                settings.mqtt_url or SHARED_BROKER,
                f"kiosk-{settings.site_id}",
                settings.mqtt_topic_root,
                settings.site_id,
            )
        )


def kiosk_of(base: str, site: str, operator: dict[str, str]) -> dict[str, Any]:
    """``GET /v1/sites/{site}/kiosk`` as the operator sees it."""
    answer = httpx.get(f"{base}/v1/sites/{site}/kiosk", headers=operator, timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def remote_open(
    base: str, compartment_id: str, operator: dict[str, str], reason: str = "test"
) -> httpx.Response:
    return httpx.post(
        f"{base}/v1/compartments/{compartment_id}/open",
        json={"reason": reason},
        headers=operator,
        timeout=40,
    )
