"""Bounds on every request, checked before anything is parsed, and the headers of every answer.

:class:`RequestLimits` is a pure ASGI middleware: a request target longer than
``max_url_bytes`` is answered 414, headers longer than ``max_header_bytes`` in all 431, a body
whose ``Content-Length`` exceeds ``max_body_bytes`` 413 at once (its bytes are never read),
and a streamed body is counted as it arrives and refused with 413 at the first byte over.
Each refusal is an RFC 9457 problem document (the error kinds of ``contracts.errors``).

The server must let such requests reach the application: uvicorn's httptools parser answers a
plain-text 400 to a request target over 64 KiB, and h11 to a head over 16 KiB. So
:func:`uvicorn_options` gives uvicorn a protocol that applies the same bounds while it parses
(and answers a malformed request with a problem document too), and a large enough h11 limit.
"""

from __future__ import annotations

import contextlib
import json
from http import HTTPStatus
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import SECURITY_HEADERS, problem_for
from contracts.errors import (
    EngineError,
    HeadersTooLarge,
    TooLarge,
    UriTooLong,
    policy_of,
)
from geo_engine.settings import ApiSettings

_SECURITY = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]


def _uri_too_long(size: int, bound: int) -> UriTooLong:
    return UriTooLong(
        f"the request target is {size:,} bytes or more; at most {bound:,} are allowed "
        "(path and query string)"
    )


def _headers_too_large(size: int, bound: int) -> HeadersTooLarge:
    return HeadersTooLarge(
        f"the request headers are {size:,} bytes or more; at most {bound:,} are allowed in all"
    )


def _body_too_large(size: int, bound: int) -> TooLarge:
    return TooLarge(f"the request body is {size:,} bytes or more; at most {bound:,} are allowed")


class _BodyOverLimit(Exception):
    """Raised to the application by ``receive`` at the first body byte over the bound."""


class RequestLimits:
    """The pure ASGI middleware of the request bounds and the security headers."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, max_url_bytes: int, max_header_bytes: int
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_url = max_url_bytes
        self.max_headers = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in _SECURITY if n not in present]
                message = {**message, "headers": headers}
            await send(message)

        refusal = self._refusal_before_reading(scope)
        if refusal is not None:
            await problem_for(refusal)(scope, receive, send_secured)
            return

        received = 0
        over = False
        answered = False

        async def receive_bounded() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    over = True
                    raise _BodyOverLimit
            return message

        async def send_unless_over(message: Message) -> None:
            nonlocal answered
            if over:  # the application's answer to a body it could not read: ours instead
                return
            answered = True
            await send_secured(message)

        with contextlib.suppress(_BodyOverLimit):  # when the application lets it through
            await self.app(scope, receive_bounded, send_unless_over)
        if over and not answered:
            error = _body_too_large(received, self.max_body)
            error.headers = {"Connection": "close"}
            await problem_for(error)(scope, receive, send_secured)

    def _refusal_before_reading(self, scope: Scope) -> EngineError | None:
        target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
        if target > self.max_url:
            return _uri_too_long(target, self.max_url)
        headers = scope["headers"]
        size = sum(len(name) + len(value) for name, value in headers)
        if size > self.max_headers:
            return _headers_too_large(size, self.max_headers)
        for name, value in headers:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                error = _body_too_large(int(value), self.max_body)
                error.headers = {"Connection": "close"}  # do not wait for a body nobody reads
                return error
        return None


def openapi_description(settings: ApiSettings) -> str:
    """The bounds, as the OpenAPI document states them."""
    return (
        "Every error is an RFC 9457 `application/problem+json` document. Requests are bounded "
        f"before they are parsed: a request target (path and query) over "
        f"{settings.max_url_bytes:,} bytes is answered 414, headers over "
        f"{settings.max_header_bytes:,} bytes in all 431, a body over "
        f"{settings.max_body_bytes:,} bytes 413."
    )


def raw_problem(error: EngineError) -> bytes:
    """A whole HTTP/1.1 answer (closing the connection) for the server's own refusals."""
    policy = policy_of(error)
    body = json.dumps(
        {
            "type": policy.problem_type,
            "title": policy.title,
            "status": policy.status,
            "detail": error.detail,
        }
    ).encode()
    head = [
        f"HTTP/1.1 {policy.status} {HTTPStatus(policy.status).phrase}",
        "content-type: application/problem+json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{k.lower()}: {v}" for k, v in SECURITY_HEADERS.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def uvicorn_options(settings: ApiSettings) -> dict[str, Any]:
    """What uvicorn needs so that over-long requests reach the bounds above as problems."""
    head = settings.max_url_bytes + settings.max_header_bytes + 1024
    try:
        protocol: Any = bounded_httptools(settings)
    except ImportError:  # pragma: no cover - httptools is a dependency (uvicorn[standard])
        protocol = "h11"
    return {"http": protocol, "h11_max_incomplete_event_size": head}


def bounded_httptools(settings: ApiSettings) -> type[Any]:
    """uvicorn's httptools protocol, bounded as :class:`RequestLimits` while it parses."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    max_url, max_headers = settings.max_url_bytes, settings.max_header_bytes
    max_head = max_url + max_headers + 1024  # request line, separators, line ends

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """Refuses, as problem documents, a request head over the bounds (before httptools
        holds all of it) and a malformed request (instead of uvicorn's plain text)."""

        _refusal: EngineError | None = None
        _in_head = True
        _head_bytes = 0
        _header_bytes = 0
        _line_done = False  # the request line (method, target, version) has been received

        def data_received(self, data: bytes) -> None:
            # One read (at most 64 KiB) is parsed; a head still incomplete after more than the
            # bounds allow is refused then, so the parser never holds more than that.
            if self._in_head:
                self._head_bytes += len(data)
                self._line_done = self._line_done or b"\n" in data
            super().data_received(data)
            if self._in_head and self._head_bytes > max_head and not self.transport.is_closing():
                self._refusal = (
                    _headers_too_large(self._head_bytes, max_headers)
                    if self._line_done
                    else _uri_too_long(self._head_bytes, max_url)
                )
                self.send_400_response("")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True
            self._header_bytes = 0

        def on_url(self, url: bytes) -> None:
            super().on_url(url)
            if len(self.url) > max_url:
                self._refusal = _uri_too_long(len(self.url), max_url)
                raise ValueError("request target too long")  # httptools stops parsing

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_bytes += len(name) + len(value)
            if self._header_bytes > max_headers:
                self._refusal = _headers_too_large(self._header_bytes, max_headers)
                raise ValueError("request headers too large")
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._head_bytes = 0
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head, self._line_done = True, False

        def send_400_response(self, msg: str) -> None:
            error = self._refusal or EngineError(
                "malformed HTTP request: the request line or a header cannot be parsed"
            )
            self.transport.write(raw_problem(error))
            self.transport.close()

    return BoundedHttpToolsProtocol
