"""`openlocker plan routes` (being built)."""

from __future__ import annotations


def routes_command() -> None:
    """Not built yet."""
    raise SystemExit("openlocker plan routes is being built")
