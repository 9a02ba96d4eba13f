"""A small time-bounded cache for data that changes rarely (API keys, size classes).

Entries live ``ttl`` seconds, so a change made by another process (a revoked key, a new
size class) is seen everywhere within that time; nothing else relies on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class TtlCache:
    """Maps keys to values for ``ttl`` seconds; safe to share between threads."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[Any, tuple[float, Any]] = {}

    def get_or_load(self, key: Any, load: Callable[[], Any]) -> Any:
        """The cached value for ``key``, or ``load()``'s, cached (errors are not cached)."""
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (now + self.ttl, value)
        return value

    def peek(self, key: Any) -> tuple[bool, Any]:
        """``(True, value)`` while ``key`` is cached, else ``(False, None)``; never loads."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return True, entry[1]
        return False, None

    def discard(self, key: Any) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
