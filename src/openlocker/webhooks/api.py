"""Webhook endpoint and delivery routes (carriers and retailers; operators see all)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from openlocker.api.deps import CtxDep, PrincipalDep
from openlocker.webhooks import service
from openlocker.webhooks.schemas import (
    DeliveryList,
    DeliveryOut,
    EndpointChange,
    EndpointIn,
    EndpointList,
    EndpointOut,
    EndpointWithSecret,
)

router = APIRouter(prefix="/v1", tags=["webhooks"])


@router.post("/webhooks", status_code=201)
def create_webhook(body: EndpointIn, ctx: CtxDep, principal: PrincipalDep) -> EndpointWithSecret:
    """Register an endpoint for event types; the answer is the only time its secret is shown."""
    return service.create_endpoint(ctx, principal, body)


@router.get("/webhooks")
def list_webhooks(ctx: CtxDep, principal: PrincipalDep) -> EndpointList:
    return service.list_endpoints(ctx, principal)


@router.get("/webhooks/{endpoint_id}")
def get_webhook(endpoint_id: str, ctx: CtxDep, principal: PrincipalDep) -> EndpointOut:
    return service.get_endpoint(ctx, principal, endpoint_id)


@router.patch("/webhooks/{endpoint_id}")
def update_webhook(
    endpoint_id: str, body: EndpointChange, ctx: CtxDep, principal: PrincipalDep
) -> EndpointOut:
    """Change the URL or event types, or turn the endpoint off and on (``enabled``)."""
    return service.update_endpoint(ctx, principal, endpoint_id, body)


@router.delete("/webhooks/{endpoint_id}")
def delete_webhook(endpoint_id: str, ctx: CtxDep, principal: PrincipalDep) -> EndpointOut:
    return service.delete_endpoint(ctx, principal, endpoint_id)


@router.post("/webhooks/{endpoint_id}/rotate")
def rotate_webhook_secret(
    endpoint_id: str, ctx: CtxDep, principal: PrincipalDep
) -> EndpointWithSecret:
    """A new secret, shown once; the old one also signs until ``previous_secret_expires_at``."""
    return service.rotate_secret(ctx, principal, endpoint_id)


@router.get("/webhooks/{endpoint_id}/deliveries")
def list_webhook_deliveries(
    endpoint_id: str,
    ctx: CtxDep,
    principal: PrincipalDep,
    state: Literal["pending", "delivered", "failed"] | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DeliveryList:
    """The endpoint's deliveries, newest first, each with its attempts."""
    return service.list_deliveries(
        ctx, principal, endpoint_id, state=state, cursor=cursor, limit=limit
    )


@router.post("/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay")
def replay_webhook_delivery(
    endpoint_id: str, delivery_id: str, ctx: CtxDep, principal: PrincipalDep
) -> DeliveryOut:
    """Send a delivery again now, with fresh retries."""
    return service.replay_delivery(ctx, principal, endpoint_id, delivery_id)
