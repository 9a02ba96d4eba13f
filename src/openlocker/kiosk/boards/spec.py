"""``--board SPEC`` → a driver.

    sim[:BOARDSxLOCKS][,OPTION=VALUE…]            sim, sim:3x16, sim,poll=0.1
    kerong:PORT[@BAUD][,OPTION=VALUE…]            kerong:/dev/ttyUSB0@19200,boards=3
    bu8a:PORT[@BAUD][,OPTION=VALUE…]              bu8a:/dev/ttyS1

Options: ``boards`` (serial buses; default 1), ``locks`` (bu8a; default 16), ``timeout`` and
``settle`` (seconds), ``retries``, ``poll`` (seconds between polls).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from openlocker.core.errors import InvalidInput
from openlocker.kiosk.boards import bu8a, kerong
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.base import BoardDriver
from openlocker.kiosk.boards.bu8a import Bu8aBoard
from openlocker.kiosk.boards.kerong import KerongBoard
from openlocker.kiosk.boards.sim import SimBoard

_SIM_SIZE = re.compile(r"(\d+)x(\d+)")
_PORT = re.compile(r"(?P<port>[^@]+)(?:@(?P<baud>\d+))?")
#: Each option and what it becomes: a driver keyword and a parser.
_OPTIONS: dict[str, tuple[str, Callable[[str], float | int]]] = {
    "boards": ("boards", int),
    "locks": ("locks", int),
    "timeout": ("timeout", float),
    "settle": ("settle", float),
    "retries": ("retries", int),
    "poll": ("poll_interval", float),
}
_ALLOWED = {
    "sim": {"poll"},
    "kerong": {"boards", "timeout", "settle", "retries", "poll"},
    "bu8a": {"boards", "locks", "timeout", "settle", "retries", "poll"},
}


def board_from_spec(spec: str) -> BoardDriver:
    """The driver ``spec`` describes, not yet started.

    Raises ``InvalidInput`` with code ``invalid_board_spec`` and the reason for a spec it
    cannot read; opening nothing, so a bad spec fails before any port is touched.
    """
    head, *option_texts = spec.split(",")
    kind, _, location = head.partition(":")
    if kind not in _ALLOWED:
        raise _invalid(spec, f"unknown board kind {kind!r}: use sim, kerong or bu8a")
    options = _options(spec, option_texts, _ALLOWED[kind])
    try:
        if kind == "sim":
            return SimBoard(_sim_bank(spec, location), **options)
        port, baud = _port(spec, location)
        if kind == "kerong":
            return KerongBoard(port, baud or kerong.DEFAULT_BAUD, **options)
        return Bu8aBoard(port, baud or bu8a.DEFAULT_BAUD, **options)
    except ValueError as error:
        raise _invalid(spec, str(error)) from error


def _sim_bank(spec: str, location: str) -> Bank:
    if not location:
        return Bank()
    size = _SIM_SIZE.fullmatch(location)
    if size is None:
        raise _invalid(spec, f"sim size {location!r} is not BOARDSxLOCKS, like 3x16")
    boards, locks = int(size[1]), int(size[2])
    if boards < 1 or locks < 1:
        raise _invalid(spec, "a simulated bank needs at least one board of one lock")
    return Bank(boards, locks)


def _port(spec: str, location: str) -> tuple[str, int | None]:
    match = _PORT.fullmatch(location)
    if match is None:
        raise _invalid(spec, "a serial board needs PORT[@BAUD], like kerong:/dev/ttyUSB0@19200")
    return match["port"], int(match["baud"]) if match["baud"] else None


def _options(spec: str, texts: list[str], allowed: set[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for text in texts:
        name, equals, value = text.partition("=")
        if not equals or name not in allowed:
            raise _invalid(
                spec, f"option {text!r} is not one of {', '.join(sorted(allowed))}=VALUE"
            )
        keyword, parse = _OPTIONS[name]
        try:
            options[keyword] = parse(value)
        except ValueError as error:
            raise _invalid(spec, f"option {name} needs a number, not {value!r}") from error
    return options


def _invalid(spec: str, reason: str) -> InvalidInput:
    return InvalidInput(f"board spec {spec!r}: {reason}", code="invalid_board_spec")
