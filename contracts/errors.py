"""One error model for the whole engine: a base exception, small subclasses, and one table.

Every refusal the engine explains is an :class:`EngineError`. Its kind decides, in
:data:`POLICIES` and nowhere else, the HTTP status and RFC 9457 problem type the API answers, and
the exit code the command line returns, and what a stream consumer does with an event whose
handling raised it (retry it, dead-letter it, or drop it). Callers raise the narrowest kind
with a message that says what is wrong; they never choose a status or an exit code themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self


class EngineError(Exception):
    """Base of every refusal the engine explains to its caller.

    ``detail`` is the message for a person (one line, or one line per refused input line);
    ``errors`` optionally lists what was refused, each a ``{"where": ..., "reason": ...}``
    mapping or a ``"where: reason"`` line (an import's refused lines); ``headers`` are extra
    HTTP headers for the answer (``WWW-Authenticate``, ``Retry-After``).
    """

    errors: Sequence[Mapping[str, Any] | str] | None

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[Mapping[str, Any] | str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers

    def within(self, context: str) -> Self:
        """Put ``context`` before the detail (``nothing imported: …``), in place, and return
        the error, for a caller that re-raises it with what it was doing."""
        joined = (
            f"{context}:\n{self.detail}" if "\n" in self.detail else f"{context}: {self.detail}"
        )
        self.detail = joined
        self.args = (joined,)
        return self

    def where_reason(self) -> list[dict[str, Any]] | None:
        """``errors`` as ``{"where", "reason"}`` mappings (a ``"file:line: reason"`` line is
        split at its first ``": "`` after the line number)."""
        if self.errors is None:
            return None
        entries: list[dict[str, Any]] = []
        for entry in self.errors:
            if isinstance(entry, str):
                where, sep, reason = entry.partition(": ")
                entries.append({"where": where, "reason": reason} if sep else {"reason": entry})
            else:
                entries.append(dict(entry))
        return entries


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
    """A request body beyond the documented bound (``GEO_ENGINE_MAX_BODY_BYTES``)."""


class UriTooLong(TooLarge):
    """A request target (path and query string) beyond ``GEO_ENGINE_MAX_URL_BYTES``."""


class HeadersTooLarge(TooLarge):
    """Request headers beyond ``GEO_ENGINE_MAX_HEADER_BYTES`` in all."""


class Unavailable(EngineError):
    """A service the engine needs (PostgreSQL, Redis) cannot be reached right now."""


class OutsideFrance(EngineError):
    """A valid point that lies in no French commune (at sea, abroad)."""


@dataclass(frozen=True)
class Policy:
    """How each face of the engine answers one kind of error.

    ``status``, ``title`` and ``problem_type`` make the RFC 9457 document of the API;
    ``exit_code`` is the command line's (0 success, 1 unexpected failure, 2 bad input as in
    POSIX usage errors, 3 outside France as ``geo locate`` has always answered, 75 EX_TEMPFAIL);
    ``consumer`` is what a stream consumer does with an event that raised it (consumers/runtime.py):
    ``retry`` leaves it pending, to be delivered again until ``max_deliveries`` and then
    dead-lettered; ``dead-letter`` moves it to the dead-letter stream at once, with the error;
    ``drop`` acknowledges it without effect (the state already says what it would have said).
    An exception that is no ``EngineError`` is retried.
    """

    status: int
    title: str
    problem_type: str
    exit_code: int
    consumer: Literal["retry", "dead-letter", "drop"]


_TYPES = "https://geo-engine.example/problems/"

POLICIES: dict[type[EngineError], Policy] = {
    InvalidInput: Policy(422, "Invalid request", _TYPES + "invalid-input", 2, "dead-letter"),
    OutsideFrance: Policy(404, "Not found", _TYPES + "outside-france", 3, "dead-letter"),
    NotFound: Policy(404, "Not found", _TYPES + "not-found", 4, "dead-letter"),
    Unauthenticated: Policy(401, "Not authenticated", _TYPES + "unauthenticated", 5, "dead-letter"),
    Forbidden: Policy(403, "Forbidden", _TYPES + "forbidden", 6, "dead-letter"),
    Conflict: Policy(409, "Conflict", _TYPES + "conflict", 7, "drop"),
    TooLarge: Policy(413, "Content too large", _TYPES + "too-large", 2, "dead-letter"),
    UriTooLong: Policy(414, "URI too long", _TYPES + "uri-too-long", 2, "dead-letter"),
    HeadersTooLarge: Policy(
        431, "Request header fields too large", _TYPES + "headers-too-large", 2, "dead-letter"
    ),
    Unavailable: Policy(503, "Unavailable", _TYPES + "unavailable", 75, "retry"),  # EX_TEMPFAIL
    EngineError: Policy(400, "Bad request", _TYPES + "bad-request", 1, "retry"),
}


def policy_of(error: EngineError) -> Policy:
    """The policy of the narrowest kind in :data:`POLICIES` that ``error`` is an instance of."""
    for kind in type(error).__mro__:
        found = POLICIES.get(kind)
        if found is not None:
            return found
    raise AssertionError("EngineError is in POLICIES")  # pragma: no cover
