"""The calls of every parcel's life, answered without the framework's per-request work.

Announce, deposit and pickup are nearly all of a network's traffic. FastAPI spends about
0.2 ms of CPU on each request before and after the use case (routing, dependency
injection, validation through its own layers, serialization): as much as the use case's
own Python. ``HotRoutes`` sits in the middleware stack (inside the metrics and logging
middleware) and answers exactly those routes, for requests in the common shape: a cached
API key, a JSON body that validates. It parses with the route's own pydantic model, calls
the same service function and maps errors with the same ``error_response``.

Anything else goes to the FastAPI route, which stays the reference and the documentation:
a key not cached yet, a body that does not validate (FastAPI then words the 422), another
content type, an over-long ``Idempotency-Key``. The body already read is handed on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openlocker.api.errors import error_response
from openlocker.core.context import Context
from openlocker.core.errors import DomainError
from openlocker.core.green import run_in_greenlet
from openlocker.orgs.service import Principal, peek_principal

#: (status, extra headers, body model) of a hot route's answer.
Reply = tuple[int, dict[str, str], BaseModel]
#: Calls the use case: (ctx, principal, parsed body or None, path parameters, idempotency key).
Handler = Callable[[Context, Principal, Any, dict[str, str], str | None], Reply]

_MAX_BODY = 64 * 1024
_MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True)
class FastRoute:
    """A route ``HotRoutes`` may answer: its path template, body model and use case."""

    path: str
    body: type[BaseModel] | None
    handler: Handler


@dataclass(frozen=True)
class _Bound:
    route: FastRoute
    regex: re.Pattern[str]


class HotRoutes:
    """ASGI middleware: answers ``routes`` (POST only) in their common shape, else passes on."""

    def __init__(self, app: ASGIApp, *, ctx: Context, routes: list[FastRoute]) -> None:
        self.app = app
        self.ctx = ctx
        # Starlette's own path compiler: the same matching as the app's routes.
        self.routes = [_Bound(route, compile_path(route.path)[0]) for route in routes]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            for bound in self.routes:
                match = bound.regex.match(path)
                if match is not None:
                    await self._serve(bound, match.groupdict(), scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(
        self,
        bound: _Bound,
        params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        headers = dict(scope["headers"])
        body, complete = b"", True
        if bound.route.body is not None:
            body, complete = await _read_body(receive)
            if not complete:
                await self.app(scope, _replay(body, receive, complete=False), send)
                return
        parsed = self._parse(bound.route, headers, body)
        principal = self._principal(headers)
        key = headers.get(b"idempotency-key")
        if (
            parsed is _DECLINED
            or principal is None
            or (key is not None and len(key) > _MAX_IDEMPOTENCY_KEY)
        ):
            read = bound.route.body is not None
            forward = _replay(body, receive, complete=complete) if read else receive
            await self.app(scope, forward, send)
            return
        # What the metrics middleware reads to name the route, as the router would set it.
        scope["route"] = bound.route
        try:
            status, extra, model = await run_in_greenlet(
                bound.route.handler,
                self.ctx,
                principal,
                parsed,
                params,
                key.decode("latin-1") if key else None,
            )
        except Exception as exc:  # every error gets its problem+json, as in the app
            response = error_response(exc)
            await response(scope, receive, send)
            return
        payload = model.model_dump_json().encode()
        response_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            *((name.lower().encode(), value.encode()) for name, value in extra.items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": payload})

    def _parse(self, route: FastRoute, headers: dict[bytes, bytes], body: bytes) -> Any:
        if route.body is None:
            return None
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            return _DECLINED
        try:
            return route.body.model_validate_json(body)
        except ValidationError:
            return _DECLINED

    def _principal(self, headers: dict[bytes, bytes]) -> Principal | None:
        authorization = headers.get(b"authorization")
        if authorization is None:
            return None
        try:
            return peek_principal(self.ctx, authorization.decode("latin-1"))
        except DomainError:  # a malformed or revoked key: the app says which
            return None


_DECLINED = object()


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The request body, and False when it is too large to answer here (then partial)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > _MAX_BODY:
            return b"".join(chunks), False
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive, *, complete: bool) -> Receive:
    """A ``receive`` that first hands on the body already read, then the rest as it comes."""
    pending = [body]

    async def replayed() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": not complete}
        return await receive()

    return replayed
