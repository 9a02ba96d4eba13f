"""A burst of concurrent wrong PINs against a real server with two worker processes.

Every PIN is judged holding its bucket's lock, so however the burst is spread over workers
and connections, exactly as many wrong PINs are judged as the schedule allows.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, text

from openlocker.access.attempts import FREE_FAILURES
from openlocker.audit.models import AuditEvent
from openlocker.core.context import Context
from tests.factories import Factory
from tests.servers import serving

BURST = 60


async def _burst(base: str, site: str, kiosk_key: str, pin: str) -> Counter[int]:
    async with httpx.AsyncClient(
        base_url=base,
        headers={"Authorization": f"Bearer {kiosk_key}"},
        limits=httpx.Limits(max_connections=BURST),
        timeout=60,
    ) as client:
        answers = await asyncio.gather(
            *(client.post(f"/v1/sites/{site}/pickups", json={"pin": pin}) for _ in range(BURST))
        )
    return Counter(answer.status_code for answer in answers)


def test_a_burst_of_wrong_pins_gets_only_the_free_ones_judged(
    factory: Factory, ctx: Context
) -> None:
    carrier = factory.org()
    site = factory.site("SS")
    kiosk = factory.kiosk(site)

    with serving(ctx, workers=2) as base:
        # Deposited through the server, on its clock (the fixtures' clock is frozen).
        with httpx.Client(base_url=base, headers=carrier.headers) as api:
            announced = api.post(
                "/v1/parcels",
                json={
                    "tracking_number": "BURST-1",
                    "site_id": site,
                    "size": "S",
                    "notify": "sender",
                },
            ).json()
            pickup = api.post(f"/v1/parcels/{announced['id']}/deposit").json()["pickup"]
        wrong = f"{(int(pickup['pin']) + 1) % 10**8:08d}"
        first = asyncio.run(_burst(base, site, kiosk.key, wrong))
        # The lockout runs out (as if its 30 s had passed): the next wrong PIN is judged and
        # locks again, for longer; the rest of the burst is refused.
        with ctx.db.engine.begin() as conn:
            conn.execute(
                text("UPDATE pin_attempts SET locked_until = :past WHERE site_id = :site"),
                {"past": datetime.now(UTC) - timedelta(seconds=1), "site": site},
            )
        second = asyncio.run(_burst(base, site, kiosk.key, wrong))
        # During the lockout the QR code still opens the door.
        qr = httpx.post(
            f"{base}/v1/sites/{site}/pickups",
            json={"qr": pickup["qr"]},
            headers=kiosk.headers,
        )

    assert first == {403: FREE_FAILURES, 429: BURST - FREE_FAILURES}
    assert second == {403: 1, 429: BURST - 1}
    assert qr.status_code == 200
    with ctx.db.read() as session:
        names = Counter(
            session.scalars(select(AuditEvent.name).where(AuditEvent.site_id == site)).all()
        )
    assert names["pickup.failed"] == FREE_FAILURES + 1
    # One audit event per lockout, not one per refused PIN.
    assert names["pickup.refused"] == 2
