"""Organization and API key routes (operators)."""

from __future__ import annotations

from fastapi import APIRouter

from openlocker.api.deps import CtxDep, PrincipalDep
from openlocker.orgs import service
from openlocker.orgs.schemas import (
    ApiKeyIn,
    ApiKeyInfo,
    ApiKeyList,
    ApiKeyOut,
    OrganizationIn,
    OrganizationOut,
)

router = APIRouter(prefix="/v1", tags=["organizations"])


@router.post("/organizations", status_code=201)
def create_organization(
    body: OrganizationIn, ctx: CtxDep, principal: PrincipalDep
) -> OrganizationOut:
    principal.check_scope("admin")
    return service.create_organization(ctx, principal.actor, body.name, body.kind)


@router.post("/organizations/{org_id}/keys", status_code=201)
def create_api_key(org_id: str, body: ApiKeyIn, ctx: CtxDep, principal: PrincipalDep) -> ApiKeyOut:
    """Create an API key; the answer is the only time the key is shown."""
    principal.check_scope("admin")
    return service.create_api_key(ctx, principal.actor, org_id, body.name, body.scopes)


@router.get("/organizations/{org_id}/keys")
def list_api_keys(org_id: str, ctx: CtxDep, principal: PrincipalDep) -> ApiKeyList:
    """An organization's keys (never the keys themselves)."""
    principal.check_scope("admin")
    return service.list_api_keys(ctx, org_id)


@router.delete("/organizations/{org_id}/keys/{key_id}")
def revoke_api_key(org_id: str, key_id: str, ctx: CtxDep, principal: PrincipalDep) -> ApiKeyInfo:
    """Revoke a key; every server process refuses it within 10 seconds."""
    principal.check_scope("admin")
    return service.revoke_api_key(ctx, principal.actor, org_id, key_id)
