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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> Response:
        return problem(exc.status, exc.code, exc.title, exc.detail, exc.extra, exc.headers)

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

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> Response:
        # A race another request won (same tracking number, same Idempotency-Key …): retryable.
        log.info("integrity conflict", extra={"error": type(exc.orig).__name__})
        return problem(
            409,
            "concurrent_conflict",
            "Conflict",
            "Another request changed the same data at the same time; retry.",
        )

    @app.exception_handler(DataError)
    async def _data(_: Request, exc: DataError) -> Response:
        # Values the database cannot store (a NUL character in text, for one); nothing was written.
        log.info("data refused by the database", extra={"error": type(exc.orig).__name__})
        return problem(
            422,
            "invalid_input",
            "Invalid input",
            "A value holds characters or magnitudes the database cannot store.",
        )

    @app.exception_handler(OperationalError)
    async def _operational(_: Request, exc: OperationalError) -> Response:
        log.warning("database unavailable", extra={"error": type(exc.orig).__name__})
        return problem(
            503,
            "database_unavailable",
            "Service unavailable",
            "The database is busy or unreachable; retry.",
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        return problem(500, "internal_error", "Internal error", "Something went wrong on our side.")
