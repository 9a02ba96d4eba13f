"""Organization and API key routes (operators)."""

from __future__ import annotations

from fastapi import APIRouter

from openlocker.api.deps import CtxDep, PrincipalDep
from openlocker.orgs import service
from openlocker.orgs.schemas import ApiKeyIn, ApiKeyOut, OrganizationIn, OrganizationOut

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
