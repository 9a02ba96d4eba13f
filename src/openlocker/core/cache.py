"""A small time-bounded cache for data that changes rarely (API keys, size classes, sites).

Entries live ``ttl`` seconds, so a change made by another process (a revoked key, a new
size class) is seen everywhere within that time; a change made in this process is seen
at once when it ``discard``-s the entry. Nothing else relies on the cache.

Anyone can make a lookup miss (send a made-up API key), so misses (``None`` values) get
room of their own: made-up keys only ever push out other misses, never a known key. Both
rooms drop their least recently used entry when full, one at a time.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

_Entries = OrderedDict[Any, tuple[float, Any]]


class TtlCache:
    """Maps keys to values for ``ttl`` seconds, least recently used out first; safe to share
    between threads (and greenlets: no lock is held while a value loads)."""

    def __init__(self, ttl: float, max_entries: int = 10_000, max_misses: int = 1_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_misses = max_misses
        self._lock = threading.Lock()
        self._found: _Entries = OrderedDict()
        self._missed: _Entries = OrderedDict()
        # Discards and load starts are numbered in one sequence: a load that started before
        # the latest discard of its key may have read what the discard meant to drop.
        self._sequence = 0
        self._loading: dict[Any, int] = {}
        self._discarded: dict[Any, int] = {}

    def get_or_load(self, key: Any, load: Callable[[], Any]) -> Any:
        """The cached value for ``key``, or ``load()``'s, cached (errors are not cached).

        A load that was under way when ``key`` was discarded returns its value without
        caching it: it may have read the data before the change the discard announced.
        """
        now = time.monotonic()
        with self._lock:
            found, value = self._cached(key, now)
            if found:
                return value
            self._sequence += 1
            started = self._sequence
            self._loading[key] = self._loading.get(key, 0) + 1
        try:
            value = load()
        except BaseException:
            with self._lock:
                self._end_load(key)
            raise
        with self._lock:
            if self._end_load(key) < started:
                self._store(key, (now + self.ttl, value))
        return value

    def peek(self, key: Any) -> tuple[bool, Any]:
        """``(True, value)`` while ``key`` is cached, else ``(False, None)``; never loads."""
        with self._lock:
            return self._cached(key, time.monotonic())

    def discard(self, key: Any) -> None:
        """Forget ``key``, and keep loads of it already under way from caching what they read."""
        with self._lock:
            self._found.pop(key, None)
            self._missed.pop(key, None)
            if key in self._loading:
                self._sequence += 1
                self._discarded[key] = self._sequence

    def clear(self) -> None:
        """``discard`` every key."""
        with self._lock:
            self._found.clear()
            self._missed.clear()
            self._sequence += 1
            self._discarded.update(dict.fromkeys(self._loading, self._sequence))

    def _cached(self, key: Any, now: float) -> tuple[bool, Any]:
        for entries in (self._found, self._missed):
            entry = entries.get(key)
            if entry is not None:
                if entry[0] > now:
                    entries.move_to_end(key)
                    return True, entry[1]
                del entries[key]
        return False, None

    def _store(self, key: Any, entry: tuple[float, Any]) -> None:
        missed = entry[1] is None
        entries, other = (self._missed, self._found) if missed else (self._found, self._missed)
        other.pop(key, None)  # the key came into being, or ceased to, since it was cached
        entries[key] = entry
        entries.move_to_end(key)
        if len(entries) > (self.max_misses if missed else self.max_entries):
            entries.popitem(last=False)

    def _end_load(self, key: Any) -> int:
        """Count one load of ``key`` as ended; the number of its latest discard (0: none)."""
        discarded = self._discarded.get(key, 0)
        remaining = self._loading[key] - 1
        if remaining:
            self._loading[key] = remaining
        else:
            del self._loading[key]
            self._discarded.pop(key, None)
        return discarded
