"""Pickups at the kiosk with no server to ask: PINs, QR codes, orders, lockouts, stuck doors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from openlocker.kiosk.boards.bank import Bank
from tests.kiosk.helpers import (
    START,
    Kiosk,
    compartment,
    credential,
    page,
    qr_token,
    run_kiosk,
)

PARCEL = "prc_01KTESTPARCEL00000000000001"


def _site(**extra: Any) -> dict[str, Any]:
    return page(
        compartments=[compartment(n, state="occupied" if n < 4 else "free") for n in range(20)],
        credentials=[
            credential(
                "crd_1", PARCEL, [2], pin="04817265", qr=qr_token(PARCEL), phone="601234567"
            ),
            credential(
                "crd_2", "prc_2", [3], pin="11112222", expires_at=START + timedelta(hours=1)
            ),
            credential("crd_o", "prc_o1", [0, 1], pin="55556666", order_id="ord_1"),
        ],
        **extra,
    )


def test_a_pin_opens_its_door_at_once_offline_and_only_once(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        answer = await k.pickup(pin="04817265")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["parcel_id"] == PARCEL
        assert body["compartment"] == {"id": "cmp_002", "label": "A3", "size": "M"}
        assert [c["id"] for c in body["compartments"]] == ["cmp_002"]
        assert body["offline"] is True
        assert k.pulses(2) == 1 and k.bank.snapshot((0, 2)).door_open

        again = await k.pickup(pin="04817265")
        assert again.status_code == 403
        assert again.headers["content-type"] == "application/problem+json"
        assert again.json()["code"] == "code_used"
        assert k.pulses(2) == 1

        (pickup,) = k.events("pickup")
        assert pickup.id.startswith("kev_")
        assert pickup.body == {
            "credential_id": "crd_1",
            "method": "pin",
            "compartments": ["cmp_002"],
            "offline": True,
        }
        assert [e.body["reason"] for e in k.events("refused")] == ["code_used"]
        assert k.agent.store.compartment("cmp_002").state == "free"  # type: ignore[union-attr]

    run_kiosk(tmp_path, scenario, pages=[_site()])


def test_the_door_events_follow_the_door_and_no_alarm_for_a_commanded_open(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        await k.pickup(pin="04817265")
        await k.settle()
        k.bank.close_door((0, 2))
        await k.settle()
        doors = [(e.body["door"], e.body["commanded"]) for e in k.events("door")]
        assert doors == [("open", True), ("closed", False)]
        assert k.events("alarm") == []
        seqs = [e.seq for e in k.events()]
        assert seqs == sorted(seqs)

    run_kiosk(tmp_path, scenario, pages=[_site()])


def test_an_item_still_inside_when_the_door_closes_raises_item_left(tmp_path: Path) -> None:
    bank = Bank(2, 16)
    bank.load((0, 2))

    async def scenario(k: Kiosk) -> None:
        assert (await k.pickup(pin="04817265")).status_code == 200
        await k.settle()
        k.bank.close_door((0, 2))
        await k.settle()
        (alarm,) = k.alarms("item_left")
        assert alarm["compartment_id"] == "cmp_002" and alarm["state"] == "raised"

    run_kiosk(tmp_path, scenario, pages=[_site()], bank=bank)


def test_pin_with_the_phone_suffix_must_match_the_recipients(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        wrong = await k.pickup(pin="04817265", phone="+48 600 000 000")
        assert wrong.json()["code"] == "invalid_code"
        right = await k.pickup(pin="04817265", phone="4567")
        assert right.status_code == 200

    run_kiosk(tmp_path, scenario, pages=[_site()])


def test_an_expired_code_is_refused(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        k.clock.advance(hours=2)
        answer = await k.pickup(pin="11112222")
        assert answer.status_code == 403 and answer.json()["code"] == "code_expired"
        assert k.pulses(3) == 0

    run_kiosk(tmp_path, scenario, pages=[_site()])


def test_a_qr_code_is_checked_offline_against_the_sites_keys(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        answer = await k.pickup(qr=qr_token(PARCEL))
        # A token the store does not know, but signed by the site: not a credential here.
        assert answer.status_code == 403 and answer.json()["code"] == "invalid_code"

    token = qr_token(PARCEL)

    async def known(k: Kiosk) -> None:
        answer = await k.pickup(qr=token)
        assert answer.status_code == 200, answer.text
        assert k.events("pickup")[0].body["method"] == "qr"

    run_kiosk(tmp_path / "a", scenario, pages=[_site()])
    sites = page(
        compartments=[compartment(n, state="occupied") for n in range(4)],
        credentials=[credential("crd_1", PARCEL, [2], qr=token)],
    )
    run_kiosk(tmp_path / "b", known, pages=[sites])


def test_a_qr_code_of_a_revoked_or_unknown_key_or_another_site_is_refused(tmp_path: Path) -> None:
    old = qr_token(PARCEL, version=1)
    new = qr_token(PARCEL, version=2)
    elsewhere = qr_token(PARCEL, version=2, site_id="sit_01KOTHERSITE000000000000000")
    forged = new[:-4] + ("AAAA" if not new.endswith("AAAA") else "BBBB")
    rotated = page(
        compartments=[compartment(n, state="occupied") for n in range(4)],
        credentials=[
            credential("crd_old", PARCEL, [2], qr=old),
            credential("crd_new", "prc_new", [3], qr=new),
        ],
        key_versions=[2],
    )

    async def scenario(k: Kiosk) -> None:
        codes = {}
        for name, token in [("old", old), ("elsewhere", elsewhere), ("forged", forged)]:
            answer = await k.pickup(qr=token)
            codes[name] = (answer.status_code, answer.json()["code"])
        assert codes == {
            "old": (403, "invalid_code"),
            "elsewhere": (403, "wrong_site"),
            "forged": (403, "invalid_code"),
        }
        assert k.pulses(2) == 0
        assert (await k.pickup(qr=new)).status_code == 200
        assert sum(e.body["count"] for e in k.events("refused")) == 3

    run_kiosk(tmp_path, scenario, pages=[rotated])


def test_wrong_pins_lock_typed_pins_out_and_raise_brute_force_once(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        codes = [(await k.pickup(pin=f"9999000{i}")).json()["code"] for i in range(5)]
        assert codes == ["invalid_code"] * 5
        locked = await k.pickup(pin="04817265")
        assert locked.status_code == 429
        assert locked.json()["code"] == "too_many_attempts"
        assert locked.headers["retry-after"] == "30"
        assert k.pulses(2) == 0
        # A QR code and a PIN typed with its phone suffix still work.
        assert (await k.pickup(pin="04817265", phone="601234567")).status_code == 200
        (alarm,) = k.alarms("brute_force")
        assert alarm["state"] == "raised" and "5 wrong" in alarm["detail"]
        k.clock.advance(seconds=31)
        assert (await k.pickup(pin="99990009")).json()["code"] == "invalid_code"
        assert len(k.alarms("brute_force")) == 1
        refused = [(e.body["reason"], e.body["count"]) for e in k.events("refused")]
        assert refused == [("invalid_code", 5), ("too_many_attempts", 1), ("invalid_code", 1)]

    run_kiosk(tmp_path, scenario, pages=[_site()])


def test_an_order_opens_all_its_compartments(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        body = (await k.pickup(pin="55556666")).json()
        assert body["order_id"] == "ord_1"
        assert [c["label"] for c in body["compartments"]] == ["A1", "A2"]
        assert k.pulses(0) == k.pulses(1) == 1
        assert k.events("pickup")[0].body["compartments"] == ["cmp_000", "cmp_001"]

    run_kiosk(tmp_path, scenario, pages=[_site()])


def test_a_stuck_door_goes_out_of_service_and_the_code_still_works(tmp_path: Path) -> None:
    bank = Bank(2, 16)
    bank.jam((0, 2))

    async def scenario(k: Kiosk) -> None:
        answer = await k.pickup(pin="04817265")
        assert answer.status_code == 409 and answer.json()["code"] == "door_not_opened"
        assert k.pulses(2) == 2  # the driver's retry
        assert k.events("pickup") == []
        (out,) = k.events("out_of_service")
        assert out.body == {"compartment_id": "cmp_002", "reason": "lock_stuck"}
        assert k.agent.store.compartment("cmp_002").state == "out_of_service"  # type: ignore[union-attr]
        assert [a["state"] for a in k.alarms("door_jammed")] == ["raised"]
        k.bank.jam((0, 2), False)
        again = await k.pickup(pin="04817265")
        assert again.status_code == 200
        assert k.pulses(2) == 3
        # It opened after all: back in service, the alarm cleared.
        assert [a["state"] for a in k.alarms("door_jammed")] == ["raised", "cleared"]
        assert [e.body["compartment_id"] for e in k.events("in_service")] == ["cmp_002"]

    run_kiosk(tmp_path, scenario, pages=[_site()], bank=bank)


def test_an_order_with_one_stuck_door_opens_the_others_and_reports_only_those(
    tmp_path: Path,
) -> None:
    bank = Bank(2, 16)
    bank.jam((0, 1))

    async def scenario(k: Kiosk) -> None:
        body = (await k.pickup(pin="55556666")).json()
        assert [c["id"] for c in body["compartments"]] == ["cmp_000"]
        assert [c["id"] for c in body["failed"]] == ["cmp_001"]
        assert k.events("pickup")[0].body["compartments"] == ["cmp_000"]
        assert len(k.events("out_of_service")) == 1

    run_kiosk(tmp_path, scenario, pages=[_site()], bank=bank)


def test_bad_input_is_refused_with_problem_json(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        cases = [
            ({}, 422, "invalid_input"),
            ({"pin": "1", "qr": "x"}, 422, "invalid_input"),
            ({"qr": "x", "phone": "1234"}, 422, "invalid_input"),
            ({"pin": "12ab"}, 403, "invalid_code"),
            ({"qr": "not a token"}, 403, "invalid_code"),
            ({"pin": "1", "extra": 1}, 422, "invalid_input"),
        ]
        for body, status, code in cases:
            answer = await k.pickup(**body)
            assert (answer.status_code, answer.json()["code"]) == (status, code), body
        raw = await k.api.post(
            "/api/pickup", content=b"{", headers={"content-type": "application/json"}
        )
        assert raw.status_code == 400 and raw.json()["code"] == "malformed_json"
        assert sum(k.pulses(n) for n in range(20)) == 0

    run_kiosk(tmp_path, scenario, pages=[_site()])
