"""Benchmark the serial lock-board drivers against their pty emulators.

For each driver (Kerong, 8A): from ``open(board, lock)`` called to the unlock frame read in
full by the emulator, over ``--unlocks`` unlocks (p50, p99, max); how long the whole
``open()`` takes with its verification (settle 0); and the status round trip of one
``read()`` (a Kerong board status, an 8A lock query).

    .venv/bin/python bench/boards.py [--unlocks 2000] [--reads 2000]

A pty moves bytes at memory speed; on a real bus add the frame's time on the wire (10 bits
a byte: 5 bytes are 2.6 ms at 19200 baud, 5.2 ms at 9600). The machine's load average is
printed before and after: other processes on a shared machine slow every figure down.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable

from openlocker.kiosk.boards import bu8a, kerong
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.base import BoardDriver
from openlocker.kiosk.boards.bu8a import Bu8aBoard
from openlocker.kiosk.boards.emulators import Bu8aEmulator, KerongEmulator, PtyEmulator
from openlocker.kiosk.boards.kerong import KerongBoard


def percentiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    p50, p99, top = cuts[49] * 1e3, cuts[98] * 1e3, max(samples) * 1e3
    return f"p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  max {top:6.3f} ms"


async def measure(
    emulator: PtyEmulator,
    driver: BoardDriver,
    unlock_frame: Callable[[int, int], bytes],
    unlocks: int,
    reads: int,
) -> tuple[list[float], list[float], list[float]]:
    await driver.start()
    on_wire: list[float] = []
    opened: list[float] = []
    addresses = driver.addresses
    try:
        for n in range(unlocks):
            address = addresses[n % len(addresses)]
            seen = len(emulator.received)
            started = time.perf_counter()
            await driver.open(address)
            opened.append(time.perf_counter() - started)
            frame = unlock_frame(*address)
            arrival = next(r.at for r in emulator.received[seen:] if r.frame == frame)
            on_wire.append(arrival - started)
            emulator.bank.close_door(address)
        round_trips: list[float] = []
        for n in range(reads):
            started = time.perf_counter()
            await driver.read(addresses[n % len(addresses)])
            round_trips.append(time.perf_counter() - started)
    finally:
        await driver.close()
    return on_wire, opened, round_trips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unlocks", type=int, default=2000)
    parser.add_argument("--reads", type=int, default=2000)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rigs: list[
        tuple[str, Callable[[str], BoardDriver], type[PtyEmulator], Callable[..., bytes]]
    ] = [
        (
            "kerong",
            lambda port: KerongBoard(port, boards=2, settle=0),
            KerongEmulator,
            kerong.unlock_frame,
        ),
        ("bu8a", lambda port: Bu8aBoard(port, boards=2, settle=0), Bu8aEmulator, bu8a.unlock_frame),
    ]
    for name, make_driver, emulator_class, unlock_frame in rigs:
        with emulator_class(Bank(2, 16)) as emulator:
            on_wire, opened, round_trips = asyncio.run(
                measure(
                    emulator, make_driver(emulator.port), unlock_frame, args.unlocks, args.reads
                )
            )
        print(f"{name:7} open() to unlock frame read ({len(on_wire)}): {percentiles(on_wire)}")
        print(f"{name:7} open() verified, settle 0  ({len(opened)}): {percentiles(opened)}")
        print(
            f"{name:7} read() round trip          ({len(round_trips)}): {percentiles(round_trips)}"
        )
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
