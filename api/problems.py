"""Every error answers an RFC 9457 ``application/problem+json`` document saying what is wrong.

Routes and dependencies raise the engine's error kinds (:mod:`contracts.errors`); the one
handler here reads their status, title and problem type from ``POLICIES``. The framework's own
refusals (an unknown route, a wrong method, a malformed body) are answered the same way.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from contracts.errors import POLICIES, EngineError, InvalidInput, NotFound, policy_of
from geo_engine.pools import connection_lost, database_unavailable

log = logging.getLogger("api")
PROBLEM = "application/problem+json"

# Headers on every answer: no MIME sniffing of JSON or tiles, no Referer leaking a page's URL
# (with its query: a user's coordinates) to anyone. ``api.limits`` adds them to the others.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

# Statuses that no engine error kind has: the framework's own.
_OTHER_TITLES = {405: "Method not allowed", 500: "Internal error"}


def title_of(status: int) -> str:
    for policy in POLICIES.values():
        if policy.status == status:
            return policy.title
    return _OTHER_TITLES.get(status, "Error")


def problem(
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    *,
    title: str | None = None,
    problem_type: str = "about:blank",
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem_type,
        "title": title or title_of(status),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(
        body,
        status_code=status,
        media_type=PROBLEM,
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def problem_for(error: EngineError) -> JSONResponse:
    """The answer to an engine error: status, title and type from its kind's policy."""
    policy = policy_of(error)
    return problem(
        policy.status,
        error.detail,
        error.headers,
        error.where_reason(),
        title=policy.title,
        problem_type=policy.problem_type,
    )


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the refusals a route may answer, each a problem document."""
    return {
        status: {
            "description": title_of(status),
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def not_found(what: str) -> NotFound:
    """The one answer for missing and hidden alike, so a private id cannot be told apart."""
    return NotFound(f"no {what}")


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


def install(app: FastAPI) -> None:
    @app.exception_handler(EngineError)
    async def _engine_error(_request: Request, exc: EngineError) -> JSONResponse:
        return problem_for(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"where": _where(e["loc"]), "reason": str(e["msg"]).removeprefix("Value error, ")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['where']}: {e['reason']}" for e in errors)
        return problem_for(InvalidInput(detail, errors=errors))

    # A connection lost in the middle of a request (a write, the database restarting): 503.
    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _database(_request: Request, exc: Exception) -> JSONResponse:
        if not connection_lost(exc):
            return await _unexpected(_request, exc)
        log.warning("database unreachable: %s", exc)
        return problem_for(database_unavailable())

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return problem(500, "the engine failed to answer; the error is in its log")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 404:
            return problem_for(NotFound("not found", headers=headers))
        if exc.status_code == 400:
            # FastAPI's only 400: a body it cannot decode (not UTF-8), as bad as invalid JSON.
            return problem_for(InvalidInput("body: not a JSON document in UTF-8"))
        detail = exc.detail if isinstance(exc.detail, str) else title_of(exc.status_code)
        return problem(exc.status_code, detail, headers=headers)
