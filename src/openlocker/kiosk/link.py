"""The kiosk's calls to the server, over HTTP alone (``docs/kiosk-sync.md``).

Every call raises ``Unreachable`` when the server cannot be asked (no network, a timeout,
a 5xx, a key it refuses): the kiosk is offline then. A domain refusal of a pickup (4xx with a
problem ``code``) comes back as the ``DomainError`` the server meant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from openlocker.core.errors import DomainError

#: Codes by which the server refuses the kiosk's key itself, not one request.
_KEY_REFUSED = frozenset({"unauthorized", "forbidden", "not_site_kiosk", "key_revoked"})


class Unreachable(Exception):
    """The server did not answer usefully; ``reason`` says why, for the kiosk's health."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CursorRefused(Exception):
    """The server does not know the kiosk's cursor (``cursor_ahead``: restored from a backup;
    ``invalid_cursor``): the kiosk must sync afresh from an empty store."""


class ServerRefusal(DomainError):
    """The server refused a request (a pickup, an open deposit): its status, code and detail,
    passed on to the screen."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        extra = {k: v for k, v in body.items() if k in ("retry_after", "phone_accepted")}
        headers = {"Retry-After": str(body["retry_after"])} if "retry_after" in body else None
        super().__init__(
            str(body.get("detail") or "Refused by the server."),
            code=str(body.get("code") or "refused"),
            extra=extra,
            headers=headers,
        )
        self.status = status
        self.title = str(body.get("title") or "Refused")


class ServerLink:
    """The server of one site, as its kiosk key sees it."""

    def __init__(
        self,
        server: str,
        site_id: str,
        key: str,
        *,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.site_id = site_id
        self._client = httpx.AsyncClient(
            base_url=server.rstrip("/"),
            headers={"Authorization": f"Bearer {key}", "User-Agent": "openlocker-kiosk"},
            timeout=timeout_s,
            transport=transport,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        timeout_s: float | None = None,
        answers: frozenset[str] = frozenset(),
        **kwargs: Any,
    ) -> httpx.Response:
        try:
            if timeout_s is not None:
                kwargs["timeout"] = timeout_s
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise Unreachable(f"{type(error).__name__}: {error}") from None
        status = response.status_code
        if status == 404 and _code(response) in answers:
            return response  # a 404 about what was asked for (``answers``), not the path
        if status >= 500 or status in (401, 404, 405) or _code(response) in _KEY_REFUSED:
            # Not an answer about the code or the events: the kiosk cannot use the server.
            raise Unreachable(f"{method} {path} answered {status} {_code(response)}".strip())
        return response

    async def pull(self, cursor: str | None, limit: int) -> dict[str, Any]:
        """One page of changes since ``cursor`` (None: from the start); ``CursorRefused`` when
        the server does not know the cursor."""
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await self._call("GET", f"/v1/sites/{self.site_id}/kiosk/sync", params=params)
        if _code(response) in ("cursor_ahead", "invalid_cursor"):
            raise CursorRefused(_code(response))
        if response.status_code != 200:
            raise Unreachable(f"sync answered {response.status_code} {_code(response)}")
        page: dict[str, Any] = response.json()
        return page

    async def push(self, events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Push ``events`` in order; the server's result for each (``id``, ``status``, …)."""
        response = await self._call(
            "POST", f"/v1/sites/{self.site_id}/kiosk/events", json={"events": list(events)}
        )
        if response.status_code != 200:
            raise Unreachable(f"event push answered {response.status_code} {_code(response)}")
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    async def pickup(self, body: Mapping[str, Any], *, timeout_s: float) -> dict[str, Any]:
        """Ask the server to decide a code the kiosk does not know; it queues no door command
        (``"door": "kiosk"``): the kiosk opens what the answer names."""
        response = await self._call(
            "POST",
            f"/v1/sites/{self.site_id}/pickups",
            json={**body, "door": "kiosk"},
            timeout_s=timeout_s,
        )
        if response.status_code == 200:
            answer: dict[str, Any] = response.json()
            return answer
        try:
            problem = response.json()
        except ValueError:
            raise Unreachable(f"pickup answered {response.status_code} without JSON") from None
        raise ServerRefusal(response.status_code, problem)

    async def search_directory(self, query: str, limit: int) -> dict[str, Any]:
        """The site's directory entries whose name or unit begins with ``query``'s words
        (``{"items": [{"id", "display_name", "unit"}], "more"}``); ``ServerRefusal`` for
        ``too_many_searches`` (with ``retry_after``) and ``invalid_query``."""
        response = await self._call(
            "GET", f"/v1/sites/{self.site_id}/directory", params={"q": query, "limit": limit}
        )
        return _answer(response, 200)

    async def open_deposit(
        self, body: Mapping[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        """Announce an open deposit whose door the kiosk opens and whose closing deposits it
        (``"door": "kiosk"``, ``"confirm": "door_closed"``); the answer names the compartment
        held. A retry with the same ``idempotency_key`` answers as the first time."""
        response = await self._call(
            "POST",
            f"/v1/sites/{self.site_id}/open-deposits",
            json={**body, "door": "kiosk", "confirm": "door_closed"},
            headers={"Idempotency-Key": idempotency_key},
            answers=_OPEN_DEPOSIT_404,
        )
        return _answer(response, 201)

    async def cancel_open_deposit(self, parcel_id: str) -> None:
        """Call off an open deposit that never went in (gone already: nothing to do)."""
        response = await self._call(
            "DELETE",
            f"/v1/sites/{self.site_id}/open-deposits/{parcel_id}",
            answers=frozenset({"parcel_not_found"}),
        )
        if response.status_code not in (204, 404):
            _answer(response, 204)

    async def drop_off(self, code: str) -> dict[str, Any]:
        """Drop a return off here by its code (``docs/orders.md``); the kiosk opens the door
        the answer names (``"door": "kiosk"``: no door command is queued)."""
        response = await self._call(
            "POST",
            f"/v1/sites/{self.site_id}/returns",
            json={"code": code, "door": "kiosk"},
            answers=frozenset({"return_not_found"}),
        )
        return _answer(response, 201)

    async def collection(self, courier_id: str) -> dict[str, Any]:
        """The site's collection manifest for the organization of the courier signed in."""
        response = await self._call(
            "GET", f"/v1/sites/{self.site_id}/collection", params={"courier_id": courier_id}
        )
        return _answer(response, 200)

    async def scan_out(self, parcel_id: str, courier_id: str, outcome: str) -> dict[str, Any]:
        """Scan a manifest's parcel out (``collected``) or report it ``missing``; the kiosk
        opened its door itself."""
        response = await self._call(
            "POST",
            f"/v1/sites/{self.site_id}/collection/{parcel_id}",
            json={"outcome": outcome, "courier_id": courier_id, "door": "kiosk"},
            answers=frozenset({"parcel_not_found"}),
        )
        return _answer(response, 200)

    async def presence_code(self) -> dict[str, Any]:
        response = await self._call("GET", f"/v1/sites/{self.site_id}/presence-code")
        if response.status_code != 200:
            raise Unreachable(f"presence code answered {response.status_code}")
        answer: dict[str, Any] = response.json()
        return answer


#: The open deposit's refusals that are 404s: what it names is not at the site.
_OPEN_DEPOSIT_404 = frozenset({"entry_not_found", "courier_not_found"})


def _answer(response: httpx.Response, ok: int) -> dict[str, Any]:
    """The JSON of an ``ok`` answer, else the refusal as ``ServerRefusal``."""
    try:
        body = response.json() if response.content else {}
    except ValueError:
        raise Unreachable(f"{response.request.url.path} answered without JSON") from None
    if response.status_code == ok and isinstance(body, dict):
        return body
    if not isinstance(body, dict):
        raise Unreachable(f"{response.request.url.path} answered {response.status_code}")
    raise ServerRefusal(response.status_code, body)


def _code(response: httpx.Response) -> str:
    if "json" not in response.headers.get("content-type", ""):
        return ""
    try:
        return str(response.json().get("code", ""))
    except (ValueError, AttributeError):
        return ""
