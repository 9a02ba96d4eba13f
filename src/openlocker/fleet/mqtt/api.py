"""Routes: open a compartment's door remotely, and a site's kiosk as the fleet sees it."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from openlocker.api.deps import CtxDep, PrincipalDep
from openlocker.fleet.mqtt import service
from openlocker.fleet.mqtt.schemas import KioskOut, RemoteOpenIn, RemoteOpenOut

router = APIRouter(prefix="/v1", tags=["fleet"])
#: How often a waiting remote open looks for the kiosk's answer.
_ANSWER_POLL_SECONDS = 0.02


@router.post(
    "/compartments/{compartment_id}/open",
    responses={202: {"model": RemoteOpenOut, "description": "Queued; no answer yet"}},
)
async def open_compartment(
    compartment_id: str,
    body: RemoteOpenIn,
    request: Request,
    response: Response,
    ctx: CtxDep,
    principal: PrincipalDep,
) -> RemoteOpenOut:
    """Open a door remotely (operators): the command goes out over MQTT (and the HTTP sync),
    and the answer says whether the locker confirmed it, waiting up to
    ``OPENLOCKER_FLEET_OPEN_WAIT_SECONDS``. 202 when no answer came in that time."""
    principal.check_scope("admin")
    queued = await run_in_threadpool(
        service.request_remote_open, ctx, principal.actor, compartment_id, body.reason
    )
    fleet = getattr(request.app.state, "fleet", None)
    if fleet is not None:
        fleet.wake()
    wait = ctx.settings.fleet_open_wait_seconds if ctx.settings.mqtt_url else 0.0
    deadline = time.monotonic() + wait
    while True:
        answer = await run_in_threadpool(service.read_answer, ctx, queued)
        if answer.result != "pending" or time.monotonic() >= deadline:
            break
        await asyncio.sleep(_ANSWER_POLL_SECONDS)
    if answer.result == "pending":
        response.status_code = 202
    return answer


@router.get("/sites/{site_id}/kiosk")
def get_kiosk(site_id: str, ctx: CtxDep, principal: PrincipalDep) -> KioskOut:
    """The site's kiosk: online or offline, last heard, version, its compartment snapshot."""
    principal.check_scope("admin")
    return service.get_kiosk(ctx, site_id)
