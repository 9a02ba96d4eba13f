"""Every state change is audited in a hash chain that finds edited or removed rows."""

from __future__ import annotations

from itertools import pairwise

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update

from openlocker.audit import service as audit_service
from openlocker.audit.models import AuditEvent
from openlocker.audit.service import check_chain, seal_pending
from openlocker.core.context import Context
from tests.factories import Factory


def _lifecycle(factory: Factory, client: TestClient) -> dict[str, object]:
    carrier = factory.org()
    site = factory.site("S")
    parcel = factory.deposited(carrier, site)
    assert factory.pick_up(site, parcel).status_code == 200
    seal_pending(factory.ctx)
    return parcel


def test_lifecycle_events_in_order(factory: Factory, client: TestClient, ctx: Context) -> None:
    parcel = _lifecycle(factory, client)
    operator = factory.operator()
    events = client.get(
        "/v1/events", params={"parcel_id": parcel["id"]}, headers=operator.headers
    ).json()
    assert [e["name"] for e in events["items"]] == [
        "parcel.announced",
        "parcel.deposited",
        "parcel.picked_up",
    ]
    assert events["items"][1]["compartment_id"] == parcel["compartment"]["id"]  # type: ignore[index]
    assert events["items"][2]["data"] == {"method": "qr"}
    assert events["items"][0]["actor"].startswith("key:")


def test_events_page_through_the_whole_log(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    _lifecycle(factory, client)
    operator = factory.operator()
    seal_pending(ctx)
    seen, cursor = [], None
    while True:
        params: dict[str, object] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/events", params=params, headers=operator.headers).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [e["seq"] for e in seen] == sorted(e["seq"] for e in seen)
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in pairwise(seen))
    report = check_chain(ctx)
    assert report.intact and report.checked == len(seen)


def test_verify_finds_an_edited_event(factory: Factory, client: TestClient, ctx: Context) -> None:
    parcel = _lifecycle(factory, client)
    with ctx.db.transaction() as session:
        target = session.scalars(
            select(AuditEvent).where(
                AuditEvent.name == "parcel.deposited", AuditEvent.parcel_id == parcel["id"]
            )
        ).one()
        session.execute(
            update(AuditEvent).where(AuditEvent.seq == target.seq).values(actor="key:someone-else")
        )
    report = check_chain(ctx)
    assert (
        not report.intact
        and report.broken_seq == target.seq
        and report.reason == "event content altered"
    )


def test_verify_finds_a_removed_event(factory: Factory, client: TestClient, ctx: Context) -> None:
    _lifecycle(factory, client)
    with ctx.db.transaction() as session:
        seqs = session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
        session.execute(delete(AuditEvent).where(AuditEvent.seq == seqs[2]))
    report = check_chain(ctx)
    assert not report.intact and report.broken_seq == seqs[3]
    with ctx.db.transaction() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == seqs[-1]))
        session.execute(delete(AuditEvent).where(AuditEvent.seq >= seqs[2]))
    tail = check_chain(ctx)
    assert not tail.intact and tail.reason == "events missing at the end of the chain"


def test_rolled_back_work_leaves_no_event(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    carrier = factory.org()
    site = factory.site("S")
    factory.site("X")
    with ctx.db.read() as session:
        before = len(session.scalars(select(AuditEvent.seq)).all())
    assert factory.announce(carrier, site, size="XL").json()["code"] == "site_full"
    with ctx.db.read() as session:
        assert len(session.scalars(select(AuditEvent.seq)).all()) == before


@pytest.mark.parametrize("links_per_statement", [1000, 2])
def test_sealing_in_small_batches_keeps_one_chain(
    factory: Factory,
    client: TestClient,
    ctx: Context,
    monkeypatch: pytest.MonkeyPatch,
    links_per_statement: int,
) -> None:
    monkeypatch.setattr(audit_service, "_LINKS_PER_STATEMENT", links_per_statement)
    carrier = factory.org()
    site = factory.site("SSS")
    for _ in range(3):
        factory.deposited(carrier, site)
    assert seal_pending(ctx, batch=5) == 9  # org, key, site, then announced + deposited x3
    report = check_chain(ctx)
    assert report.intact and report.unsealed == 0 and report.checked == 9
