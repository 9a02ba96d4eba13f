"""The kiosk's fulfilment routes (``docs/kiosk.md``, "Fulfilment"): order loading by store
staff, return drop-off, courier collection. Mounted by ``kiosk.api``; the use cases are in
``kiosk.fulfil``.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from openlocker.kiosk.agent import Agent
from openlocker.kiosk.fulfil import Fulfil


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoadIn(_Strict):
    #: The order's reference, or an item's tracking number ``<reference>#<n>`` (scanned).
    reference: str = Field(min_length=1, max_length=64)


class ReturnIn(_Strict):
    #: The return code, as printed or scanned (``XXXX-XXXX-XXXX-XXXX``).
    code: str = Field(min_length=16, max_length=40)


class ScanIn(_Strict):
    tracking_number: str = Field(min_length=1, max_length=64)


def router(agent: Agent) -> APIRouter:
    """The routes over ``agent`` (whose door closings the flows follow)."""
    fulfil = Fulfil(agent)
    fulfil.install()
    routes = APIRouter(prefix="/api")

    @routes.get("/orders")
    async def orders() -> dict[str, object]:
        """Orders the signed-in staff's retailer has waiting to be loaded here."""
        return fulfil.orders()

    @routes.post("/orders/load")
    async def load(body: LoadIn) -> dict[str, object]:
        """Load an order: its doors open one after another."""
        return await fulfil.load(body.reference)

    @routes.get("/orders/loading")
    async def loading() -> dict[str, object]:
        return fulfil.loading_view()

    @routes.post("/returns")
    async def drop_off(body: ReturnIn) -> dict[str, object]:
        """A customer drops a return by its code (needs the network)."""
        return await fulfil.drop_off(body.code)

    @routes.post("/collection")
    async def collection() -> dict[str, object]:
        """Start the signed-in courier's collection visit (needs the network)."""
        return await fulfil.collection()

    @routes.get("/collection/manifest")
    async def manifest() -> dict[str, object]:
        """How many parcels the signed-in courier would collect here (needs the network)."""
        return await fulfil.manifest()

    @routes.get("/collection")
    async def visit() -> dict[str, object]:
        return fulfil.collection_view()

    @routes.post("/collection/scan")
    async def scan(body: ScanIn) -> dict[str, object]:
        return await fulfil.scan_out(body.tracking_number)

    @routes.post("/collection/{parcel_id}/missing")
    async def missing(parcel_id: str) -> dict[str, object]:
        return await fulfil.missing(parcel_id)

    @routes.post("/collection/finish")
    async def finish() -> dict[str, object]:
        return fulfil.finish()

    return routes
