"""Return and collection routes: parse, call one service function, map the answer."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Body, Query

from openlocker.api.deps import CtxDep, PrincipalDep
from openlocker.core.green import run_in_greenlet
from openlocker.parcels.service import parcel_view
from openlocker.returns import service
from openlocker.returns.schemas import (
    DropOffIn,
    DropOffOut,
    Manifest,
    ReturnIn,
    ReturnOut,
    ScanIn,
    ScanOut,
)

router = APIRouter(prefix="/v1", tags=["returns"])


@router.post("/returns", status_code=201)
async def issue_return(body: ReturnIn, ctx: CtxDep, principal: PrincipalDep) -> ReturnOut:
    """Issue a return code (shown in this answer only) for a drop-off at any locker."""
    return await run_in_greenlet(service.issue_return, ctx, principal, body)


@router.get("/returns/{return_id}")
async def get_return(return_id: str, ctx: CtxDep, principal: PrincipalDep) -> ReturnOut:
    return await run_in_greenlet(service.get_return, ctx, principal, return_id)


@router.post("/sites/{site_id}/returns", status_code=201, tags=["kiosk"])
async def drop_off(
    site_id: str, body: DropOffIn, ctx: CtxDep, principal: PrincipalDep
) -> DropOffOut:
    """The site's kiosk takes a return: a free compartment of its size opens."""
    return await run_in_greenlet(
        partial(service.drop_off, door=body.door), ctx, principal, site_id, body.code
    )


@router.get("/sites/{site_id}/collection")
async def collection_manifest(
    site_id: str,
    ctx: CtxDep,
    principal: PrincipalDep,
    courier_id: Annotated[str | None, Query(max_length=40)] = None,
) -> Manifest:
    """What a courier collects here for their organization: returns and expired parcels
    (the site's kiosk asks for the courier signed in there: ``courier_id``)."""
    return await run_in_greenlet(
        partial(service.collection_manifest, courier_id=courier_id), ctx, principal, site_id
    )


@router.post("/sites/{site_id}/collection/{parcel_id}")
async def scan_out(
    site_id: str,
    parcel_id: str,
    ctx: CtxDep,
    principal: PrincipalDep,
    body: Annotated[ScanIn | None, Body()] = None,
) -> ScanOut:
    """Scan a manifest's parcel out (its door opens), or report it ``missing``."""
    body = body or ScanIn()
    outcome = body.outcome
    parcel = await run_in_greenlet(
        partial(service.scan_out, courier_id=body.courier_id, door=body.door),
        ctx,
        principal,
        site_id,
        parcel_id,
        outcome,
    )
    view = parcel_view(parcel)
    return ScanOut(
        parcel_id=view.id,
        status=view.status,
        outcome=outcome,
        compartment=view.compartment,
    )
