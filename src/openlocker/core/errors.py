"""Domain errors: each carries a stable machine ``code`` and an HTTP status."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refused use case. ``code`` is stable; clients branch on it."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra or {}
        self.headers = headers or {}


class InvalidInput(DomainError):
    status = 422
    code = "invalid_input"
    title = "Invalid input"


class NotFound(DomainError):
    status = 404
    code = "not_found"
    title = "Not found"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = "Conflict"


class TooManyAttempts(DomainError):
    status = 429
    code = "too_many_attempts"
    title = "Too many attempts"
