"""Signed checkpoints keep a database writer without the server secret from cutting the
audit chain and linking it anew."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, update

from openlocker.audit import checkpoints
from openlocker.audit.checkpoints import (
    FILE_NAME,
    Witness,
    from_json,
    key_id,
    sign_checkpoint,
    signature_valid,
    to_json,
)
from openlocker.audit.models import AuditCheckpoint, AuditEvent
from openlocker.audit.service import AuditTampered, check_chain, seal_pending
from openlocker.core.clock import FrozenClock
from openlocker.core.context import Context
from openlocker.core.keys import Keyring, load_public_key
from tests.audit.tampering import erase_failed_pickups, link_unsealed, record_events
from tests.factories import Factory


def _file(ctx: Context) -> Path:
    return ctx.settings.data_folder / FILE_NAME


def _stored(ctx: Context) -> list[AuditCheckpoint]:
    with ctx.db.read() as session:
        return list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.count)))


def _unsealed(ctx: Context) -> int:
    with ctx.db.read() as session:
        return (
            session.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.chain_index.is_(None))
            )
            or 0
        )


def _forget_witnesses(monkeypatch: pytest.MonkeyPatch) -> None:
    """As after a restart: the server's processes remember no checkpoint."""
    monkeypatch.setattr(checkpoints, "_witnesses", {})


def test_a_seal_signs_a_checkpoint_into_the_database_and_the_file(
    ctx: Context, client: TestClient, factory: Factory
) -> None:
    record_events(ctx)
    assert seal_pending(ctx) == 12
    lines = _file(ctx).read_text().splitlines()
    assert len(lines) == 1
    kept = from_json(json.loads(lines[0]))
    [stored] = _stored(ctx)
    assert (stored.count, stored.hash, stored.signature) == (12, kept.hash, kept.signature)

    # What an operator needs to check it: the API's public key, nothing else.
    page = client.get("/v1/audit/checkpoints", headers=factory.operator().headers).json()
    public_key = load_public_key(page["public_key"])
    assert page["key_id"] == kept.key_id == key_id(public_key)
    assert from_json(page["items"][0]) == kept and signature_valid(kept, public_key)
    assert not signature_valid(replace(kept, count=11), public_key)

    report = check_chain(ctx)
    assert report.intact and report.checkpoints == 1 and report.newest == kept
    assert report.sources == (("the database", 1), (str(_file(ctx)), 1))


def test_checkpoints_come_at_most_once_an_interval_and_cover_a_quiet_tail(
    ctx: Context, clock: FrozenClock
) -> None:
    record_events(ctx, ("site.created",) * 3)
    seal_pending(ctx)
    clock.advance(seconds=ctx.settings.audit_checkpoint_interval_seconds - 1)
    record_events(ctx, ("site.created",) * 2)
    seal_pending(ctx)
    assert [c.count for c in _stored(ctx)] == [3]
    seal_pending(ctx)  # nothing new, and no checkpoint due yet
    clock.advance(seconds=1)
    assert seal_pending(ctx) == 0
    assert [c.count for c in _stored(ctx)] == [3, 5]  # the tail sealed since is covered
    clock.advance(seconds=60)
    seal_pending(ctx)  # the chain did not move: nothing to sign
    assert len(_file(ctx).read_text().splitlines()) == 2


@pytest.mark.parametrize(
    "also_erased",
    [
        "nothing",
        "the database's checkpoints",
        "those and the processes' memory",
        "those and the file",
    ],
)
def test_the_sealer_refuses_a_chain_cut_below_its_checkpoint(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, also_erased: str
) -> None:
    record_events(ctx)
    seal_pending(ctx)
    erase_failed_pickups(ctx)
    if also_erased != "nothing":
        with ctx.db.transaction() as session:
            session.execute(delete(AuditCheckpoint))
    if also_erased == "those and the processes' memory":
        _forget_witnesses(monkeypatch)  # the file still holds the checkpoint
    if also_erased == "those and the file":
        _file(ctx).unlink()  # the memory of this process still holds it

    with pytest.raises(AuditTampered) as refused:
        seal_pending(ctx)
    assert refused.value.code == "audit_tampered"
    assert "the chain has 6 events but a checkpoint signed at" in refused.value.detail
    assert "covers 12: events were removed" in refused.value.detail
    assert _unsealed(ctx) == 3  # nothing was linked again


