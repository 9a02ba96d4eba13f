"""The cache drops its least recently used entries one at a time, keeps misses apart, and
lets no load under way across a discard store what it read."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from openlocker.core.cache import TtlCache


def test_a_full_cache_drops_only_its_least_recently_used_entry() -> None:
    cache = TtlCache(ttl=60, max_entries=3)
    for key in "abc":
        cache.get_or_load(key, lambda key=key: key.upper())
    assert cache.peek("a") == (True, "A")  # a is now the most recently used
    cache.get_or_load("d", lambda: "D")
    assert [cache.peek(key)[0] for key in "abcd"] == [True, False, True, True]


def test_misses_push_out_only_other_misses() -> None:
    cache = TtlCache(ttl=60, max_entries=3, max_misses=2)
    cache.get_or_load("known", lambda: "value")
    for n in range(1_000):
        cache.get_or_load(("unknown", n), lambda: None)
    assert cache.peek("known") == (True, "value")
    assert cache.peek(("unknown", 999)) == (True, None)
    assert cache.peek(("unknown", 997)) == (False, None)


def test_entries_expire_and_errors_are_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("openlocker.core.cache.time.monotonic", lambda: now[0])
    cache = TtlCache(ttl=10)
    cache.get_or_load("k", lambda: 1)
    now[0] += 10
    assert cache.peek("k") == (False, None)

    def fail() -> int:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        cache.get_or_load("k", fail)
    assert cache.get_or_load("k", lambda: 2) == 2


@pytest.mark.parametrize(
    "forget", [lambda cache: cache.discard("k"), TtlCache.clear], ids=["discard", "clear"]
)
def test_a_load_under_way_when_its_key_is_discarded_is_not_cached(
    forget: Callable[[TtlCache], None],
) -> None:
    cache = TtlCache(ttl=60)
    read, changed = threading.Event(), threading.Event()

    def read_then_wait() -> str:
        read.set()
        assert changed.wait(10)
        return "before the change"

    with ThreadPoolExecutor(1) as pool:
        loading = pool.submit(cache.get_or_load, "k", read_then_wait)
        assert read.wait(10)
        forget(cache)
        changed.set()
        assert loading.result(10) == "before the change"
    assert cache.peek("k") == (False, None)
    assert cache.get_or_load("k", lambda: "after the change") == "after the change"
    assert cache.peek("k") == (True, "after the change")


def test_threads_sharing_a_cache_keep_it_within_its_room() -> None:
    cache = TtlCache(ttl=60, max_entries=50, max_misses=20)

    def use(thread: int) -> None:
        for n in range(2_000):
            key = (thread * 37 + n) % 300
            cache.get_or_load(key, lambda key=key: None if key % 3 else key)
            if n % 7 == 0:
                cache.discard((key + 1) % 300)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(use, range(8)))
    cached = [key for key in range(300) if cache.peek(key)[0]]
    assert 0 < len(cached) <= 70
    assert cache.get_or_load("new", lambda: "value") == "value" and cache.peek("new")[0]
