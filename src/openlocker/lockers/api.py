"""Site routes."""

from __future__ import annotations

from fastapi import APIRouter

from openlocker.api.deps import CtxDep, PrincipalDep
from openlocker.lockers import service
from openlocker.lockers.schemas import (
    CompartmentList,
    SiteIn,
    SiteList,
    SiteOut,
    Temperature,
    ZoneIn,
    ZoneList,
    ZoneOut,
)

router = APIRouter(prefix="/v1", tags=["sites"])


@router.get("/sites")
def list_sites(ctx: CtxDep, principal: PrincipalDep) -> SiteList:
    """Every site with its free compartments by size."""
    return service.list_sites(ctx)


@router.get("/sites/{site_id}")
def get_site(site_id: str, ctx: CtxDep, principal: PrincipalDep) -> SiteOut:
    """One site with free compartments by size (and every compartment, for operators)."""
    return service.get_site(ctx, site_id, with_compartments=principal.is_admin)


@router.get("/sites/{site_id}/compartments", tags=["kiosk"])
def list_compartments(site_id: str, ctx: CtxDep, principal: PrincipalDep) -> CompartmentList:
    """The site's compartments with each door's board and lock (operators, the site's kiosk)."""
    return service.list_compartments(ctx, principal, site_id)


@router.post("/sites", status_code=201)
def create_site(body: SiteIn, ctx: CtxDep, principal: PrincipalDep) -> SiteOut:
    """Create a site with its compartments (operators)."""
    principal.check_scope("admin")
    return service.create_site(ctx, principal.actor, body)


@router.get("/sites/{site_id}/zones")
def list_zones(site_id: str, ctx: CtxDep, principal: PrincipalDep) -> ZoneList:
    """Dwell and fault hours of each temperature zone of the site."""
    return service.list_zones(ctx, site_id)


@router.put("/sites/{site_id}/zones/{temperature}")
def set_zone(
    site_id: str, temperature: Temperature, body: ZoneIn, ctx: CtxDep, principal: PrincipalDep
) -> ZoneOut:
    """Set a zone's dwell and fault hours (operators)."""
    principal.check_scope("admin")
    return service.set_zone(ctx, principal.actor, site_id, temperature, body)