def test_verify_says_events_were_removed_then_rewritten(ctx: Context) -> None:
    record_events(ctx)
    seal_pending(ctx)
    erase_failed_pickups(ctx, rechain=True)  # what today's sealer would have done
    report = check_chain(ctx)
    assert not report.intact and report.reason is None and report.checked == 9
    assert report.problems == (
        "the chain has 9 events but a checkpoint signed at 2026-01-05T09:00:00+00:00"
        " (the database) covers 12: events were removed",
    )

    record_events(ctx, ("site.created",) * 3)  # back to twelve events, with other content
    link_unsealed(ctx)
    report = check_chain(ctx)
    assert not report.intact and report.checked == 12
    assert "events up to 12 were rewritten" in report.problems[0]
    with pytest.raises(AuditTampered, match="events up to 12 were rewritten"):
        seal_pending(ctx)


@pytest.mark.parametrize("forgery", ["count", "hash", "another secret"])
def test_a_forged_checkpoint_is_reported(ctx: Context, clock: FrozenClock, forgery: str) -> None:
    record_events(ctx)
    seal_pending(ctx)
    [real] = _stored(ctx)
    with ctx.db.transaction() as session:
        if forgery == "another secret":
            other = Keyring("not-the-secret").audit_signing_key()
            session.add(AuditCheckpoint(**asdict(sign_checkpoint(other, 13, real.hash, clock()))))
        else:
            altered = {"count": 13} if forgery == "count" else {"hash": "ab" * 32}
            session.execute(update(AuditCheckpoint).values(**altered))

    report = check_chain(ctx)
    assert not report.intact and report.checkpoints == 1  # the file's copy of the real one
    if forgery == "another secret":
        assert report.problems == (
            f"the checkpoint at 13 (the database) is signed by key {key_id(other.public_key())},"
            f" not this server's {real.key_id}: forged, or signed before the secret key changed",
        )
        assert seal_pending(ctx) == 0  # not made with this server's key: verify's business
        return
    forged = 13 if forgery == "count" else 12
    assert (
        f"the checkpoint at {forged} (the database) has a bad signature: forged or altered"
        in report.problems
    )
    assert any(f"at 12 in {_file(ctx)}" in problem for problem in report.problems)
    with pytest.raises(AuditTampered, match="not signed by this server's audit key"):
        seal_pending(ctx)


def test_checkpoints_of_an_earlier_secret_verify_with_its_public_key(ctx: Context) -> None:
    earlier = replace(ctx, keyring=Keyring("the secret before"))
    record_events(ctx, ("site.created",) * 2)
    seal_pending(earlier)
    record_events(ctx, ("site.created",) * 2)
    assert seal_pending(ctx) == 2  # the new key signs at once: none of its own yet
    assert [c.count for c in _stored(ctx)] == [2, 4]
    earlier_key = earlier.keyring.audit_signing_key().public_key()
    assert "signed before the secret key changed" in check_chain(ctx).problems[0]
    report = check_chain(ctx, public_keys=[earlier_key])
    assert report.intact and report.checkpoints == 2


def test_checkpoints_deleted_from_the_database_are_found_in_the_file(
    ctx: Context, clock: FrozenClock
) -> None:
    for _ in range(3):
        record_events(ctx, ("site.created",) * 4)
        seal_pending(ctx)
        clock.advance(seconds=10)
    with ctx.db.transaction() as session:
        session.execute(delete(AuditCheckpoint).where(AuditCheckpoint.count < 12))
    report = check_chain(ctx)
    assert not report.intact and report.checkpoints == 3
    assert report.problems == tuple(
        f"the checkpoint at {count} in {_file(ctx)} (line {line}) is missing from the"
        " database: checkpoints were deleted"
        for line, count in ((1, 4), (2, 8))
    )
    record_events(ctx, ("site.created",))
    assert seal_pending(ctx) == 1  # the chain itself agrees with every checkpoint


def test_an_altered_file_line_is_reported(ctx: Context) -> None:
    record_events(ctx)
    seal_pending(ctx)
    line = json.loads(_file(ctx).read_text())
    line["count"] = 11
    _file(ctx).write_text(json.dumps(line) + "\n{not json\n")
    problems = check_chain(ctx).problems
    assert problems == (
        f"the checkpoint at 11 in {_file(ctx)} (line 1) is missing from the database:"
        " checkpoints were deleted",
        f"line 2 of {_file(ctx)} is not a checkpoint",
        f"the checkpoint at 11 ({_file(ctx)}) has a bad signature: forged or altered",
    )


