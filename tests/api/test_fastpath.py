"""The lifecycle's fast path answers as the app does, and hands everything else on intact."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from openlocker.api.fastpath import HotRoutes
from openlocker.core.context import Context
from openlocker.parcels.api import FAST_ROUTES
from tests.factories import Factory, Org


class _App:
    """Stands for the framework behind the fast path: records what reached it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _post(
    ctx: Context, path: str, body: bytes, headers: dict[str, str], chunk: int = 1 << 20
) -> tuple[int, bytes, list[bytes]]:
    """POST through ``HotRoutes`` in front of ``_App``: (status, body, bodies the app saw)."""
    app = _App()
    hot = HotRoutes(app, ctx=ctx, routes=FAST_ROUTES)
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    incoming = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
        for i, p in enumerate(parts)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    asyncio.run(hot(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), app.bodies


def _announce_body(site: str, number: str) -> bytes:
    return orjson.dumps(
        {"tracking_number": number, "site_id": site, "size": "S", "notify": "sender"}
    )


def _json(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Content-Type": "application/json"}


def _warm(factory: Factory, carrier: Org) -> None:
    """One request through the app puts the key in the cache."""
    assert factory.client.get("/v1/parcels", headers=carrier.headers).status_code == 200


def test_a_cached_key_and_a_valid_body_are_answered_here(factory: Factory, ctx: Context) -> None:
    carrier, site = factory.org(), factory.site("S")
    _warm(factory, carrier)
    status, body, seen = _post(
        ctx, "/v1/parcels", _announce_body(site, "FAST-1"), _json(carrier.headers)
    )
    assert (status, seen) == (201, [])
    parcel = orjson.loads(body)
    assert parcel["status"] == "announced" and parcel["tracking_number"] == "FAST-1"
    # Errors of the use case are problem+json here too.
    status, body, seen = _post(
        ctx, "/v1/parcels", _announce_body(site, "FAST-1"), _json(carrier.headers)
    )
    assert (status, orjson.loads(body)["code"], seen) == (409, "duplicate_tracking_number", [])


def test_anything_unusual_goes_to_the_app_with_its_body(factory: Factory, ctx: Context) -> None:
    carrier, site = factory.org(), factory.site("S")
    body = _announce_body(site, "SLOW-1")
    # A key the cache does not know yet.
    assert _post(ctx, "/v1/parcels", body, _json(carrier.headers))[::2] == (299, [body])
    _warm(factory, carrier)
    invalid = orjson.dumps({"tracking_number": "", "site_id": site})
    for path, payload, headers in [
        ("/v1/parcels", invalid, _json(carrier.headers)),  # the app words the 422
        ("/v1/parcels", body, carrier.headers),  # no JSON content type
        ("/v1/parcels", body, _json({**carrier.headers, "Idempotency-Key": "k" * 201})),
        ("/v1/parcels", body + b" " * 70_000, _json(carrier.headers)),  # too large to read
        ("/v1/parcels", body, _json({"Authorization": "Bearer not-a-key"})),
        ("/v1/parcels/", body, _json(carrier.headers)),  # not one of the routes
    ]:
        assert _post(ctx, path, payload, headers, chunk=1000)[::2] == (299, [payload])


def test_fast_answers_equal_the_apps(factory: Factory, client: TestClient, ctx: Context) -> None:
    carrier, site = factory.org(), factory.site("S")
    request = {"tracking_number": "SAME-1", "site_id": site, "size": "S", "notify": "sender"}
    headers = {**carrier.headers, "Idempotency-Key": "same-1"}
    counted = {"method": "POST", "route": "/v1/parcels", "status": "201"}
    before = REGISTRY.get_sample_value("openlocker_http_requests_total", counted) or 0
    ctx.cache.clear()
    first = client.post("/v1/parcels", json=request, headers=headers)  # through the app
    replay = client.post("/v1/parcels", json=request, headers=headers)  # answered here
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.json() == first.json()
    assert replay.headers["content-type"] == first.headers["content-type"] == "application/json"
    assert replay.headers["Idempotent-Replayed"] == "true"
    # Both answers are counted under the route's template.
    assert REGISTRY.get_sample_value("openlocker_http_requests_total", counted) == before + 2
