"""The cache of API keys: made-up keys cannot push known ones out, and a revoked key is
refused at once in the process that revoked it, whatever lookups were under way."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from openlocker.core.cache import TtlCache
from openlocker.core.context import Context
from openlocker.core.errors import Unauthorized
from openlocker.orgs import service
from openlocker.orgs.service import (
    Principal,
    access_principal,
    list_api_keys,
    peek_principal,
    revoke_api_key,
)
from tests.factories import TEST_ACTOR, Factory


def test_made_up_keys_do_not_push_a_known_key_out_of_the_cache(
    factory: Factory, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx.cache = TtlCache(ttl=3600)  # the default room, and a ttl no slow run outlasts
    carrier = factory.org()
    known = f"Bearer {carrier.key}"
    assert access_principal(ctx, known).org_id == carrier.id
    # What the database says of every made-up key, without 20,000 queries (2 ms each).
    monkeypatch.setattr(service, "_load_principal", lambda ctx, digest: None)
    for n in range(20_000):
        with pytest.raises(Unauthorized):
            access_principal(ctx, f"Bearer olk_madeup_{n}")
    principal = peek_principal(ctx, known)
    assert principal is not None and principal.org_id == carrier.id
    with pytest.raises(Unauthorized):  # the latest made-up keys are refused from the cache
        peek_principal(ctx, "Bearer olk_madeup_19999")


def test_a_lookup_under_way_during_a_revoke_does_not_cache_the_revoked_key(
    factory: Factory, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    carrier = factory.org()
    key_id = list_api_keys(ctx, carrier.id).items[0].id
    authorization = f"Bearer {carrier.key}"
    read, revoked = threading.Event(), threading.Event()
    load = service._load_principal

    def load_then_wait_for_the_revoke(ctx: Context, digest: str) -> Principal | None:
        principal = load(ctx, digest)
        read.set()
        assert revoked.wait(10)
        return principal

    monkeypatch.setattr(service, "_load_principal", load_then_wait_for_the_revoke)
    with ThreadPoolExecutor(1) as pool:
        lookup = pool.submit(access_principal, ctx, authorization)
        assert read.wait(10)
        revoke_api_key(ctx, TEST_ACTOR, carrier.id, key_id)
        revoked.set()
        assert lookup.result(10).key_id == key_id  # it began before the revoke ended
    monkeypatch.undo()

    with pytest.raises(Unauthorized):
        access_principal(ctx, authorization)
