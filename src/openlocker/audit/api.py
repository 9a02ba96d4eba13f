"""Audit log routes (operators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from openlocker.api.deps import CtxDep, PrincipalDep
from openlocker.audit.schemas import CheckpointList, EventList
from openlocker.audit.service import list_checkpoints, list_events

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get("/events")
def events(
    ctx: CtxDep,
    principal: PrincipalDep,
    parcel_id: str | None = None,
    site_id: str | None = None,
    name: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EventList:
    """Audit events in chain order, oldest first; pass ``next_cursor`` on."""
    principal.check_scope("admin")
    return list_events(
        ctx, parcel_id=parcel_id, site_id=site_id, name=name, cursor=cursor, limit=limit
    )


@router.get("/audit/checkpoints")
def checkpoints(
    ctx: CtxDep,
    principal: PrincipalDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> CheckpointList:
    """Signed checkpoints of the chain, oldest first, and the public key that checks them:
    keep them elsewhere for ``openlocker audit verify --checkpoints``."""
    principal.check_scope("admin")
    return list_checkpoints(ctx, cursor=cursor, limit=limit)
