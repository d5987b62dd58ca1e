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

# What encode() writes, and nothing else: base64url of "<id>.<24 hex digits>", ASCII only.
TEXT = re.compile(r"[A-Za-z0-9_-]{1,200}", re.ASCII)
RAW = re.compile(rb"(0|[1-9][0-9]{0,18})\.([0-9a-f]{24})")


def _mac(after: int, viewer: int | None, secret: str) -> str:
    message = f"{after}:{viewer if viewer is not None else '-'}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:24]


def encode(after: int, viewer: int | None, secret: str) -> str:
    raw = f"{after}.{_mac(after, viewer, secret)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str | None, viewer: int | None, secret: str) -> int:
    """The id to start after (0 without a cursor); 422 for a cursor that is not ours."""
    if cursor is None:
        return 0
    found = None
    if TEXT.fullmatch(cursor):
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        found = RAW.fullmatch(raw)
    if found is None:
        raise InvalidInput("cursor: not a cursor this API gave")
    after = int(found.group(1))
    if after >= 2**63 or not hmac.compare_digest(
        found.group(2), _mac(after, viewer, secret).encode()
    ):
        raise InvalidInput("cursor: not a cursor this API gave to this caller")
    return after
