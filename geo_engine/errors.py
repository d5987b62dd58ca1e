"""One error model for the whole engine: a base exception, small subclasses, and one table.

Every refusal the engine explains is an :class:`EngineError`. Its kind decides, in
:data:`POLICIES` and nowhere else, the HTTP status and RFC 9457 problem type the API answers, and
the exit code the command line returns (the consumers will add their ack / retry / dead-letter
column to the same table). Callers raise the narrowest kind with a message that says what is
wrong; they never choose a status or an exit code themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class EngineError(Exception):
    """Base of every refusal the engine explains to its caller.

    ``detail`` is the one-line message for a person; ``errors`` optionally lists
    ``{"where": ..., "reason": ...}`` entries (an import's refused lines, a body's fields);
    ``headers`` are extra HTTP headers for the answer (``WWW-Authenticate``, ``Retry-After``).
    """

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers


class InvalidInput(EngineError):
    """A value, file, geometry, code or parameter that is malformed or out of its bounds."""


class NotFound(EngineError):
    """Nothing with this id *for this caller*: missing and hidden answer alike."""


class Unauthenticated(EngineError):
    """No credentials, or credentials that do not hold (bad, expired or malformed token)."""


class Forbidden(EngineError):
    """The caller is known but may not do this."""


class Conflict(EngineError):
    """The request contradicts the current state (an older millésime, a settled choice)."""


class TooLarge(EngineError):
    """A request body, query string or header beyond the documented bounds."""


class Unavailable(EngineError):
    """A service the engine needs (PostgreSQL, Redis) cannot be reached right now."""


class OutsideFrance(EngineError):
    """A valid point that lies in no French commune (at sea, abroad)."""


@dataclass(frozen=True)
class Policy:
    """How each face of the engine answers one kind of error.

    ``status`` and ``problem_type`` make the RFC 9457 document of the API; ``exit_code`` is the
    command line's (0 success, 1 unexpected failure, 2 bad input as in POSIX usage errors).
    """

    status: int
    title: str
    problem_type: str
    exit_code: int


_TYPES = "https://geo-engine.example/problems/"

POLICIES: dict[type[EngineError], Policy] = {
    InvalidInput: Policy(422, "Invalid request", _TYPES + "invalid-input", 2),
    OutsideFrance: Policy(404, "Not found", _TYPES + "outside-france", 3),
    NotFound: Policy(404, "Not found", _TYPES + "not-found", 4),
    Unauthenticated: Policy(401, "Not authenticated", _TYPES + "unauthenticated", 5),
    Forbidden: Policy(403, "Forbidden", _TYPES + "forbidden", 6),
    Conflict: Policy(409, "Conflict", _TYPES + "conflict", 7),
    TooLarge: Policy(413, "Content too large", _TYPES + "too-large", 2),
    Unavailable: Policy(503, "Unavailable", _TYPES + "unavailable", 75),  # EX_TEMPFAIL
    EngineError: Policy(400, "Bad request", _TYPES + "bad-request", 1),
}


def policy_of(error: EngineError) -> Policy:
    """The policy of the narrowest kind in :data:`POLICIES` that ``error`` is an instance of."""
    for kind in type(error).__mro__:
        found = POLICIES.get(kind)
        if found is not None:
            return found
    raise AssertionError("EngineError is in POLICIES")  # pragma: no cover
