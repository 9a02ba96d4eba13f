"""The kiosk's own HTTP API on ``--ui-port``: what its touchscreen page, scanners and tests call.

JSON in and out; a refusal is ``application/problem+json`` (RFC 9457) with the same stable
``code`` the server uses. Documented in ``docs/kiosk.md``. With simulated boards only,
``/api/sim/…`` lets a demo or a test act as the person at the door.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.responses import Response

from openlocker.core.errors import DomainError, NotFound
from openlocker.kiosk import fulfil_api, open_deposit_api
from openlocker.kiosk.agent import Agent
from openlocker.kiosk.boards import UnknownLock
from openlocker.kiosk.boards.sim import SimBoard
from openlocker.kiosk.screen import screen

log = logging.getLogger("openlocker.kiosk")
PROBLEM = "application/problem+json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PickupIn(_Strict):
    pin: str | None = Field(default=None, min_length=1, max_length=32)
    qr: str | None = Field(default=None, min_length=1, max_length=1024)
    #: With ``pin`` only: the recipient's phone number, or at least its last 4 digits.
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()-]{4,24}$")


class CourierLoginIn(_Strict):
    code: str = Field(min_length=1, max_length=64)


class DepositIn(_Strict):
    tracking_number: str = Field(min_length=1, max_length=64)


class SimDoorIn(_Strict):
    action: Literal["close", "force", "load", "unload", "jam", "unjam"]


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {
        "type": f"https://openlocker.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **(extra or {}),
    }
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM, headers=headers)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def create_kiosk_app(agent: Agent) -> FastAPI:
    """The kiosk's app over ``agent`` (started by the caller)."""
    app = FastAPI(
        title="OpenLocker kiosk", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json"
    )

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        return problem(exc.status, exc.code, exc.title, exc.detail, exc.extra, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem(400, "malformed_json", "Malformed JSON", "The body is not valid JSON.")
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg', '')}"
            for e in errors
        )
        return problem(422, "invalid_input", "Invalid input", detail)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unexpected error", exc_info=exc)
        return problem(
            500, "internal_error", "Internal error", "Something went wrong in the kiosk."
        )

    @app.get("/healthz")
    async def healthz() -> Response:
        """Always 200 while the kiosk runs: ``online``, ``queued`` events, ``last_sync`` …"""
        return _json(agent.health())

    @app.get("/api/state")
    async def state() -> Response:
        """What the screen shows: open doors, the courier signed in, the presence code."""
        return _json(agent.state())

    @app.post("/api/pickup")
    async def pickup(body: PickupIn) -> Response:
        """A recipient's PIN (with an optional phone) or QR code: opens its compartments."""
        return _json(await agent.pickup(pin=body.pin, qr=body.qr, phone=body.phone))

    @app.post("/api/courier/login")
    async def courier_login(body: CourierLoginIn) -> Response:
        return _json(agent.courier_login(body.code))

    @app.post("/api/courier/deposit")
    async def courier_deposit(body: DepositIn) -> Response:
        return _json(await agent.courier_deposit(body.tracking_number))

    @app.post("/api/courier/logout", status_code=204)
    async def courier_logout() -> Response:
        agent.courier_logout()
        return Response(status_code=204)

    app.include_router(open_deposit_api.router(agent))
    screen.mount(app, agent)
    app.include_router(fulfil_api.router(agent))

    if all(isinstance(driver, SimBoard) for driver in agent.doors.drivers):

        @app.post("/api/sim/doors/{compartment_id}")
        async def sim_door(compartment_id: str, body: SimDoorIn) -> Response:
            """Act on a simulated compartment as a person would (sim boards only)."""
            compartment = agent.store.compartment(compartment_id)
            if compartment is None or compartment.address is None:
                raise NotFound("No such compartment on this kiosk's boards.")
            try:
                driver, address = agent.doors.locate(compartment.address)
            except UnknownLock:
                driver = None
            if not isinstance(driver, SimBoard):
                raise NotFound("No such compartment on this kiosk's boards.")
            bank = driver.bank
            act = {
                "close": lambda: bank.close_door(address),
                "force": lambda: bank.force(address),
                "load": lambda: bank.load(address),
                "unload": lambda: bank.load(address, False),
                "jam": lambda: bank.jam(address),
                "unjam": lambda: bank.jam(address, False),
            }
            act[body.action]()
            snapshot = bank.snapshot(address)
            return _json(
                {"door_open": snapshot.door_open, "item": snapshot.item, "jammed": snapshot.jammed}
            )

    return app
