"""Webhook tests: a receiver on 127.0.0.1, endpoints on loopback allowed, a short timeout,
and a clock that starts now (``standardwebhooks`` checks timestamps against real time)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openlocker.core.clock import FrozenClock
from openlocker.core.context import Context
from openlocker.webhooks.delivery import Dispatcher
from tests.factories import Org
from tests.webhooks.receiver import Receiver


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture(autouse=True)
def _loopback_endpoints(request: pytest.FixtureRequest) -> None:
    if "ctx" in request.fixturenames:
        ctx: Context = request.getfixturevalue("ctx")
        ctx.settings.webhooks_allow_private = True
        ctx.settings.webhooks_timeout_seconds = 2.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver().running() as running:
        yield running


def register(client: TestClient, org: Org, url: str, events: list[str] | None = None) -> Any:
    """Register an endpoint; its JSON, with the secret."""
    answer = client.post(
        "/v1/webhooks",
        json={"url": url, "events": events or ["parcel.announced", "parcel.deposited"]},
        headers=org.headers,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def deliver(ctx: Context) -> list[str]:
    """One step of the delivery job, waiting for its sends: the states they left."""

    async def once() -> list[str]:
        dispatcher = Dispatcher(ctx)
        try:
            return await dispatcher.run_once()
        finally:
            await dispatcher.aclose()

    return asyncio.run(once())
