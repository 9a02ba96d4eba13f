"""Fixtures: both serial drivers against their emulators."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from openlocker.kiosk.boards.bank import Bank
from tests.kiosk.boards.rigs import Rig, make_rig


@pytest.fixture(params=["kerong", "bu8a"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    """Both serial drivers, each against its emulator of two boards of 16 locks."""
    made = make_rig(request.param, Bank(2, 16))
    with made.emulator:
        yield made
