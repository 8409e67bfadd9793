"""The errors services raise; adapters turn each into a short answer (never a traceback)."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A refusal with a user-facing sentence; code and params let an adapter reword it."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, **params: Any) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.params = params

    def __str__(self) -> str:
        return self.message


class InvalidInput(ServiceError):
    """The input is malformed or out of range; nothing was changed."""

    code = "invalid"


class NotFound(ServiceError):
    """No such thing, or not one this staff member may see (the same answer: no leak)."""

    code = "not_found"


class AccessDenied(ServiceError):
    """The actor's role or state does not allow this action."""

    code = "denied"


class Conflict(ServiceError):
    """The thing changed since it was shown (stale button) or is in the wrong state."""

    code = "conflict"


class AuthError(ServiceError):
    """Login, invite or session problem (wrong password, locked, expired)."""

    code = "auth"
