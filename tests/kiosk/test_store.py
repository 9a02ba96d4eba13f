"""The kiosk's store: pulls applied idempotently, local changes kept until the server heard."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from openlocker.access.credentials import kiosk_digest
from openlocker.core.errors import DomainError
from openlocker.kiosk.decisions import check_credential
from openlocker.kiosk.store import KioskStore
from tests.kiosk.helpers import DIGEST_KEY, START, compartment, credential, expected, page


def _store(tmp_path: Path) -> KioskStore:
    return KioskStore(tmp_path / "kiosk.db")


def _pin(store: KioskStore, pin: str) -> str | None:
    found = store.credential_by("pin", kiosk_digest(DIGEST_KEY, "pin", pin))
    return None if found is None else found.id


def test_a_pull_stores_digests_never_codes(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.apply_pull(
        page(
            compartments=[compartment(0)],
            credentials=[credential("crd_1", "prc_1", [0], pin="04817265")],
        ),
        START,
    )
    assert _pin(store, "04817265") == "crd_1"
    store.close()
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("kiosk.db*"))
    assert b"crd_1" in raw and b"04817265" not in raw


def test_changes_apply_in_order_and_a_replayed_page_changes_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    first = page(
        compartments=[compartment(n) for n in range(3)],
        credentials=[
            credential("crd_1", "prc_1", [0], pin="11111111"),
            credential("crd_2", "prc_2", [1], pin="22222222"),
        ],
        cursor="c1",
    )
    second = page(
        compartments=[compartment(n) for n in range(3)],
        credentials=[
            credential("crd_1", "prc_1", [0], pin="11111111", active=False),
            credential("crd_3", "prc_3", [2], pin="33333333"),
        ],
        cursor="c2",
    )
    for body in (first, second, second):
        store.apply_pull(body, START)
    assert (_pin(store, "11111111"), _pin(store, "22222222"), _pin(store, "33333333")) == (
        None,
        "crd_2",
        "crd_3",
    )
    assert store.meta("cursor") == "c2"
    assert store.count_credentials() == 2


def test_a_local_use_stands_until_its_event_is_answered(tmp_path: Path) -> None:
    store = _store(tmp_path)
    body = page(
        compartments=[compartment(0, state="occupied")],
        credentials=[credential("crd_1", "prc_1", [0], pin="11111111")],
    )
    store.apply_pull(body, START)
    with store.write() as tx:
        event = tx.queue("pickup", START, {"credential_id": "crd_1"})
        tx.use_credential("crd_1", START, event)
        tx.set_local_state("cmp_000", "free", event)
    # The server has not heard yet: its old word does not undo the use.
    store.apply_pull(body, START)
    used = store.credential("crd_1")
    assert used is not None and used.used_at is not None
    assert store.compartment("cmp_000").state == "free"  # type: ignore[union-attr]
    # Heard (the event left the queue): the server's word stands.
    with store.write() as tx:
        tx.drop_event(event)
    gone = page(
        compartments=[compartment(0, state="free")],
        credentials=[credential("crd_1", "prc_1", [0], pin="11111111", active=False)],
    )
    store.apply_pull(gone, START)
    tombstone = store.credential("crd_1")
    assert tombstone is not None and not tombstone.active and tombstone.used_at is not None
    # Kept a week to answer code_used, then forgotten.
    store.apply_pull(gone, START + timedelta(days=8))
    assert store.credential("crd_1") is None


def test_a_code_the_server_gives_back_after_the_use_works_again(tmp_path: Path) -> None:
    store = _store(tmp_path)
    body = page(
        compartments=[compartment(0)],
        credentials=[credential("crd_o", "prc_1", [0], pin="11111111", order_id="ord_1")],
    )
    store.apply_pull(body, START)
    with store.write() as tx:
        event = tx.queue("pickup", START, {})
        tx.use_credential("crd_o", START, event)
        tx.drop_event(event)
    store.apply_pull(body, START)
    again = store.credential("crd_o")
    assert again is not None and again.active and again.used_at is None


def test_a_local_deposit_hides_the_parcel_until_the_server_heard(tmp_path: Path) -> None:
    store = _store(tmp_path)
    body = page(compartments=[compartment(0)], expected=[expected("prc_1", "T1", "org")])
    store.apply_pull(body, START)
    with store.write() as tx:
        event = tx.queue("deposit", START, {})
        tx.mark_deposited("prc_1", event)
        tx.set_local_state("cmp_000", "occupied", event)
    store.apply_pull(body, START)
    assert [p.deposited for p in store.expected_by_tracking("T1")] == [True]
    assert store.compartment("cmp_000").state == "occupied"  # type: ignore[union-attr]
    with store.write() as tx:
        tx.drop_event(event)
    store.apply_pull(
        page(
            compartments=[compartment(0, state="occupied")],
            expected=[expected("prc_1", "T1", "org", active=False)],
        ),
        START,
    )
    assert store.expected_by_tracking("T1") == []


def test_the_push_stops_at_the_first_held_event(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.write() as tx:
        first = tx.queue("door", START, {})
        held = tx.queue("pickup", START, {}, held=True)
        tx.queue("door", START, {})
    assert [e.id for e in store.pushable(10)] == [first]
    with store.write() as tx:
        tx.release(held)
    assert [e.seq for e in store.pushable(10)] == [1, 2, 3]
    assert store.pushable(2)[-1].wire()["seq"] == 2


def test_refusals_in_a_row_are_one_event_with_a_count(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.write() as tx:
        for _ in range(3):
            tx.queue_refusal(START, "pin", "invalid_code")
        tx.queue_refusal(START, "qr", "invalid_code")
        tx.queue_refusal(START, "qr", "invalid_code")
    assert [(e.body["method"], e.body["count"]) for e in store.events()] == [("pin", 3), ("qr", 2)]


def test_what_was_committed_survives_the_process(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.write() as tx:
        tx.queue("door", START, {"n": 1})
    # Read by another connection, as a restarted kiosk would.
    other = sqlite3.connect(tmp_path / "kiosk.db")
    assert other.execute("SELECT count(*) FROM events").fetchone() == (1,)
    assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    other.close()
    try:
        with store.write() as tx:
            tx.queue("door", START, {"n": 2})
            raise RuntimeError("crash inside the transaction")
    except RuntimeError:
        pass
    assert [e.body["n"] for e in store.events()] == [1]


def test_a_code_used_elsewhere_is_kept_to_answer_code_used(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.apply_pull(
        page(
            compartments=[compartment(0)],
            credentials=[
                credential("crd_1", "prc_1", [0], pin="11111111", active=False, used=True),
                credential("crd_2", "prc_2", [0], pin="22222222", active=False),
            ],
        ),
        START,
    )
    used = store.credential_by("pin", kiosk_digest(DIGEST_KEY, "pin", "11111111"))
    with pytest.raises(DomainError) as refused:
        check_credential(used, START)
    assert refused.value.code == "code_used"
    assert _pin(store, "22222222") is None


def test_a_sync_afresh_keeps_the_queue_and_the_uses_it_reports(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.apply_pull(
        page(
            compartments=[compartment(0), compartment(1)],
            credentials=[
                credential("crd_1", "prc_1", [0], pin="11111111"),
                credential("crd_2", "prc_2", [1], pin="22222222"),
            ],
            expected=[expected("prc_3", "T3", "org")],
        ),
        START,
    )
    with store.write() as tx:
        event = tx.queue("pickup", START, {})
        tx.use_credential("crd_1", START, event)
    store.forget_synced()
    assert store.meta("cursor") is None
    assert [e.id for e in store.events()] == [event]
    assert _pin(store, "11111111") == "crd_1" and _pin(store, "22222222") is None
    assert store.expected_by_tracking("T3") == []
