"""Fixtures: a context whose clock runs (kiosks check expiry against real time), a topic
root of the test's own on the shared Mosquitto, and the app with its fleet consumer."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from openlocker.api.app import create_app
from openlocker.core.context import Context
from openlocker.fleet.mqtt.consumer import FleetConsumer
from tests.factories import Factory
from tests.fleet.mqtt.harness import SHARED_BROKER, forget, wait_for


class LiveClock:
    """The real time, plus an offset a test can add to (``advance``)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **kwargs: float) -> None:
        self.offset += timedelta(**kwargs)


@pytest.fixture
def clock() -> LiveClock:
    return LiveClock()


@pytest.fixture
def root() -> str:
    return f"test-{os.urandom(6).hex()}/openlocker/v1"


def fleet_settings(ctx: Context, root: str, broker: str = SHARED_BROKER) -> Context:
    """``ctx`` with the fleet channel on ``broker`` under ``root``, and short intervals."""
    settings = ctx.settings.model_copy(
        update={
            "mqtt_url": broker,
            "mqtt_topic_root": root,
            "mqtt_client_id": f"server-{root.split('/')[0]}",
            "fleet_flush_seconds": 0.02,
            "fleet_poll_seconds": 0.1,
            "fleet_leader_retry_seconds": 0.2,
            "fleet_command_retry_seconds": 1.0,
            "fleet_open_wait_seconds": 5.0,
        }
    )
    return dataclasses.replace(ctx, settings=settings)


@pytest.fixture
def fleet_ctx(ctx: Context, root: str) -> Context:
    return fleet_settings(ctx, root)


@pytest.fixture
def fleet_client(fleet_ctx: Context) -> Iterator[TestClient]:
    """The app with its fleet consumer leading and connected to the shared broker."""
    app = create_app(fleet_ctx, run_jobs=False, run_fleet=True)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        consumer: FleetConsumer = app.state.fleet
        wait_for(lambda: consumer.connected, 10)
        yield test_client
    settings = fleet_ctx.settings
    asyncio.run(forget(settings.mqtt_url or "", settings.mqtt_client_id, settings.mqtt_topic_root))


@pytest.fixture
def fleet_factory(fleet_ctx: Context, fleet_client: TestClient) -> Factory:
    return Factory(fleet_ctx, fleet_client)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "kiosk"
