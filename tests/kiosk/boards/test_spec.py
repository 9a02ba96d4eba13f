"""``--board SPEC`` gives the driver it names, or a clear refusal."""

from __future__ import annotations

import pytest

from openlocker.core.errors import InvalidInput
from openlocker.kiosk.boards import board_from_spec
from openlocker.kiosk.boards.bu8a import Bu8aBoard
from openlocker.kiosk.boards.kerong import KerongBoard
from openlocker.kiosk.boards.sim import SimBoard


def test_sim_specs() -> None:
    plain = board_from_spec("sim")
    sized = board_from_spec("sim:3x16,poll=0.1")

    assert isinstance(plain, SimBoard) and (plain.boards, plain.locks) == (1, 16)
    assert isinstance(sized, SimBoard) and (sized.boards, sized.locks) == (3, 16)
    assert sized.poll_interval == 0.1


def test_serial_specs_with_and_without_a_baud_rate() -> None:
    kerong = board_from_spec("kerong:/dev/ttyUSB0@19200")
    bu8a = board_from_spec("bu8a:/dev/ttyS1")
    tuned = board_from_spec("kerong:/dev/ttyUSB1@38400,boards=3,timeout=0.05,retries=1,settle=0")

    assert isinstance(kerong, KerongBoard)
    assert (kerong.bus.port, kerong.bus.baudrate, kerong.boards) == ("/dev/ttyUSB0", 19200, 1)
    assert isinstance(bu8a, Bu8aBoard)
    assert (bu8a.bus.port, bu8a.bus.baudrate, bu8a.locks) == ("/dev/ttyS1", 9600, 16)
    assert isinstance(tuned, KerongBoard)
    assert (tuned.bus.baudrate, tuned.boards, tuned.bus.timeout) == (38400, 3, 0.05)
    assert (tuned.bus.retries, tuned.settle) == (1, 0.0)
    assert board_from_spec("kerong:socket://10.0.0.5:4001").bus.port == (  # type: ignore[attr-defined]
        "socket://10.0.0.5:4001"
    )


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("modbus:/dev/ttyS0", "unknown board kind"),
        ("kerong", "PORT[@BAUD]"),
        ("kerong:/dev/ttyUSB0@fast", "PORT[@BAUD]"),
        ("kerong:/dev/ttyUSB0,boards=11", "1 to 10 boards"),
        ("kerong:/dev/ttyUSB0,locks=24", "option 'locks=24'"),
        ("bu8a:/dev/ttyS1,retries=two", "needs a number"),
        ("bu8a:/dev/ttyS1,timeout=0", "timeout must be positive"),
        ("sim:3by16", "BOARDSxLOCKS"),
        ("sim:0x16", "at least one board"),
        ("sim,boards", "option 'boards'"),
    ],
)
def test_a_bad_spec_is_refused_with_its_reason(spec: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        board_from_spec(spec)

    assert refused.value.code == "invalid_board_spec"
    assert reason in refused.value.detail
