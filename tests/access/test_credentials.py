"""Pickup credentials: PINs, link tokens, and QR tokens a locker verifies offline."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from openlocker.access.credentials import (
    FORMAT_TEXT,
    FORMAT_ULID,
    QrClaims,
    credential_digest,
    generate_link_token,
    generate_pin,
    issue_qr,
    read_qr,
    verify_qr,
)
from openlocker.core.errors import DomainError, Forbidden
from openlocker.core.ids import new_id
from openlocker.core.keys import Keyring, b64url, load_public_key, unb64url

KEYRING = Keyring("test-secret-key")
NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(hours=72)


@pytest.fixture
def site_id() -> str:
    return new_id("sit")


@pytest.fixture
def parcel_id() -> str:
    return new_id("prc")


def qr_for(
    parcel_id: str, site_id: str, *, expires_at: datetime = EXPIRES, version: int = 1
) -> str:
    return issue_qr(
        KEYRING.site_signing_key(site_id, version),
        parcel_id=parcel_id,
        site_id=site_id,
        expires_at=expires_at,
        key_version=version,
    )


def verify(token: str, site_id: str, *, now: datetime = NOW, version: int = 1) -> QrClaims:
    public_key = load_public_key(KEYRING.site_public_key(site_id, version))
    return verify_qr(token, public_key, site_id=site_id, now=now)


def refusal(token: str, site_id: str, *, now: datetime = NOW, version: int = 1) -> str:
    with pytest.raises(Forbidden) as refused:
        verify(token, site_id, now=now, version=version)
    assert refused.value.status == 403
    return refused.value.code


# --- PINs and links --------------------------------------------------------------------------


def test_pins_are_digits_of_the_asked_length() -> None:
    for length in (4, 6, 8, 12):
        pin = generate_pin(length)
        assert len(pin) == length and pin.isdigit()
    assert len(generate_pin()) == 8


def test_pins_keep_their_leading_zeros() -> None:
    # One 1-digit PIN in ten is "0"; over 400 draws missing it has probability 0.9**400 ~ 5e-19.
    assert "0" in {generate_pin(1) for _ in range(400)}
    short = [generate_pin(2) for _ in range(2000)]
    assert all(len(pin) == 2 for pin in short)
    assert any(pin.startswith("0") for pin in short)


def test_pin_digits_are_spread_evenly() -> None:
    digits = Counter("".join(generate_pin(8) for _ in range(2500)))  # 20 000 digits
    assert set(digits) == set("0123456789")
    # Chi-square, 9 degrees of freedom: a fair generator exceeds 44.81 once in a million runs.
    expected = 2000
    chi_square = sum((count - expected) ** 2 / expected for count in digits.values())
    assert chi_square < 44.81


def test_pins_differ_between_draws() -> None:
    assert len({generate_pin() for _ in range(1000)}) > 990


def test_a_pin_needs_a_digit() -> None:
    with pytest.raises(ValueError):
        generate_pin(0)


def test_link_tokens_are_url_safe_and_carry_128_bits() -> None:
    tokens = {generate_link_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
        assert len(unb64url(token)) * 8 >= 128


def test_a_digest_is_scoped_to_kind_and_site() -> None:
    pin = "04711234"
    here = credential_digest(KEYRING, "pin", "sit_A", pin)
    assert here == credential_digest(KEYRING, "pin", "sit_A", pin)
    assert re.fullmatch(r"[0-9a-f]{64}", here)
    assert pin not in here
    assert here != credential_digest(KEYRING, "pin", "sit_B", pin)
    assert here != credential_digest(KEYRING, "link", "sit_A", pin)
    assert here != credential_digest(Keyring("another-server"), "pin", "sit_A", pin)


def test_a_digest_needs_a_known_kind() -> None:
    with pytest.raises(ValueError):
        credential_digest(KEYRING, "password", "sit_A", "1234")


# --- QR tokens -------------------------------------------------------------------------------


def test_a_qr_token_round_trips(parcel_id: str, site_id: str) -> None:
    token = qr_for(parcel_id, site_id)
    claims = verify(token, site_id)
    assert claims.parcel_id == parcel_id
    assert claims.site_id == site_id
    assert claims.expires_at == EXPIRES
    assert claims.expires_at.tzinfo is not None
    assert claims.version == FORMAT_ULID
    assert claims.key_version == 1
    assert read_qr(token) == claims


def test_a_qr_token_is_compact(parcel_id: str, site_id: str) -> None:
    token = qr_for(parcel_id, site_id)
    print(f"QR token: {len(token)} characters")
    assert len(token) < 140
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)


def test_reissued_tokens_for_one_parcel_differ(parcel_id: str, site_id: str) -> None:
    tokens = [qr_for(parcel_id, site_id) for _ in range(20)]
    assert len(set(tokens)) > 1
    assert all(verify(token, site_id).parcel_id == parcel_id for token in tokens)


def test_expiry_is_kept_to_the_second_rounded_down(parcel_id: str, site_id: str) -> None:
    token = qr_for(parcel_id, site_id, expires_at=EXPIRES + timedelta(microseconds=999_999))
    assert read_qr(token).expires_at == EXPIRES


def test_a_naive_expiry_is_taken_as_utc(parcel_id: str, site_id: str) -> None:
    token = qr_for(parcel_id, site_id, expires_at=EXPIRES.replace(tzinfo=None))
    assert read_qr(token).expires_at == EXPIRES


def test_a_qr_token_expires_at_its_deadline(parcel_id: str, site_id: str) -> None:
    token = qr_for(parcel_id, site_id)
    assert verify(token, site_id, now=EXPIRES - timedelta(seconds=1)).parcel_id == parcel_id
    assert refusal(token, site_id, now=EXPIRES) == "code_expired"
    assert refusal(token, site_id, now=EXPIRES + timedelta(days=30)) == "code_expired"


def test_a_token_for_another_site_is_refused_as_wrong_site(parcel_id: str, site_id: str) -> None:
    token = qr_for(parcel_id, site_id)
    assert refusal(token, new_id("sit")) == "wrong_site"


def test_a_token_signed_with_another_key_is_refused(parcel_id: str, site_id: str) -> None:
    forged = issue_qr(
        Keyring("an-attackers-secret").site_signing_key(site_id),
        parcel_id=parcel_id,
        site_id=site_id,
        expires_at=EXPIRES,
    )
    assert read_qr(forged).site_id == site_id  # reads fine: reading is not trusting
    assert refusal(forged, site_id) == "invalid_code"


def test_a_token_signed_with_a_retired_key_version_is_refused(parcel_id: str, site_id: str) -> None:
    old = qr_for(parcel_id, site_id, version=1)
    assert verify(old, site_id, version=1).key_version == 1
    assert refusal(old, site_id, version=2) == "invalid_code"
    new = qr_for(parcel_id, site_id, version=2)
    assert read_qr(new).key_version == 2
    assert verify(new, site_id, version=2).parcel_id == parcel_id


def test_flipping_any_byte_makes_a_token_invalid(parcel_id: str, site_id: str) -> None:
    raw = unb64url(qr_for(parcel_id, site_id))
    for position in range(len(raw)):
        tampered = bytearray(raw)
        tampered[position] ^= 0x01
        # Flipping a site id byte reads as another site; anything else as an invalid code.
        assert refusal(b64url(bytes(tampered)), site_id) in {"invalid_code", "wrong_site"}
    site_bytes = range(2 + 16, 2 + 32)
    for position in set(range(len(raw))) - set(site_bytes):
        tampered = bytearray(raw)
        tampered[position] ^= 0x80
        assert refusal(b64url(bytes(tampered)), site_id) == "invalid_code"


def test_a_token_cannot_be_moved_to_a_later_expiry(parcel_id: str, site_id: str) -> None:
    raw = bytearray(unb64url(qr_for(parcel_id, site_id, expires_at=NOW - timedelta(hours=1))))
    raw[2 + 32 : 2 + 32 + 4] = int((NOW + timedelta(days=1)).timestamp()).to_bytes(4, "big")
    assert refusal(b64url(bytes(raw)), site_id) == "invalid_code"


@pytest.mark.parametrize(
    "garbage",
    ["", "A", "not a token!", "%%%%", "AAAA", "A" * 139, "A" * 5000, "AQ", "8J-Ygw", "ü"],
)
def test_garbage_is_an_invalid_code(garbage: str, site_id: str) -> None:
    with pytest.raises(Forbidden) as refused:
        read_qr(garbage)
    assert refused.value.code == "invalid_code"
    assert refusal(garbage, site_id) == "invalid_code"


def test_truncated_and_padded_tokens_are_invalid(parcel_id: str, site_id: str) -> None:
    token = qr_for(parcel_id, site_id)
    for bad in (token[:-1], token[:-4], token + "A", token + "==", " " + token, token[:50]):
        assert refusal(bad, site_id) == "invalid_code"


def test_only_the_canonical_spelling_is_accepted(parcel_id: str, site_id: str) -> None:
    token = qr_for(parcel_id, site_id)
    # 104 bytes leave 2 spare low bits in the last character; setting one spells the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    variant = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 1]
    assert unb64url(variant) == unb64url(token)
    assert refusal(variant, site_id) == "invalid_code"


def test_garbage_errors_are_domain_errors() -> None:
    with pytest.raises(DomainError):
        read_qr("????")


def test_other_id_shapes_still_work_in_the_text_format() -> None:
    site, parcel = "waw-mokotow-01", "order:4711/ü"
    token = qr_for(parcel, site)
    claims = verify(token, site)
    assert (claims.parcel_id, claims.site_id, claims.version) == (parcel, site, FORMAT_TEXT)


@pytest.mark.parametrize(
    "parcel",
    [
        "prc_01jf3zabcdefghjkmnpqrstvwx",  # lower case
        "prc_81JF3ZABCDEFGHJKMNPQRSTVWX",  # above 2**128
        "prc_01JF3Z",  # too short
        "par_" + "0" * 26,  # another prefix
    ],
)
def test_ids_that_are_not_canonical_ulids_round_trip_exactly(parcel: str, site_id: str) -> None:
    claims = verify(qr_for(parcel, site_id), site_id)
    assert claims.parcel_id == parcel
    assert claims.version == FORMAT_TEXT


def test_a_ulid_id_with_every_crockford_letter_round_trips(site_id: str) -> None:
    parcel = "prc_7ZZYXWVTSRQPNMKJHGFEDCBA98"
    assert verify(qr_for(parcel, site_id), site_id).parcel_id == parcel


def test_out_of_range_inputs_are_programming_errors(parcel_id: str, site_id: str) -> None:
    key = KEYRING.site_signing_key(site_id)
    with pytest.raises(ValueError):
        issue_qr(key, parcel_id=parcel_id, site_id=site_id, expires_at=EXPIRES, key_version=0)
    with pytest.raises(ValueError):
        issue_qr(key, parcel_id=parcel_id, site_id=site_id, expires_at=EXPIRES, key_version=256)
    with pytest.raises(ValueError):
        beyond_2106 = datetime(2107, 1, 1, tzinfo=UTC)
        issue_qr(key, parcel_id=parcel_id, site_id=site_id, expires_at=beyond_2106)
    with pytest.raises(ValueError):
        issue_qr(key, parcel_id="", site_id="x", expires_at=EXPIRES)
