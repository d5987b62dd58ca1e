"""A mail as it goes to SMTP: the complete RFC 5322 bytes, built with string joins.

The standard library's ``EmailMessage`` (header registry, policy folding, MIME generator) took
about 7 ms per 10-item digest, 7,000 core-seconds for a round of a million digests; this
module writes the same message directly (bench/README.md, "mail"):

- headers in ASCII: the ``Subject`` and a ``From`` display name outside ASCII as RFC 2047
  encoded words (``=?utf-8?b?…?=``, each at most 75 characters, whole characters only),
  folded on lines of at most 78 characters; an ASCII header is written as it is, on one line
  of at most 998 (RFC 5322), so a long ``List-Unsubscribe`` URL is never cut or encoded;
- a ``multipart/alternative`` body, ``text/plain`` then ``text/html`` (RFC 2046 order), both
  UTF-8 in quoted-printable (``binascii.b2a_qp``, lines of at most 76 characters), CRLF line
  ends; the boundary starts with ``=_``, which quoted-printable never writes, so no body can
  hold it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import HeaderRegistry
from email.policy import SMTP
from functools import lru_cache

from contracts.errors import InvalidInput

_WORD_BYTES = 45  # 60 base64 characters: with "=?utf-8?b?" and "?=", 72 of RFC 2047's 75
_HEADERS = HeaderRegistry()


@dataclass(frozen=True)
class Mail:
    """One composed mail: ``key`` is its idempotency key (``mail_delivery.key``),
    ``message_id`` its ``<…@domain>`` (from the key), ``to`` the envelope and ``To:`` address,
    ``raw`` the complete message in ASCII with CRLF line ends, ready for ``DATA``;
    ``headers`` the unfolded, decoded values of its top-level headers, in order."""

    key: str
    message_id: str
    to: str
    raw: bytes
    headers: tuple[tuple[str, str], ...]

    def as_bytes(self) -> bytes:
        """The message as handed to SMTP (``raw``)."""
        return self.raw

    def __getitem__(self, name: str) -> str:
        """The decoded value of header ``name`` (any case), as ``EmailMessage`` gives it:
        ``mail["Subject"]``. Raises KeyError for a header the mail does not have."""
        wanted = name.lower()
        for header, value in self.headers:
            if header.lower() == wanted:
                return value
        raise KeyError(name)


def encoded_words(text: str) -> str:
    """``text`` as RFC 2047 encoded words (base64, UTF-8) separated by folding white space
    (CRLF and a space), each word whole characters of at most 45 bytes."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for char in text:
        width = len(char.encode("utf-8"))
        if size + width > _WORD_BYTES:
            words.append(_word("".join(chunk)))
            chunk, size = [], 0
        chunk.append(char)
        size += width
    if chunk:
        words.append(_word("".join(chunk)))
    return "\r\n ".join(words)


def _word(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode('utf-8')).decode('ascii')}?="


def unstructured(name: str, value: str) -> str:
    """The header line ``Name: value`` (no CRLF): ``value`` as it is when it is printable
    ASCII that fits on one line, else as encoded words (RFC 2047). White space runs, line
    breaks included, become one space, so a value never starts another header."""
    value = " ".join(value.split())
    if value.isascii() and value.isprintable() and len(name) + 2 + len(value) <= 78:
        return f"{name}: {value}"
    return f"{name}: {encoded_words(value)}"


@lru_cache(maxsize=64)
def address_header(name: str, value: str) -> str:
    """The header line of an address header (``From: Name <addr@domain>``), written by the
    standard library's SMTP policy (phrase quoting, RFC 2047 display names); cached, since a
    deployment has one sender. Raises InvalidInput for an address it cannot write."""
    header = _HEADERS(name, value)
    if header.defects or not header.addresses:  # type: ignore[attr-defined]
        raise InvalidInput(f"{name}: {value!r} is not an e-mail address")
    folded: str = header.fold(policy=SMTP)
    line = folded.removesuffix("\r\n")
    if not line.isascii():
        raise InvalidInput(f"{name}: {value!r} cannot be written in ASCII")
    return line


def qp_body(text: str) -> bytes:
    """``text`` in UTF-8, quoted-printable, with CRLF line ends (any CR, LF or CRLF of the
    text is a line end)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(lines, istext=True).replace(b"\n", b"\r\n")


def alternative(headers: Sequence[str], boundary: str, plain: str, html: str) -> bytes:
    """The complete message: ``headers`` (lines without CRLF, ASCII), then a
    ``multipart/alternative`` of ``plain`` and ``html`` separated by ``boundary`` (which must
    start with ``=_``)."""
    head = "\r\n".join(
        (
            *headers,
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
            "",
            f"--{boundary}",
            'Content-Type: text/plain; charset="utf-8"',
            "Content-Transfer-Encoding: quoted-printable",
            "",
            "",
        )
    ).encode("ascii")
    middle = (
        f"\r\n--{boundary}\r\n"
        'Content-Type: text/html; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode("ascii")
    end = f"\r\n--{boundary}--\r\n".encode("ascii")
    return b"".join((head, qp_body(plain), middle, qp_body(html), end))
