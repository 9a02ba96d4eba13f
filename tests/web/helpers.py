"""What the pickup page's tests share: a parcel with its link token, the kiosk's code."""

from __future__ import annotations

from typing import Any

import httpx

from openlocker.access import presence
from openlocker.core.context import Context
from openlocker.core.ids import new_id


def link_token(parcel: dict[str, Any]) -> str:
    """The token of a deposited parcel's pickup link."""
    token: str = parcel["pickup"]["link"].rsplit("/p/", 1)[1]
    return token


def kiosk_code(ctx: Context, site_id: str) -> str:
    """The presence code the site's kiosk shows now (on the context's clock)."""
    return presence.current_code(ctx.keyring, site_id, ctx.clock()).code


def wrong_code(ctx: Context, site_id: str) -> str:
    """A code that is neither this minute's nor the last one's."""
    now = presence.minute_of(ctx.clock())
    valid = {presence.presence_code(ctx.keyring, site_id, m) for m in (now, now - 1)}
    return next(f"{n:06d}" for n in range(10**6) if f"{n:06d}" not in valid)


def deposit_through(base: str, carrier_headers: dict[str, str], site_id: str) -> dict[str, Any]:
    """A parcel announced and deposited by a running server, on its clock (the fixtures'
    clock is frozen in the past)."""
    with httpx.Client(base_url=base, headers=carrier_headers, timeout=30) as api:
        announced = api.post(
            "/v1/parcels",
            json={
                "tracking_number": new_id("PG"),
                "site_id": site_id,
                "size": "S",
                "notify": "sender",
            },
        )
        assert announced.status_code == 201, announced.text
        deposited = api.post(f"/v1/parcels/{announced.json()['id']}/deposit")
        assert deposited.status_code == 200, deposited.text
        parcel: dict[str, Any] = deposited.json()
        return parcel


def served_code(base: str, kiosk_headers: dict[str, str], site_id: str) -> str:
    """The presence code a running server gives the site's kiosk."""
    answer = httpx.get(f"{base}/v1/sites/{site_id}/presence-code", headers=kiosk_headers)
    assert answer.status_code == 200, answer.text
    code: str = answer.json()["code"]
    return code


def server_log(ctx: Context) -> str:
    """Everything the servers this test started logged."""
    return "".join(p.read_text() for p in ctx.settings.data_folder.glob("serve-*.log"))
