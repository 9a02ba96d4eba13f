"""One place turns errors into ``application/problem+json`` (RFC 9457) with a stable ``code``."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from openlocker.core.errors import DomainError

log = logging.getLogger("openlocker.api")
PROBLEM = "application/problem+json"
_STATUS_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}


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


def error_response(exc: Exception) -> Response:
    """The problem+json answer for an error a use case raised (call it where it was caught)."""
    if isinstance(exc, DomainError):
        return problem(exc.status, exc.code, exc.title, exc.detail, exc.extra, exc.headers)
    if isinstance(exc, IntegrityError):
        # A race another request won (same tracking number, same Idempotency-Key …): retryable.
        log.info("integrity conflict", extra={"error": type(exc.orig).__name__})
        return problem(
            409,
            "concurrent_conflict",
            "Conflict",
            "Another request changed the same data at the same time; retry.",
        )
    if isinstance(exc, DataError):
        # Values the database cannot store (a NUL character in text, for one); nothing was written.
        log.info("data refused by the database", extra={"error": type(exc.orig).__name__})
        return problem(
            422,
            "invalid_input",
            "Invalid input",
            "A value holds characters or magnitudes the database cannot store.",
        )
    if isinstance(exc, OperationalError):
        log.warning("database unavailable", extra={"error": type(exc.orig).__name__})
        return problem(
            503,
            "database_unavailable",
            "Service unavailable",
            "The database is busy or unreachable; retry.",
            headers={"Retry-After": "1"},
        )
    log.exception("unexpected error")
    return problem(500, "internal_error", "Internal error", "Something went wrong on our side.")


def install_error_handlers(app: FastAPI) -> None:
    async def _from_exception(_: Request, exc: Exception) -> Response:
        return error_response(exc)

    for kind in (DomainError, IntegrityError, DataError, OperationalError, Exception):
        app.add_exception_handler(kind, _from_exception)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(
                400, "malformed_json", "Malformed JSON", "The request body is not valid JSON."
            )
        unknown = [".".join(e["loc"][1:]) for e in errors if e["type"] == "extra_forbidden"]
        if unknown:
            return problem(
                422,
                "unknown_field",
                "Unknown field",
                f"Unknown field(s): {', '.join(unknown)}.",
                {"errors": errors},
            )
        detail = "; ".join(f"{'.'.join(e['loc'][1:]) or 'body'}: {e['msg']}" for e in errors)
        return problem(422, "invalid_input", "Invalid input", detail, {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail))
