"""Domain errors. Each carries its HTTP status; one handler renders RFC 9457 problem details."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status: int = 400
    title: str = "Bad request"
    type_: str = "about:blank"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class NotFound(DomainError):
    status = 404
    title = "Not found"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


class Unauthenticated(DomainError):
    status = 401
    title = "Authentication required"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class Invalid(DomainError):
    status = 422
    title = "Invalid input"


class TooLarge(DomainError):
    status = 413
    title = "Request too large"


class Unavailable(DomainError):
    status = 503
    title = "Service unavailable"


class Locked(DomainError):
    status = 429
    title = "Too many attempts"
