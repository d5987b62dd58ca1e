"""Signed tokens of the links a mail carries: a click on a project, the open pixel, the
unsubscribe page. Pure: no database, no clock.

A token is ``v1.<payload>.<mac>``, both parts base64url without padding. The payload is
``<kind>.<user id>.<project id or 0>.<notification key>`` (kind ``c`` click, ``o`` open,
``u`` unsubscribe; the key is ``mail_delivery.key``); the MAC is HMAC-SHA256 with
``MailSettings.link_secret`` over ``v1`` and the payload, cut to 128 bits. Tokens do not
expire (a mail may be read months later); a new format is a new version prefix.

A token holds ids and a key, never a URL: the click redirect is built from the project id,
so a link cannot be turned into an open redirect. :func:`verify` refuses anything else with
one and the same :class:`~contracts.errors.NotFound`, whatever part is wrong (version,
encoding, MAC, kind, ids), so a refusal tells nothing about which part was guessed right.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from contracts.errors import NotFound

LinkKind = Literal["c", "o", "u"]
VERSION = "v1"
MAC_BYTES = 16
MAX_KEY_CHARS = 200  # contracts.events: a notification key is at most 200 characters
MAX_TOKEN_CHARS = 400
_ID = re.compile(r"[1-9][0-9]{0,18}", re.ASCII)
_KEY = re.compile(r"[\x21-\x7e]{1,200}", re.ASCII)  # printable ASCII, no space
_B64 = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
_MAX_ID = 2**63 - 1
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_VERSION = VERSION.encode("ascii")


@dataclass(frozen=True)
class LinkPayload:
    """What a token says: ``project_id`` is set for clicks only."""

    kind: LinkKind
    user_id: int
    notification: str
    project_id: int | None = None


def invalid_link() -> NotFound:
    """The one refusal of every bad token (tampered, truncated, unknown version or kind)."""
    return NotFound("ce lien n'est pas valide")


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not _B64.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@lru_cache(maxsize=8)
def _keyed(secret: str) -> hmac.HMAC:
    """HMAC-SHA256 with ``secret``, fed the version prefix: a mail signs a dozen links and a
    round millions, and copying this state costs a fraction of building it."""
    return hmac.new(secret.encode(), VERSION.encode() + b"|", hashlib.sha256)


def _mac(body: bytes, secret: str) -> bytes:
    mac = _keyed(secret).copy()
    mac.update(body)
    return mac.digest()[:MAC_BYTES]


def sign(payload: LinkPayload, secret: str) -> str:
    """The token of ``payload`` (ASCII, URL-safe, about 60-120 characters).

    Raises ValueError on a payload no token may carry (an id out of 1..2^63-1, a click
    without its project, a key that is not 1-200 printable ASCII characters)."""
    if not 1 <= payload.user_id <= _MAX_ID:
        raise ValueError(f"user id {payload.user_id} out of range")
    if (payload.kind == "c") != (payload.project_id is not None):
        raise ValueError("a click link names a project, and only a click link does")
    if payload.project_id is not None and not 1 <= payload.project_id <= _MAX_ID:
        raise ValueError(f"project id {payload.project_id} out of range")
    if not _KEY.fullmatch(payload.notification):
        raise ValueError("a notification key is 1 to 200 printable ASCII characters")
    return _token(
        payload.kind, payload.user_id, payload.project_id or 0, payload.notification, secret
    )


def _token(kind: str, user_id: int, project_id: int, notification: str, secret: str) -> str:
    body = f"{kind}.{user_id}.{project_id}.{notification}".encode("ascii")
    return f"{VERSION}.{_b64(body)}.{_b64(_mac(body, secret))}"


def click_tokens(user_id: int, notification: str, project_ids: list[int], secret: str) -> list[str]:
    """The click tokens of one mail's projects, as :func:`sign` makes them (a mail's links
    share the user and the key: both are checked once). Raises ValueError as :func:`sign`."""
    if not 1 <= user_id <= _MAX_ID:
        raise ValueError(f"user id {user_id} out of range")
    if not _KEY.fullmatch(notification):
        raise ValueError("a notification key is 1 to 200 printable ASCII characters")
    for project_id in project_ids:
        if not 1 <= project_id <= _MAX_ID:
            raise ValueError(f"item of project {project_id}: id out of range")
    keyed = _keyed(secret)
    head = f"c.{user_id}."
    tail = f".{notification}"
    b64 = binascii.b2a_base64
    tokens = []
    for project_id in project_ids:  # _token, unrolled: 12 links a mail, millions a round
        body = f"{head}{project_id}{tail}".encode("ascii")
        mac = keyed.copy()
        mac.update(body)
        encoded = b64(body, newline=False).rstrip(b"=")
        signed = b64(mac.digest()[:MAC_BYTES], newline=False).rstrip(b"=")
        tokens.append(b"%s.%s.%s" % (_VERSION, encoded, signed))
    return b" ".join(tokens).translate(_URLSAFE).decode("ascii").split(" ")


def verify(token: str, kind: LinkKind, secret: str) -> LinkPayload:
    """The payload of a token of ``kind`` signed with ``secret``; :func:`invalid_link` for
    anything else."""
    try:
        if len(token) > MAX_TOKEN_CHARS:
            raise ValueError("too long")
        version, encoded, mac = token.split(".")
        if version != VERSION:
            raise ValueError("unknown version")
        body = _unb64(encoded)
        if not hmac.compare_digest(_unb64(mac), _mac(body, secret)):
            raise ValueError("bad MAC")
        found_kind, user, project, notification = body.decode("ascii").split(".", 3)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid_link() from None
    # Signed by us: what follows can only fail for a token of another kind.
    if (
        found_kind != kind
        or not _ID.fullmatch(user)
        or int(user) > _MAX_ID
        or not _KEY.fullmatch(notification)
    ):
        raise invalid_link()
    if kind == "c":
        if not _ID.fullmatch(project) or int(project) > _MAX_ID:
            raise invalid_link()
        return LinkPayload(kind, int(user), notification, int(project))
    if project != "0":
        raise invalid_link()
    return LinkPayload(kind, int(user), notification)


def click_url(public_url: str, token: str) -> str:
    """The click-tracking redirect of a project link."""
    return f"{public_url}/m/c/{token}"


def open_pixel_url(public_url: str, token: str) -> str:
    """The 1×1 GIF whose fetch tells the mail was opened."""
    return f"{public_url}/m/o/{token}.gif"


def unsubscribe_url(public_url: str, token: str) -> str:
    """The unsubscribe page (GET shows a button, POST unsubscribes; RFC 8058)."""
    return f"{public_url}/m/u/{token}"


def project_url(public_url: str, project_id: int) -> str:
    """Where a click on a project lands: the engine's map, on that project. Built from the id
    only (never from the request), so the redirect is never open."""
    return f"{public_url}/map?projet={project_id}"
