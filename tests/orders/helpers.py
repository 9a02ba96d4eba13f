"""Sites with temperature zones and orders for them, in one line each."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from httpx import Response
from sqlalchemy import select

from openlocker.audit.models import OutboxMessage
from openlocker.core.context import Context
from openlocker.lockers.schemas import CompartmentIn, SiteIn
from openlocker.lockers.service import do_create_site
from tests.factories import TEST_ACTOR, Factory, Org

_count = iter(range(1, 10**6))


def zoned_site(
    ctx: Context, zones: dict[str, str], *, lat: float = 52.23, lon: float = 21.01
) -> str:
    """A site with one compartment per letter of ``zones[temperature]`` (X means XL)."""
    compartments = [
        CompartmentIn(
            label=f"{temperature[0].upper()}{i + 1}",
            size="XL" if size == "X" else size,
            temperature=temperature,  # type: ignore[arg-type]
            floor_height_mm=300,
        )
        for temperature, sizes in zones.items()
        for i, size in enumerate(sizes)
    ]
    spec = SiteIn(
        name=f"Zoned {next(_count)}",
        address="Test street 2",
        lat=lat,
        lon=lon,
        compartments=compartments,
    )
    with ctx.db.transaction() as session:
        return do_create_site(session, ctx, TEST_ACTOR, spec).id


def retailer(factory: Factory) -> Org:
    return factory.org("retailer")


def order_body(
    ctx: Context, site_id: str, items: list[dict[str, Any]], **fields: Any
) -> dict[str, Any]:
    now = ctx.clock()
    body: dict[str, Any] = {
        "reference": f"ORD-{next(_count)}",
        "site_id": site_id,
        "items": items,
        "notify": "sender",
        "ready_from": (now + timedelta(hours=1)).isoformat(),
        "collect_by": (now + timedelta(hours=48)).isoformat(),
    }
    body.update(fields)
    return body


def place(
    factory: Factory, org: Org, site_id: str, items: list[dict[str, Any]], **fields: Any
) -> Response:
    return factory.client.post(
        "/v1/orders", json=order_body(factory.ctx, site_id, items, **fields), headers=org.headers
    )


def outbox(ctx: Context, topic: str | None = None) -> list[OutboxMessage]:
    with ctx.db.read() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.seq)
        if topic is not None:
            query = query.where(OutboxMessage.topic == topic)
        return list(session.scalars(query))


def events(ctx: Context) -> list[str]:
    """The payload ``event`` of every webhook queued, in order."""
    return [m.payload["event"] for m in outbox(ctx, "webhook.carrier")]
