"""Outbox routes for operators: what is waiting, what died, and sending a dead one again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from openlocker.api.deps import CtxDep, PrincipalDep
from openlocker.notify import service
from openlocker.notify.schemas import OutboxList, OutboxOut, State

router = APIRouter(prefix="/v1", tags=["outbox"])


@router.get("/outbox")
def list_outbox(
    ctx: CtxDep,
    principal: PrincipalDep,
    state: State | None = None,
    topic: Annotated[str | None, Query(max_length=80)] = None,
    parcel_id: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> OutboxList:
    """Outbox messages, newest first (``state=dead``: those that need an operator)."""
    principal.check_scope("admin")
    return service.list_outbox(
        ctx, state=state, topic=topic, parcel_id=parcel_id, cursor=cursor, limit=limit
    )


@router.get("/outbox/{outbox_id}")
def get_outbox_message(outbox_id: str, ctx: CtxDep, principal: PrincipalDep) -> OutboxOut:
    """One message with its delivery attempts."""
    principal.check_scope("admin")
    return service.get_outbox_message(ctx, outbox_id)


@router.post("/outbox/{outbox_id}/retry")
def retry(outbox_id: str, ctx: CtxDep, principal: PrincipalDep) -> OutboxOut:
    """Send a dead message again now (channels that took it already are left out)."""
    principal.check_scope("admin")
    return service.retry(ctx, principal.actor, outbox_id)
