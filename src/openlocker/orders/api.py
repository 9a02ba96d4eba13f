"""Order routes: parse, call one service function, map the answer (docs/orders.md)."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Body, Query, Response

from openlocker.api.deps import CtxDep, PrincipalDep
from openlocker.core.green import run_in_greenlet
from openlocker.lockers.schemas import Temperature
from openlocker.orders import service
from openlocker.orders.schemas import (
    LeftIn,
    LoadIn,
    OrderIn,
    OrderList,
    OrderOut,
    OrderStatus,
    ZoneFaultIn,
    ZoneFaultOut,
)
from openlocker.parcels.api import IdempotencyKey

router = APIRouter(prefix="/v1", tags=["orders"])


@router.post("/orders", status_code=201)
async def create_order(
    body: OrderIn,
    ctx: CtxDep,
    principal: PrincipalDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> OrderOut:
    """Reserve compartments, in the right zones, for every item of an order (retailers)."""
    answer = await run_in_greenlet(service.create_order, ctx, principal, body, idempotency_key)
    response.status_code = answer.status_code
    if answer.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return answer.order


@router.get("/orders")
async def list_orders(
    ctx: CtxDep,
    principal: PrincipalDep,
    status: OrderStatus | None = None,
    site_id: str | None = None,
    reference: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> OrderList:
    """The caller's orders, newest first, with cursor pagination."""
    return await run_in_greenlet(
        partial(
            service.list_orders,
            status=status,
            site_id=site_id,
            reference=reference,
            cursor=cursor,
            limit=limit,
        ),
        ctx,
        principal,
    )


@router.get("/orders/{order_id}")
async def get_order(order_id: str, ctx: CtxDep, principal: PrincipalDep) -> OrderOut:
    return await run_in_greenlet(service.get_order, ctx, principal, order_id)


@router.post("/orders/{order_id}/load")
async def load_order(
    order_id: str,
    ctx: CtxDep,
    principal: PrincipalDep,
    body: Annotated[LoadIn | None, Body()] = None,
) -> OrderOut:
    """Load one item (``parcel_id``) or every item left; the last one makes the order
    ready (with ``notify: sender`` the answer carries ``pickup``)."""
    parcel_id = body.parcel_id if body is not None else None
    return await run_in_greenlet(service.load_order, ctx, principal, order_id, parcel_id)


@router.post("/orders/{order_id}/credentials")
async def reissue_credentials(order_id: str, ctx: CtxDep, principal: PrincipalDep) -> OrderOut:
    """Void a ready order's credentials and issue new ones for the items still waiting."""
    return await run_in_greenlet(service.reissue_credentials, ctx, principal, order_id)


@router.post("/orders/{order_id}/cancel")
async def cancel_order(order_id: str, ctx: CtxDep, principal: PrincipalDep) -> OrderOut:
    """Cancel an order none of whose items is loaded yet."""
    return await run_in_greenlet(service.cancel_order, ctx, principal, order_id)


@router.post("/orders/{order_id}/items/{parcel_id}/left", tags=["kiosk"])
async def report_left(
    order_id: str, parcel_id: str, body: LeftIn, ctx: CtxDep, principal: PrincipalDep
) -> OrderOut:
    """The site's kiosk: an item of a pickup is still in its compartment; it waits again."""
    return await run_in_greenlet(
        service.report_left, ctx, principal, order_id, parcel_id, body.reason
    )


@router.post("/sites/{site_id}/zones/{temperature}/fault", tags=["kiosk"])
async def report_zone_fault(
    site_id: str,
    temperature: Temperature,
    ctx: CtxDep,
    principal: PrincipalDep,
    body: Annotated[ZoneFaultIn | None, Body()] = None,
) -> ZoneFaultOut:
    """A zone cannot hold its temperature: its parcels' deadlines move earlier."""
    measured = body.measured_celsius if body is not None else None
    return await run_in_greenlet(
        service.report_zone_fault, ctx, principal, site_id, temperature, measured
    )
