"""Organizations, API keys and who a request is."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from openlocker.audit.service import record
from openlocker.core.context import Actor, Context
from openlocker.core.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from openlocker.core.ids import new_id
from openlocker.core.sql import Tx
from openlocker.orgs.models import ORG_KINDS, ApiKey, Organization
from openlocker.orgs.schemas import ApiKeyInfo, ApiKeyList, ApiKeyOut, OrganizationOut

STATIC_SCOPES = ("parcels:write", "parcels:read", "webhooks", "admin")
KEY_PREFIX = "olk"


@dataclass(frozen=True)
class Principal:
    """The organization behind an API key, and what the key may do."""

    org_id: str
    org_kind: str
    key_id: str
    scopes: frozenset[str]

    @property
    def actor(self) -> Actor:
        return Actor(f"key:{self.key_id}", self.org_id)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def check_scope(self, scope: str) -> None:
        """Raise ``forbidden`` unless the key has ``scope`` (``admin`` has every scope)."""
        if scope not in self.scopes and not self.is_admin:
            raise Forbidden(f"This API key lacks the scope {scope!r}.", code="missing_scope")

    def check_kiosk(self, site_id: str) -> None:
        """Raise ``forbidden`` unless the key is the kiosk key of ``site_id``."""
        if f"kiosk:{site_id}" not in self.scopes:
            raise Forbidden("This API key is not a kiosk key of this site.", code="not_site_kiosk")


#: Scopes for one site: ``kiosk:<site_id>``, ``directory:<site_id>`` (keeps its directory).
SITE_SCOPES = ("kiosk:", "directory:")


def check_scopes(scopes: list[str]) -> list[str]:
    for scope in scopes:
        if scope not in STATIC_SCOPES and not any(
            scope.startswith(prefix) and len(scope) > len(prefix) for prefix in SITE_SCOPES
        ):
            raise InvalidInput(f"Unknown scope {scope!r}.", code="unknown_scope")
    return sorted(set(scopes))


def do_create_organization(
    session: Session, ctx: Context, actor: Actor, name: str, kind: str
) -> Organization:
    """Create an organization of ``kind`` carrier, retailer or operator."""
    if kind not in ORG_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(ORG_KINDS)}.", code="unknown_org_kind")
    now = ctx.clock()
    org = Organization(id=new_id("org"), name=name, kind=kind, created_at=now)
    session.add(org)
    record(
        Tx.of(session),
        "org.created",
        actor,
        now,
        data={"org_id": org.id, "kind": kind, "name": name},
    )
    return org


def do_create_api_key(
    session: Session, ctx: Context, actor: Actor, org_id: str, name: str, scopes: list[str]
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the key itself, which is shown this once only."""
    if session.get(Organization, org_id) is None:
        raise NotFound("No such organization.", code="org_not_found")
    prefix = secrets.token_hex(4)
    plain = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    now = ctx.clock()
    key = ApiKey(
        id=new_id("key"),
        org_id=org_id,
        name=name,
        prefix=prefix,
        key_digest=ctx.keyring.digest("api-key", plain),
        scopes=check_scopes(scopes),
        created_at=now,
    )
    session.add(key)
    record(
        Tx.of(session),
        "api_key.created",
        actor,
        now,
        data={"key_id": key.id, "org_id": org_id, "prefix": prefix, "scopes": key.scopes},
    )
    return key, plain


def access_principal(ctx: Context, authorization: str | None) -> Principal:
    """The principal behind an ``Authorization: Bearer KEY`` header, or ``unauthorized``.

    Answers, refusals too, are cached for ``ctx.cache.ttl`` seconds: a key revoked by
    another process stops working within that, in this one at once (``revoke_api_key``).
    """
    digest = _key_digest(ctx, authorization)
    principal: Principal | None = ctx.cache.get_or_load(
        ("api-key", digest), lambda: _load_principal(ctx, digest)
    )
    return _known(principal)


def peek_principal(ctx: Context, authorization: str | None) -> Principal | None:
    """Like ``access_principal`` from the cache alone: None when the database must be asked."""
    found, principal = ctx.cache.peek(("api-key", _key_digest(ctx, authorization)))
    return _known(principal) if found else None


def _key_digest(ctx: Context, authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthorized(
            "Send an API key as 'Authorization: Bearer KEY'.", code="missing_api_key"
        )
    return ctx.keyring.digest("api-key", authorization[7:].strip())


def _known(principal: Principal | None) -> Principal:
    if principal is None:
        raise Unauthorized("The API key is not valid.", code="invalid_api_key")
    return principal


def _load_principal(ctx: Context, digest: str) -> Principal | None:
    with ctx.db.read() as session:
        row = session.execute(
            select(ApiKey.id, ApiKey.org_id, ApiKey.scopes, ApiKey.revoked_at, Organization.kind)
            .join(Organization, Organization.id == ApiKey.org_id)
            .where(ApiKey.key_digest == digest)
        ).one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    return Principal(row.org_id, row.kind, row.id, frozenset(row.scopes))


def create_organization(ctx: Context, actor: Actor, name: str, kind: str) -> OrganizationOut:
    with ctx.db.transaction() as session:
        org = do_create_organization(session, ctx, actor, name, kind)
        return OrganizationOut(id=org.id, name=org.name, kind=org.kind)


def _key_info(key: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=key.id,
        org_id=key.org_id,
        name=key.name,
        prefix=key.prefix,
        scopes=key.scopes,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


def list_api_keys(ctx: Context, org_id: str) -> ApiKeyList:
    """An organization's keys, oldest first, revoked ones included."""
    with ctx.db.read() as session:
        if session.get(Organization, org_id) is None:
            raise NotFound("No such organization.", code="org_not_found")
        keys = session.scalars(
            select(ApiKey).where(ApiKey.org_id == org_id).order_by(ApiKey.id)
        ).all()
        return ApiKeyList(items=[_key_info(k) for k in keys])


def revoke_api_key(ctx: Context, actor: Actor, org_id: str, key_id: str) -> ApiKeyInfo:
    """Revoke a key: this process refuses it at once, every other within the cache's ttl."""
    with ctx.db.transaction() as session:
        key = session.get(ApiKey, key_id)
        if key is None or key.org_id != org_id:
            raise NotFound("No such API key.", code="api_key_not_found")
        if key.revoked_at is None:
            now = ctx.clock()
            key.revoked_at = now
            record(
                Tx.of(session),
                "api_key.revoked",
                actor,
                now,
                data={"key_id": key.id, "org_id": org_id},
            )
        info = _key_info(key)
    ctx.cache.discard(("api-key", key.key_digest))
    return info


def create_api_key(
    ctx: Context, actor: Actor, org_id: str, name: str, scopes: list[str]
) -> ApiKeyOut:
    with ctx.db.transaction() as session:
        key, plain = do_create_api_key(session, ctx, actor, org_id, name, scopes)
        return ApiKeyOut(**_key_info(key).model_dump(), key=plain)
