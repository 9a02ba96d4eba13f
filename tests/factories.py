"""Factories: a network, keys and parcels in one line each."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

from openlocker.core.context import Actor, Context
from openlocker.lockers.schemas import CompartmentIn, SiteIn
from openlocker.lockers.service import do_create_site
from openlocker.orgs.service import do_create_api_key, do_create_organization

TEST_ACTOR = Actor("system:test")
_numbers = itertools.count(1)


@dataclass
class Org:
    id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


class Factory:
    def __init__(self, ctx: Context, client: TestClient) -> None:
        self.ctx = ctx
        self.client = client

    def org(
        self, kind: str = "carrier", scopes: tuple[str, ...] = ("parcels:write", "parcels:read")
    ) -> Org:
        with self.ctx.db.transaction() as session:
            org = do_create_organization(
                session, self.ctx, TEST_ACTOR, f"{kind} {next(_numbers)}", kind
            )
            session.flush()
            _, key = do_create_api_key(session, self.ctx, TEST_ACTOR, org.id, "test", list(scopes))
        return Org(org.id, key)

    def operator(self) -> Org:
        return self.org("operator", ("admin",))

    def kiosk(self, site_id: str) -> Org:
        return self.org("operator", (f"kiosk:{site_id}",))

    def site(
        self,
        sizes: str = "SMLX",
        *,
        lat: float = 52.2297,
        lon: float = 21.0122,
        temperature: str = "ambient",
        floor_height_mm: int = 300,
        dwell_hours: int = 72,
        name: str | None = None,
    ) -> str:
        """A site with one compartment per letter of ``sizes`` (X means XL)."""
        compartments = [
            CompartmentIn(
                label=f"A{i + 1}",
                size="XL" if s == "X" else s,
                temperature=temperature,
                floor_height_mm=floor_height_mm,  # type: ignore[arg-type]
            )
            for i, s in enumerate(sizes)
        ]
        spec = SiteIn(
            name=name or f"Site {next(_numbers)}",
            address="Test street 1",
            lat=lat,
            lon=lon,
            dwell_hours=dwell_hours,
            compartments=compartments,
        )
        with self.ctx.db.transaction() as session:
            return do_create_site(session, self.ctx, TEST_ACTOR, spec).id

    def announce(self, org: Org, site_id: str, **fields: Any) -> Response:
        body: dict[str, Any] = {
            "tracking_number": f"TN{next(_numbers):08d}",
            "site_id": site_id,
            "size": "S",
            "notify": "sender",
        }
        body.update(fields)
        return self.client.post("/v1/parcels", json=body, headers=org.headers)

    def deposited(self, org: Org, site_id: str, **fields: Any) -> dict[str, Any]:
        """An announced and deposited parcel's JSON, with its ``pickup`` credentials."""
        announced = self.announce(org, site_id, **fields)
        assert announced.status_code == 201, announced.text
        deposited = self.client.post(
            f"/v1/parcels/{announced.json()['id']}/deposit", headers=org.headers
        )
        assert deposited.status_code == 200, deposited.text
        parcel: dict[str, Any] = deposited.json()
        return parcel

    def pick_up(self, site_id: str, parcel: dict[str, Any], by: str = "qr") -> Response:
        """Pick ``parcel`` up at its kiosk with one of its credentials (``pin``, ``qr``)."""
        return self.client.post(
            f"/v1/sites/{site_id}/pickups",
            json={by: parcel["pickup"][by]},
            headers=self.kiosk(site_id).headers,
        )
