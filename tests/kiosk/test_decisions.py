"""The kiosk's decisions as plain functions: no store, no board, no clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from openlocker.access import attempts
from openlocker.core.errors import DomainError
from openlocker.core.keys import load_public_key
from openlocker.kiosk import decisions
from openlocker.kiosk.store import Compartment, CompartmentRef, Credential, Expected, SizeClass
from tests.kiosk.helpers import KEYRING, SITE, START, qr_token


def _credential(**changes: object) -> Credential:
    fields: dict[str, object] = {
        "id": "crd_1",
        "parcel_id": "prc_1",
        "order_id": None,
        "phone": "tag",
        "expires_at": START + timedelta(days=1),
        "compartments": (CompartmentRef("cmp_1", "A1"),),
        "active": True,
        "used_at": None,
    }
    return Credential(**(fields | changes))  # type: ignore[arg-type]


def _code(call: object) -> str:
    with pytest.raises(DomainError) as refused:
        call()  # type: ignore[operator]
    return refused.value.code


def test_check_credential_gives_the_servers_codes() -> None:
    ok = _credential()
    assert decisions.check_credential(ok, START) is ok
    assert decisions.check_credential(ok, START, phone="tag") is ok
    cases = {
        "unknown": (None, {}),
        "other phone": (ok, {"phone": "other"}),
        "used": (_credential(used_at=START), {}),
        "voided": (_credential(active=False), {}),
        "expired": (_credential(expires_at=START), {}),
    }
    codes = {
        name: _code(lambda c=c, kw=kw: decisions.check_credential(c, START, **kw))
        for name, (c, kw) in cases.items()
    }
    assert codes == {
        "unknown": "invalid_code",
        "other phone": "invalid_code",
        "used": "code_used",
        "voided": "invalid_code",
        "expired": "code_expired",
    }


def test_check_qr_needs_a_valid_key_of_the_site() -> None:
    keys = {v: load_public_key(KEYRING.site_public_key(SITE, v)) for v in (1, 2)}
    token = qr_token("prc_1", version=2)
    assert decisions.check_qr(token, keys, site_id=SITE, now=START).parcel_id == "prc_1"
    revoked = {2: keys[2]}
    with pytest.raises(DomainError) as refused:
        decisions.check_qr(qr_token("prc_1", version=1), revoked, site_id=SITE, now=START)
    assert refused.value.code == "invalid_code"
    assert refused.value.extra["reason"] == "no valid site key of version 1"
    # Signed by version 1's key but claiming version 2: the signature does not verify.
    swapped = {2: keys[1]}
    with pytest.raises(DomainError) as refused:
        decisions.check_qr(token, swapped, site_id=SITE, now=START)
    assert refused.value.extra["reason"] == "signature does not verify"
    late = START + timedelta(days=3)
    assert _code(lambda: decisions.check_qr(token, keys, site_id=SITE, now=late)) == "code_expired"
    assert _code(lambda: decisions.check_qr(token, keys, site_id="sit_x", now=START)) == (
        "wrong_site"
    )
    assert _code(lambda: decisions.check_qr("AAAA", keys, site_id=SITE, now=START)) == (
        "invalid_code"
    )


def test_count_failure_follows_the_servers_schedule_and_says_when_a_lockout_begins() -> None:
    record = None
    began = []
    now = START
    for _ in range(attempts.FREE_FAILURES + 2):
        counted = decisions.count_failure(record, now)
        record = counted.attempts
        began.append(counted.lockout_began)
    assert record is not None and record.failures == attempts.FREE_FAILURES + 2
    assert began == [False] * (attempts.FREE_FAILURES - 1) + [True, False, False]
    assert record.locked_until == now + timedelta(seconds=120)
    with pytest.raises(DomainError) as refused:
        decisions.check_allowed(record, now, bucket=decisions.PIN_ALONE)
    assert refused.value.code == "too_many_attempts"
    assert refused.value.extra == {"retry_after": 120, "phone_accepted": True}
    decisions.check_allowed(record, now + timedelta(seconds=120), bucket=decisions.PIN_ALONE)
    # Quiet hours forgive, one failure an hour.
    later = now + timedelta(seconds=attempts.FORGIVE_SECONDS * 3)
    assert decisions.count_failure(record, later).attempts.failures == record.failures - 3 + 1


def _expected(**changes: object) -> Expected:
    fields: dict[str, object] = {
        "parcel_id": "prc_1",
        "tracking_number": "T1",
        "org_id": "org_a",
        "size": "M",
        "temperature": "ambient",
        "compartment_id": None,
        "deposited": False,
    }
    return Expected(**(fields | changes))  # type: ignore[arg-type]


def test_check_expected() -> None:
    assert decisions.check_expected([_expected()], org_id="org_a").parcel_id == "prc_1"
    assert _code(lambda: decisions.check_expected([], org_id="org_a")) == "parcel_not_expected"
    assert _code(lambda: decisions.check_expected([_expected()], org_id="org_b")) == (
        "wrong_carrier"
    )
    done = [_expected(deposited=True)]
    assert _code(lambda: decisions.check_expected(done, org_id="org_a")) == "already_deposited"


def _compartment(n: int, size: str, *, state: str = "free", temperature: str = "ambient",
                 mapped: bool = True) -> Compartment:  # fmt: skip
    return Compartment(
        f"cmp_{n}", f"A{n}", size, temperature, state, "closed",
        0 if mapped else None, n if mapped else None,
    )  # fmt: skip


SIZES = [
    SizeClass("S", 400, 100, 600),
    SizeClass("M", 400, 200, 600),
    SizeClass("L", 400, 400, 600),
]


def test_choose_compartment_prefers_the_reservation_then_the_smallest_fitting_free_one() -> None:
    compartments = [
        _compartment(1, "L"),
        _compartment(2, "M", state="occupied"),
        _compartment(3, "M"),
        _compartment(4, "S"),
        _compartment(5, "M", temperature="chilled"),
        _compartment(6, "M", mapped=False),
        _compartment(7, "L", state="reserved"),
    ]

    def choose(parcel: Expected, busy: set[str] = frozenset(), sizes=SIZES) -> str | None:  # type: ignore[assignment,no-untyped-def]
        chosen = decisions.choose_compartment(parcel, compartments, busy=set(busy), sizes=sizes)
        return None if chosen is None else chosen.id

    assert choose(_expected()) == "cmp_3"
    assert choose(_expected(compartment_id="cmp_7")) == "cmp_7"
    assert choose(_expected(compartment_id="cmp_2")) == "cmp_3"  # reserved one taken meanwhile
    assert choose(_expected(), busy={"cmp_3"}) == "cmp_1"
    assert choose(_expected(), busy={"cmp_3"}, sizes=()) is None  # no sizes: only M fits M
    assert choose(_expected(temperature="chilled")) == "cmp_5"
    assert choose(_expected(size="S")) == "cmp_4"
    assert choose(_expected(size="L"), busy={"cmp_1"}) is None
