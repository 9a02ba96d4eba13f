"""The kiosk's local JSON routes for open deposit (``docs/kiosk.md``), mounted by
``kiosk.api``: a signed-in courier searches the site's directory, sees the sizes free here,
and opens a door for a recipient. Refusals are problem+json with the server's stable codes."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from openlocker.kiosk.agent import Agent
from openlocker.kiosk.open_deposit import OpenDeposits


class OpenDepositIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entry_id: str = Field(min_length=1, max_length=40)
    size: str = Field(min_length=1, max_length=8)
    #: Chosen by the screen for one tap on a size: a second tap answers as the first.
    request_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{8,64}$")


def _json(body: object) -> Response:
    return Response(
        orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"}
    )


def router(agent: Agent) -> APIRouter:
    """``GET /api/courier/directory?q=``, ``GET /api/courier/open-deposit/sizes`` and
    ``POST /api/courier/open-deposit`` over ``agent``."""
    deposits = OpenDeposits(agent)
    routes = APIRouter()

    @routes.get("/api/courier/directory")
    async def search(q: Annotated[str, Query(min_length=1, max_length=100)]) -> Response:
        """Recipients whose name or unit begins with ``q``'s words: id, name and unit."""
        return _json(await deposits.search(q))

    @routes.get("/api/courier/open-deposit/sizes")
    async def sizes() -> Response:
        """The sizes a free compartment here takes, smallest first."""
        return _json(deposits.sizes())

    @routes.post("/api/courier/open-deposit")
    async def open_deposit(body: OpenDepositIn) -> Response:
        """Open a door for a parcel for a directory entry; closing it deposits the parcel."""
        return _json(await deposits.deposit(body.entry_id, body.size, body.request_id))

    return routes
