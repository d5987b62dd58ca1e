"""Pagination cursors: opaque, and signed for the viewer who got them.

A cursor carries the last id of a page. It is signed (HMAC with the API secret) together with
the viewer's id, so a cursor is worth nothing to anyone else, and a forged one is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from api.problems import ApiProblem


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
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        after_text, mac = raw.split(".", 1)
        after = int(after_text)
    except (ValueError, UnicodeDecodeError):
        raise ApiProblem(422, "cursor: not a cursor this API gave") from None
    if after < 0 or not hmac.compare_digest(mac, _mac(after, viewer, secret)):
        raise ApiProblem(422, "cursor: not a cursor this API gave to this caller")
    return after
