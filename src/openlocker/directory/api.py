"""Directory routes: the operator's entries, the kiosk's search and open deposit."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from openlocker.api.deps import CtxDep, PrincipalDep
from openlocker.core.green import run_in_greenlet
from openlocker.directory import service
from openlocker.directory.schemas import (
    DirectorySearch,
    EntryChange,
    EntryIn,
    EntryList,
    EntryOut,
    OpenDepositIn,
    OpenDepositOut,
)
from openlocker.parcels.api import IdempotencyKey

router = APIRouter(prefix="/v1/sites/{site_id}", tags=["directory"])


@router.get("/directory/entries")
def list_entries(
    site_id: str,
    ctx: CtxDep,
    principal: PrincipalDep,
    q: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    active: bool | None = None,
    unit: Annotated[str | None, Query(max_length=40)] = None,
    external_id: Annotated[str | None, Query(max_length=200)] = None,
    email: Annotated[str | None, Query(max_length=254)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> EntryList:
    """The site's directory, newest first (operators and the site's directory keys)."""
    return service.list_entries(
        ctx,
        principal,
        site_id,
        q=q,
        active=active,
        unit=unit,
        external_id=external_id,
        email=email,
        cursor=cursor,
        limit=limit,
    )


@router.post("/directory/entries", status_code=201)
def create_entry(site_id: str, body: EntryIn, ctx: CtxDep, principal: PrincipalDep) -> EntryOut:
    return service.entry_view(service.create_entry(ctx, principal, site_id, body))


@router.get("/directory/entries/{entry_id}")
def get_entry(site_id: str, entry_id: str, ctx: CtxDep, principal: PrincipalDep) -> EntryOut:
    return service.entry_view(service.get_entry(ctx, principal, site_id, entry_id))


@router.patch("/directory/entries/{entry_id}")
def update_entry(
    site_id: str, entry_id: str, body: EntryChange, ctx: CtxDep, principal: PrincipalDep
) -> EntryOut:
    """Change fields of an entry (``active: false`` keeps it but hides it from couriers)."""
    return service.entry_view(service.update_entry(ctx, principal, site_id, entry_id, body))


@router.delete("/directory/entries/{entry_id}", status_code=204)
def delete_entry(site_id: str, entry_id: str, ctx: CtxDep, principal: PrincipalDep) -> Response:
    """Remove an entry and its personal data."""
    service.delete_entry(ctx, principal, site_id, entry_id)
    return Response(status_code=204)


@router.get("/directory", tags=["kiosk"])
def search_directory(
    site_id: str,
    ctx: CtxDep,
    principal: PrincipalDep,
    q: Annotated[str, Query(min_length=1, max_length=100)],
    limit: Annotated[int, Query(ge=1, le=service.MAX_SEARCH_LIMIT)] = service.SEARCH_LIMIT,
) -> DirectorySearch:
    """The site's kiosk finds a recipient by the start of their name or unit."""
    return service.search(ctx, principal, site_id, q, limit=limit)


@router.post("/open-deposits", status_code=201, tags=["kiosk"])
async def open_deposit(
    site_id: str,
    body: OpenDepositIn,
    ctx: CtxDep,
    principal: PrincipalDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> OpenDepositOut:
    """A courier at the site's kiosk drops a parcel for a directory entry: a compartment
    opens, the recipient is sent their pickup code."""
    answer = await run_in_greenlet(
        service.open_deposit, ctx, principal, site_id, body, idempotency_key
    )
    response.status_code = answer.status_code
    if answer.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return answer.deposit


@router.delete("/open-deposits/{parcel_id}", status_code=204, tags=["kiosk"])
def cancel_open_deposit(
    site_id: str, parcel_id: str, ctx: CtxDep, principal: PrincipalDep
) -> Response:
    """The kiosk calls off an open deposit (``confirm: door_closed``) that never went in."""
    service.cancel_open_deposit(ctx, principal, site_id, parcel_id)
    return Response(status_code=204)
