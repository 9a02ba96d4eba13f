"""`openlocker plan capacity` (being built)."""

from __future__ import annotations


def capacity_command() -> None:
    """Not built yet."""
    raise SystemExit("openlocker plan capacity is being built")
