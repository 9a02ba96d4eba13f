"""Parcel routes: parse, call one service function, map the answer.

The routes are coroutines that run the service in a greenlet (``core.green``): each use
case is a few indexed statements, cheaper on the event loop than handed to a worker thread
and back, and its database waits let the loop serve other requests. Throughput comes from
worker processes (``openlocker serve --workers``), not threads. ``FAST_ROUTES`` answers
the lifecycle's three calls without FastAPI's per-request work (``api.fastpath``).
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from openlocker.api.deps import CtxDep, PrincipalDep
from openlocker.api.fastpath import FastRoute, Reply
from openlocker.core.green import run_in_greenlet
from openlocker.parcels import service
from openlocker.parcels.schemas import (
    AnnounceIn,
    ParcelList,
    ParcelOut,
    PickupIn,
    PickupOut,
    Status,
)

router = APIRouter(prefix="/v1", tags=["parcels"])
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def _headers(answer: service.Answer) -> dict[str, str]:
    return {"Idempotent-Replayed": "true"} if answer.replayed else {}


def _answer(response: Response, answer: service.Answer) -> ParcelOut:
    response.status_code = answer.status_code
    response.headers.update(_headers(answer))
    return answer.parcel


def _reply(answer: service.Answer) -> Reply:
    return answer.status_code, _headers(answer), answer.parcel


#: The same three calls for ``api.fastpath`` (which answers most of the lifecycle's traffic).
FAST_ROUTES = [
    FastRoute(
        "/v1/parcels",
        AnnounceIn,
        lambda ctx, principal, body, _, key: _reply(service.announce(ctx, principal, body, key)),
    ),
    FastRoute(
        "/v1/parcels/{parcel_id}/deposit",
        None,
        lambda ctx, principal, _, path, key: _reply(
            service.deposit(ctx, principal, path["parcel_id"], key)
        ),
    ),
    FastRoute(
        "/v1/sites/{site_id}/pickups",
        PickupIn,
        lambda ctx, principal, body, path, _: (
            200,
            {},
            service.pickup(ctx, principal, path["site_id"], body),
        ),
    ),
]


@router.post("/parcels", status_code=201)
async def announce_parcel(
    body: AnnounceIn,
    ctx: CtxDep,
    principal: PrincipalDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ParcelOut:
    """Announce a parcel for a site (optionally reserving a compartment)."""
    answer = await run_in_greenlet(service.announce, ctx, principal, body, idempotency_key)
    return _answer(response, answer)


@router.get("/parcels")
async def list_parcels(
    ctx: CtxDep,
    principal: PrincipalDep,
    status: Status | None = None,
    site_id: str | None = None,
    tracking_number: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ParcelList:
    """The caller's parcels, newest first, with cursor pagination."""
    return await run_in_greenlet(
        partial(
            service.list_parcels,
            status=status,
            site_id=site_id,
            tracking_number=tracking_number,
            cursor=cursor,
            limit=limit,
        ),
        ctx,
        principal,
    )


@router.get("/parcels/{parcel_id}")
async def get_parcel(parcel_id: str, ctx: CtxDep, principal: PrincipalDep) -> ParcelOut:
    return await run_in_greenlet(service.get_parcel, ctx, principal, parcel_id)


@router.post("/parcels/{parcel_id}/deposit")
async def deposit_parcel(
    parcel_id: str,
    ctx: CtxDep,
    principal: PrincipalDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ParcelOut:
    """Deposit the parcel; with ``notify: sender`` the answer carries the pickup credentials."""
    answer = await run_in_greenlet(service.deposit, ctx, principal, parcel_id, idempotency_key)
    return _answer(response, answer)


@router.post("/parcels/{parcel_id}/credentials")
async def reissue_credentials(parcel_id: str, ctx: CtxDep, principal: PrincipalDep) -> ParcelOut:
    """Void a deposited parcel's pickup credentials and issue new ones: returned under
    ``pickup`` with ``notify: sender``, else sent to the recipient again."""
    return await run_in_greenlet(service.reissue_credentials, ctx, principal, parcel_id)


@router.post("/parcels/{parcel_id}/cancel")
async def cancel_parcel(parcel_id: str, ctx: CtxDep, principal: PrincipalDep) -> ParcelOut:
    return await run_in_greenlet(service.cancel, ctx, principal, parcel_id)


@router.post("/parcels/{parcel_id}/return")
async def return_parcel(parcel_id: str, ctx: CtxDep, principal: PrincipalDep) -> ParcelOut:
    """Courier retrieval of an expired parcel."""
    return await run_in_greenlet(service.retrieve, ctx, principal, parcel_id)


@router.post("/sites/{site_id}/pickups", tags=["kiosk"])
async def pickup(site_id: str, body: PickupIn, ctx: CtxDep, principal: PrincipalDep) -> PickupOut:
    """A kiosk of the site opens the compartment for a PIN, QR or link token."""
    return await run_in_greenlet(service.pickup, ctx, principal, site_id, body)
