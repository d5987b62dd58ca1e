"""Every error answers an RFC 9457 ``application/problem+json`` document saying what is wrong."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from contracts.territories import InvalidCoordinates
from geo_engine.errors import EngineError, policy_of
from geo_engine.jsonl import ImportRejected

log = logging.getLogger("api")
PROBLEM = "application/problem+json"
TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Invalid request",
    500: "Internal error",
    503: "Unavailable",
}


class ApiProblem(Exception):
    """Raised by routes; ``headers`` go on the answer (WWW-Authenticate for a 401)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.errors = status, detail, headers, errors


def problem(
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    *,
    problem_type: str = "about:blank",
    title: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem_type,
        "title": title or TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the refusals a route may answer, each a problem document."""
    return {
        status: {
            "description": TITLES[status],
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def not_found(what: str) -> ApiProblem:
    """The one answer for missing and hidden alike, so a private id cannot be told apart."""
    return ApiProblem(404, f"no {what}")


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def _api_problem(_request: Request, exc: ApiProblem) -> JSONResponse:
        return problem(exc.status, exc.detail, exc.headers, exc.errors)

    # The engine's errors, answered from their policy (geo_engine.errors.POLICIES).
    @app.exception_handler(EngineError)
    async def _engine_error(_request: Request, exc: EngineError) -> JSONResponse:
        policy = policy_of(exc)
        return problem(
            policy.status,
            exc.detail,
            exc.headers,
            exc.errors,
            problem_type=policy.problem_type,
            title=policy.title,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"where": _where(e["loc"]), "reason": str(e["msg"]).removeprefix("Value error, ")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['where']}: {e['reason']}" for e in errors)
        return problem(422, detail, errors=errors)

    @app.exception_handler(InvalidCoordinates)
    async def _coordinates(_request: Request, exc: InvalidCoordinates) -> JSONResponse:
        return problem(422, str(exc))

    @app.exception_handler(ImportRejected)
    async def _rejected(_request: Request, exc: ImportRejected) -> JSONResponse:
        errors = [{"where": "body", "reason": e.removeprefix("request:1: ")} for e in exc.errors]
        return problem(422, "; ".join(e["reason"] for e in errors), errors=errors)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return problem(500, "the engine failed to answer; the error is in its log")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "")
        return problem(
            exc.status_code,
            detail.lower() if exc.status_code == 404 else detail,
            headers=getattr(exc, "headers", None),
        )
