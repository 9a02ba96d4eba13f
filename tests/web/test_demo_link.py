"""The demo prints a pickup link a newcomer can open."""

from __future__ import annotations

from fastapi.testclient import TestClient

from openlocker.core.context import Context
from openlocker.demo import sample_pickup_link, seed_demo


def test_the_demos_sample_link_opens_a_waiting_parcel(ctx: Context, client: TestClient) -> None:
    link = sample_pickup_link(ctx, seed_demo(ctx))
    assert link.startswith("https://lockers.test/p/")
    html = client.get(link.removeprefix("https://lockers.test")).text
    assert "Twoja paczka czeka" in html and "Warszawa Centralna" in html
