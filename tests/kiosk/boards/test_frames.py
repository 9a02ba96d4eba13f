"""The wire frames of both protocols, byte for byte."""

from __future__ import annotations

import pytest

from openlocker.kiosk.boards import bu8a, kerong


def test_kerong_frames_match_the_documented_bytes() -> None:
    assert kerong.unlock_frame(0, 0) == bytes.fromhex("02 00 31 03 36")
    assert kerong.unlock_frame(2, 11) == bytes.fromhex("02 2b 31 03 61")
    assert kerong.status_frame(1) == bytes.fromhex("02 10 30 03 45")


def test_a_kerong_status_answer_decodes_lock_and_item_bits() -> None:
    answer = kerong.status_answer(3, open_bits=0b1000_0000_0000_0001, item_bits=0b10)
    assert answer[:3] == bytes.fromhex("02 30 35") and answer[7] == 0x03
    assert kerong.refuse_status_answer(3).refuse(answer) is None

    states = kerong.decode_status(answer, 3)

    assert [s.address[1] for s in states if s.door_open] == [0, 15]
    assert [s.address[1] for s in states if s.item] == [1]
    assert all(s.locked is not s.door_open for s in states)


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({8: 0x00}, "garbled"),  # checksum
        ({7: 0x04}, "garbled"),  # end byte
        ({2: 0x31}, "garbled"),  # command
        ({1: 0x40}, "wrong_address"),
    ],
)
def test_a_kerong_answer_that_is_not_the_one_awaited_is_refused(
    change: dict[int, int], kind: str
) -> None:
    answer = bytearray(kerong.status_answer(3, 0, 0))
    for index, value in change.items():
        answer[index] = value
    if 8 not in change:
        answer[8] = kerong.checksum(bytes(answer[:8]))

    refusal = kerong.refuse_status_answer(3).refuse(bytes(answer))

    assert refusal is not None and refusal.kind == kind


def test_8a_frames_match_the_documented_bytes() -> None:
    # Address (0, 0) is the board's own "board 1 lock 1".
    assert bu8a.unlock_frame(0, 0) == bytes.fromhex("8a 01 01 11 9b")
    assert bu8a.frame(bu8a.QUERY_HEAD, 0, 0, bu8a.QUERY) == bytes.fromhex("80 01 01 33 b3")
    assert bu8a.unlock_frame(2, 23) == bytes.fromhex("8a 03 18 11 80")


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ("80 01 01 00 80", None),
        ("80 01 01 11 91", None),
        ("80 01 01 11 90", "garbled"),  # checksum
        ("80 01 01 33 b3", "garbled"),  # the query echoed back, not a state
        ("80 02 01 11 92", "wrong_address"),
        ("80 01 02 11 92", "wrong_address"),
    ],
)
def test_8a_answers_are_checked(answer: str, kind: str | None) -> None:
    refusal = bu8a.refuse_answer(bu8a.QUERY_HEAD, 0, 0).refuse(bytes.fromhex(answer))

    assert (refusal and refusal.kind) == kind
