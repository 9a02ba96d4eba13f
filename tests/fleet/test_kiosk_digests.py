"""Every credential set carries the kiosk's digests of its codes, under a key of its site."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from openlocker.access.credentials import kiosk_digest, phone_suffix
from openlocker.access.service import access_link
from openlocker.core.context import Context
from openlocker.core.keys import Keyring
from openlocker.parcels import service as parcels
from tests.factories import Factory
from tests.test_migrations import _migrate


def _kiosk_row(ctx: Context, parcel_id: str) -> tuple[Any, ...]:
    with ctx.db.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT kiosk_pin, kiosk_qr, kiosk_phone FROM credential_sets"
                " WHERE parcel_id = :p AND active"
            ),
            {"p": parcel_id},
        ).one()
    return tuple(row)


def test_kiosk_digest_is_hmac_of_kind_and_secret_per_site() -> None:
    keyring = Keyring("secret")
    key = keyring.kiosk_digest_key("sit_A")
    assert len(key) == 32
    assert key != keyring.kiosk_digest_key("sit_B")
    assert key == Keyring("secret").kiosk_digest_key("sit_A")
    assert key != Keyring("another").kiosk_digest_key("sit_A")
    pin = kiosk_digest(key, "pin", "12345678")
    assert len(pin) == 64 and int(pin, 16) >= 0
    assert pin != kiosk_digest(key, "qr", "12345678")
    assert pin != kiosk_digest(keyring.kiosk_digest_key("sit_B"), "pin", "12345678")
    # kind \0 secret: no two (kind, secret) pairs run together.
    assert pin == hmac.new(key, b"pin\x0012345678", hashlib.sha256).hexdigest()


def test_issued_codes_match_their_kiosk_digests(
    factory: Factory, ctx: Context, client: TestClient
) -> None:
    carrier = factory.org()
    site = factory.site("SS")
    parcel = factory.deposited(carrier, site, recipient={"name": "Ana", "phone": "+48 601 234 567"})
    key = ctx.keyring.kiosk_digest_key(site)
    pickup = parcel["pickup"]
    assert _kiosk_row(ctx, parcel["id"]) == (
        kiosk_digest(key, "pin", pickup["pin"]),
        kiosk_digest(key, "qr", pickup["qr"]),
        kiosk_digest(key, "phone", phone_suffix("+48 601 234 567") or ""),
    )
    alone = factory.deposited(carrier, site)
    assert _kiosk_row(ctx, alone["id"])[2] is None

    # A reissue gives the new codes' digests.
    again = client.post(f"/v1/parcels/{parcel['id']}/credentials", headers=carrier.headers).json()
    pin, qr, _ = _kiosk_row(ctx, parcel["id"])
    assert pin == kiosk_digest(key, "pin", again["pickup"]["pin"])
    assert qr == kiosk_digest(key, "qr", again["pickup"]["qr"])


def test_an_extended_deadline_gives_the_new_qr_tokens_digest(
    factory: Factory, ctx: Context, client: TestClient
) -> None:
    carrier = factory.org()
    site = factory.site("S")
    parcel = factory.deposited(carrier, site)
    token = parcel["pickup"]["link"].rsplit("/", 1)[1]
    before = _kiosk_row(ctx, parcel["id"])
    parcels.extend_deadline(ctx, token)
    after = _kiosk_row(ctx, parcel["id"])
    assert after[0] == before[0]  # the PIN stays
    assert after[1] != before[1]
    page = client.get(f"/p/{token}")
    assert page.status_code == 200
    key = ctx.keyring.kiosk_digest_key(site)
    with ctx.db.sql.transaction(write=False) as tx:
        link = access_link(ctx, tx, token)
        assert link is not None
        _, qr = link.open(ctx, token) or ("", "")
    assert after[1] == kiosk_digest(key, "qr", qr)


def test_migration_0009_down_and_up_keeps_sets_and_compartments(
    factory: Factory, ctx: Context
) -> None:
    carrier = factory.org()
    site = factory.site("SM")
    parcel = factory.deposited(carrier, site)
    _migrate(ctx, "0007", down=True)
    with ctx.db.engine.connect() as conn:
        columns = conn.execute(text("SELECT * FROM credential_sets")).keys()
    assert "kiosk_pin" not in columns
    _migrate(ctx, "head")
    ctx.cache.clear()
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT label, board, lock FROM compartments ORDER BY label")
        ).all()
    # Compartments from before the lock map wait for one; sets from before have no digests.
    assert [tuple(r) for r in rows] == [("A1", None, None), ("A2", None, None)]
    assert _kiosk_row(ctx, parcel["id"]) == (None, None, None)
    assert factory.pick_up(site, parcel, by="pin").status_code == 200
