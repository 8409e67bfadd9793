"""Errors as problem details (RFC 9457): type, title, status, detail; never internals.

Service refusals keep their sentence (it is written for people) and their code; a request
FastAPI cannot validate gets the fields at fault without echoing the input; anything else
is a 500 whose cause is logged here, server-side only.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from db.services.errors import (
    AccessDenied,
    AuthError,
    Conflict,
    InvalidInput,
    NotFound,
    ServiceError,
)
from db.services.staff.api_calls import RateLimited

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:vasooli:problem:"

_STATUS: list[tuple[type[ServiceError], int]] = [
    (InvalidInput, 400),
    (AuthError, 401),
    (AccessDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (RateLimited, 429),
]


class Problem(BaseModel):
    """An error (RFC 9457); code is the same word as type's last part, for programs."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[dict[str, str]] | None = None


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, str]] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def status_of(error: ServiceError) -> int:
    return next((status for cls, status in _STATUS if isinstance(error, cls)), 400)


def service_problem(error: ServiceError) -> JSONResponse:
    status = status_of(error)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(error, RateLimited):
        headers = {"Retry-After": str(error.params.get("retry_after", 60))}
    return problem(status, error.code, error.message, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    # loc and msg only: pydantic's "input" and "ctx" would echo what was sent.
    return [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))}
        for e in exc.errors()
    ]


async def _on_service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return service_problem(exc)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem(
        422, "validation", "The request is not valid; see errors.", errors=_field_errors(exc)
    )


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    code = phrase.lower().replace(" ", "_").replace("'", "")
    detail = exc.detail if isinstance(exc.detail, str) else phrase
    return problem(exc.status_code, code, detail, headers=getattr(exc, "headers", None))


def unexpected() -> JSONResponse:
    return problem(500, "internal", "Something went wrong on our side; it has been logged.")


def install(app: FastAPI) -> None:
    """Every error the app can raise becomes a problem response."""
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": HTTPStatus(status).phrase,
        "content": {MEDIA_TYPE: {"schema": Problem.model_json_schema()}},
    }
    for status in (400, 401, 403, 404, 409, 422, 429, 500)
}
