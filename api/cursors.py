"""Pagination cursors: opaque, and signed for the viewer who got them.

A cursor carries the last id of a page. It is signed (HMAC with the API secret) together with
the viewer's id, so a cursor is worth nothing to anyone else, and a forged one is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from contracts.errors import InvalidInput

# What seal() writes, and nothing else: base64url of "<body>.<24 hex digits>", ASCII only.
TEXT = re.compile(r"[A-Za-z0-9_-]{1,200}", re.ASCII)
ID = rb"(0|[1-9][0-9]{0,18})"


def _mac(body: str, viewer: int | None, secret: str, purpose: str) -> str:
    message = f"{purpose}{body}:{viewer if viewer is not None else '-'}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:24]


def seal(body: str, viewer: int | None, secret: str, purpose: str = "") -> str:
    """``body`` (ASCII, no dot at its end) signed for ``viewer``; ``purpose`` keeps the cursors
    of one list from being taken for another's."""
    raw = f"{body}.{_mac(body, viewer, secret, purpose)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unseal(
    cursor: str, body: bytes, viewer: int | None, secret: str, purpose: str = ""
) -> re.Match[bytes]:
    """The match of ``body`` (a regular expression of bytes) in a cursor :func:`seal` gave
    ``viewer``; 422 for anything else."""
    found = None
    if TEXT.fullmatch(cursor):
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        found = re.fullmatch(rb"(" + body + rb")\.([0-9a-f]{24})", raw)
    if found is None:
        raise InvalidInput("cursor: not a cursor this API gave")
    signed, mac = found.group(1).decode(), found.groups()[-1]
    if not hmac.compare_digest(mac, _mac(signed, viewer, secret, purpose).encode()):
        raise InvalidInput("cursor: not a cursor this API gave to this caller")
    matched = re.fullmatch(body, found.group(1))
    assert matched is not None
    return matched


def encode(after: int, viewer: int | None, secret: str) -> str:
    return seal(str(after), viewer, secret)


def decode(cursor: str | None, viewer: int | None, secret: str) -> int:
    """The id to start after (0 without a cursor); 422 for a cursor that is not ours."""
    if cursor is None:
        return 0
    after = int(unseal(cursor, ID, viewer, secret).group(1))
    if after >= 2**63:
        raise InvalidInput("cursor: not a cursor this API gave to this caller")
    return after
