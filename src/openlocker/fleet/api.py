"""Routes of the locker channel: courier codes, a kiosk's sync and event push, alarms."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from openlocker.api.deps import CtxDep, PrincipalDep
from openlocker.fleet import alarms, events, service, sync
from openlocker.fleet.schemas import (
    AlarmKind,
    AlarmList,
    AlarmOut,
    CourierCreated,
    CourierIn,
    CourierList,
    CourierOut,
    EventResults,
    EventsIn,
    SyncOut,
)

router = APIRouter(prefix="/v1")


@router.post("/couriers", status_code=201, tags=["couriers"])
def create_courier(body: CourierIn, ctx: CtxDep, principal: PrincipalDep) -> CourierCreated:
    """A courier code for kiosks' courier mode; the answer is the only time it is shown."""
    return service.create_courier(ctx, principal, body)


@router.get("/couriers", tags=["couriers"])
def list_couriers(
    ctx: CtxDep,
    principal: PrincipalDep,
    active: bool | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CourierList:
    """The organization's courier codes, newest first (never the codes)."""
    return service.list_couriers(ctx, principal, active=active, cursor=cursor, limit=limit)


@router.delete("/couriers/{courier_id}", tags=["couriers"])
def deactivate_courier(courier_id: str, ctx: CtxDep, principal: PrincipalDep) -> CourierOut:
    """Deactivate a courier code: kiosks refuse it once they have synced."""
    return service.deactivate_courier(ctx, principal, courier_id)


@router.get("/sites/{site_id}/kiosk/sync", tags=["kiosk"], response_model=SyncOut)
def kiosk_sync(
    site_id: str,
    ctx: CtxDep,
    principal: PrincipalDep,
    cursor: Annotated[str | None, Query(max_length=120)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> Response:
    """What the site's kiosk needs since ``cursor`` (none: a full snapshot, paged); see
    docs/kiosk-sync.md."""
    answer = sync.sync(ctx, principal, site_id, cursor, limit)
    # Serialized once, by pydantic's core: a first sync carries thousands of rows.
    return Response(answer.model_dump_json(), media_type="application/json")


@router.post("/sites/{site_id}/kiosk/events", tags=["kiosk"])
def kiosk_events(
    site_id: str, body: EventsIn, ctx: CtxDep, principal: PrincipalDep
) -> EventResults:
    """The kiosk's events, applied in order, each once by its id; one result per event
    (``applied``, ``duplicate``, ``conflict``, ``rejected``); see docs/kiosk-sync.md."""
    return events.push_events(ctx, principal, site_id, body)


@router.get("/alarms", tags=["alarms"])
def list_alarms(
    ctx: CtxDep,
    principal: PrincipalDep,
    site_id: str | None = None,
    kind: AlarmKind | None = None,
    state: Literal["open", "closed"] | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AlarmList:
    """Alarms, newest first (operators); filters ``site_id``, ``kind``, ``state``."""
    return alarms.list_alarms(
        ctx, principal, site_id=site_id, kind=kind, state=state, cursor=cursor, limit=limit
    )


@router.post("/alarms/{alarm_id}/acknowledge", tags=["alarms"])
def acknowledge_alarm(alarm_id: str, ctx: CtxDep, principal: PrincipalDep) -> AlarmOut:
    """An operator takes the alarm: it is closed (``acknowledged``)."""
    return alarms.acknowledge_alarm(ctx, principal, alarm_id)