def test_checkpoints_kept_from_the_api_catch_a_writer_who_also_deleted_the_file(
    ctx: Context,
    client: TestClient,
    factory: Factory,
    clock: FrozenClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    operator = factory.operator()  # two events: the organization and its key
    record_events(ctx)
    seal_pending(ctx)
    clock.advance(seconds=10)
    record_events(ctx, ("parcel.announced",))
    seal_pending(ctx)
    kept, cursor = tmp_path / "kept.jsonl", None
    with kept.open("w") as file:  # one answer a line, as `curl ... >> kept.jsonl` keeps them
        while True:
            params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/audit/checkpoints", params=params, headers=operator.headers)
            file.write(page.text + "\n")
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
    assert check_chain(ctx, kept=kept).intact

    erase_failed_pickups(ctx)
    with ctx.db.transaction() as session:
        session.execute(delete(AuditCheckpoint))
    _file(ctx).unlink()
    _forget_witnesses(monkeypatch)
    seal_pending(ctx)  # nothing left on this server knows better
    assert check_chain(ctx).intact

    report = check_chain(ctx, kept=kept)
    assert not report.intact and report.checked == 12
    assert (
        f"the checkpoint at 14 in {kept} (line 1, item 1) is missing from the database:"
        " checkpoints were deleted"
    ) in report.problems
    assert (
        f"the chain has 12 events but a checkpoint signed at 2026-01-05T09:00:00+00:00 ({kept})"
        " covers 14: events were removed"
    ) in report.problems
    pretty = tmp_path / "kept.json"
    pretty.write_text(json.dumps(json.loads(kept.read_text().splitlines()[0]), indent=2))
    assert (
        check_chain(ctx, kept=pretty)
        .problems[0]
        .startswith(f"the checkpoint at 14 in {pretty} (the document, item 1) is missing")
    )


def test_checkpoints_are_for_operators_and_page_by_count(
    ctx: Context, client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    for _ in range(3):
        record_events(ctx, ("site.created",))
        seal_pending(ctx)
        clock.advance(seconds=10)
    carrier = factory.org()
    assert client.get("/v1/audit/checkpoints", headers=carrier.headers).status_code == 403
    operator = factory.operator()
    first = client.get("/v1/audit/checkpoints", params={"limit": 2}, headers=operator.headers)
    assert [c["count"] for c in first.json()["items"]] == [1, 2]
    rest = client.get(
        "/v1/audit/checkpoints",
        params={"cursor": first.json()["next_cursor"]},
        headers=operator.headers,
    ).json()
    assert [c["count"] for c in rest["items"]] == [3] and rest["next_cursor"] is None


@pytest.mark.parametrize("path", ["/v1/events", "/v1/audit/checkpoints"])
def test_a_cursor_is_up_to_18_ascii_digits(client: TestClient, factory: Factory, path: str) -> None:
    operator = factory.operator()
    for cursor in ["²", "1" * 19, "-1", "1 ", "0x1", ""]:  # "²".isdigit() is true
        refused = client.get(path, params={"cursor": cursor}, headers=operator.headers)
        assert refused.status_code == 422 and refused.json()["code"] == "invalid_cursor", cursor
    largest = client.get(path, params={"cursor": "9" * 18}, headers=operator.headers)
    assert largest.status_code == 200 and largest.json()["items"] == []


def test_the_witness_reads_the_file_where_it_grew(tmp_path: Path, clock: FrozenClock) -> None:
    key = Keyring("test-secret").audit_signing_key()
    path = tmp_path / FILE_NAME
    lines = [to_json(sign_checkpoint(key, n, "ab" * 32, clock())) for n in range(1, 801)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))  # above 64 KiB
    witness = Witness(path, key.public_key())
    newest = witness.newest()
    assert newest is not None and newest.count == 800 and witness.verified(newest)

    later = json.dumps(to_json(sign_checkpoint(key, 801, "cd" * 32, clock())))
    with path.open("a") as file:
        file.write(later[:40])  # a sealer of another process is writing it
    assert witness.newest() == newest
    with path.open("a") as file:
        file.write(later[40:] + "\n")
    assert witness.newest() == from_json(json.loads(later))
    path.write_text(path.read_text().splitlines()[0] + "\n")  # cut: memory stays
    assert witness.newest() == from_json(json.loads(later))
    path.unlink()
    assert witness.newest() == from_json(json.loads(later))
