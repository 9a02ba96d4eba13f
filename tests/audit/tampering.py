"""What a database writer without the server secret can do to the audit log, as the security
review did it: erase the evidence of a guessing attack and link the chain again."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from openlocker.audit.models import AuditEvent, AuditHead
from openlocker.audit.service import EVENT_FIELDS, event_hash, record
from openlocker.core.context import Context
from tests.factories import TEST_ACTOR

#: Twelve events of a site where someone typed three wrong PINs before a pickup.
GUESSING_ATTACK = (
    "org.created",
    "api_key.created",
    "site.created",
    "parcel.announced",
    "parcel.deposited",
    "parcel.announced",
    "pickup.failed",
    "pickup.failed",
    "pickup.failed",
    "parcel.picked_up",
    "parcel.deposited",
    "parcel.picked_up",
)


def record_events(ctx: Context, names: tuple[str, ...] = GUESSING_ATTACK) -> None:
    """Commit one audit event per name, in this order, at the site ``sit_test``."""
    for name in names:
        # One transaction each: PostgreSQL numbers the rows of one statement in no set order.
        with ctx.db.sql.transaction() as tx:
            record(tx, name, TEST_ACTOR, ctx.clock(), site_id="sit_test")


def erase_failed_pickups(ctx: Context, *, rechain: bool = False) -> None:
    """Delete the ``pickup.failed`` events, set the chain columns of the later events back to
    NULL and reset ``audit_head`` to the event before the first one removed, so the sealer
    links them again. With ``rechain`` the writer links them himself (SHA-256 needs no key)."""
    with ctx.db.transaction() as session:
        first = min(
            session.scalars(
                select(AuditEvent.chain_index).where(AuditEvent.name == "pickup.failed")
            ).all(),
            default=None,
        )
        assert first is not None, "there are failed pickups to erase"
        session.execute(delete(AuditEvent).where(AuditEvent.name == "pickup.failed"))
        session.execute(
            update(AuditEvent)
            .where(AuditEvent.chain_index > first)
            .values(chain_index=None, prev_hash=None, hash=None)
        )
        before = session.scalars(select(AuditEvent).where(AuditEvent.chain_index == first - 1))
        session.execute(update(AuditHead).values(hash=before.one().hash, count=first - 1))
    if rechain:
        link_unsealed(ctx)


def link_unsealed(ctx: Context) -> None:
    """Chain the unsealed events as the sealer would, without any checkpoint."""
    with ctx.db.transaction() as session:
        head = session.get(AuditHead, 1)
        assert head is not None
        unsealed = session.scalars(
            select(AuditEvent).where(AuditEvent.chain_index.is_(None)).order_by(AuditEvent.seq)
        ).all()
        for event in unsealed:
            event.prev_hash = head.hash
            event.hash = event_hash(head.hash, [getattr(event, f) for f in EVENT_FIELDS])
            event.chain_index = head.count = head.count + 1
            head.hash = event.hash
