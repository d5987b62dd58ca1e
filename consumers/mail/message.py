"""A mail as it goes to SMTP: the complete RFC 5322 bytes, built with string joins.

The standard library's ``EmailMessage`` (header registry, policy folding, MIME generator) took
about 7 ms per 10-item digest, 7,000 core-seconds for a round of a million digests; this
module writes the same message directly (bench/README.md, "mail"):

- headers in ASCII: the ``Subject`` and a ``From`` display name outside ASCII as RFC 2047
  encoded words (``=?utf-8?b?…?=``, each at most 75 characters, whole characters only),
  folded on lines of at most 78 characters; an ASCII header is written as it is, on one line
  of at most 998 (RFC 5322), so a long ``List-Unsubscribe`` URL is never cut or encoded;
- a ``multipart/alternative`` body, ``text/plain`` then ``text/html`` (RFC 2046 order), both
  UTF-8 with CRLF line ends, ``8bit`` (sent with ``BODY=8BITMIME``, RFC 6152): quoted-printable
  (``binascii.b2a_qp``) cost as much as all the rest of a digest. A mail whose line would
  pass 998 octets, or whose text holds its boundary, is written in quoted-printable instead
  (the boundary starts with ``=_``, which quoted-printable never writes); so is a mail for a
  server that does not take 8BITMIME (:meth:`Mail.as_seven_bit`).
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

_MAX_LINE = 998
_WORD_BYTES = 45  # 60 base64 characters: with "=?utf-8?b?" and "?=", 72 of RFC 2047's 75
_HEADERS = HeaderRegistry()


@dataclass(frozen=True)
class Mail:
    """One composed mail: ``key`` is its idempotency key (``mail_delivery.key``),
    ``message_id`` its ``<…@domain>`` (from the key), ``to`` the envelope and ``To:`` address,
    ``raw`` the complete message in ASCII with CRLF line ends, ready for ``DATA``;
    ``headers`` the unfolded, decoded values of its top-level headers, in order;
    ``eight_bit`` whether its parts are 8bit (``BODY=8BITMIME``), ``boundary`` its MIME
    boundary."""

    key: str
    message_id: str
    to: str
    raw: bytes
    headers: tuple[tuple[str, str], ...]
    eight_bit: bool
    boundary: str

    def as_bytes(self) -> bytes:
        """The message as handed to SMTP (``raw``)."""
        return self.raw

    def as_seven_bit(self) -> bytes:
        """The message with its parts in quoted-printable, for a server without
        ``8BITMIME`` (``raw`` when it already is)."""
        return seven_bit(self.raw, self.boundary) if self.eight_bit else self.raw

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


@lru_cache(maxsize=4_096)
def unstructured(name: str, value: str) -> str:
    """The header line ``Name: value`` (no CRLF): ``value`` as it is when it is printable
    ASCII that fits on one line, else as encoded words (RFC 2047). White space runs, line
    breaks included, become one space, so a value never starts another header."""
    value = " ".join(value.split())
    if value.isascii() and value.isprintable() and len(name) + 2 + len(value) <= 78:
        return f"{name}: {value}"
    return f"{name}: {encoded_words(value)}"


@lru_cache(maxsize=64)
def address_header(name: str, value: str) -> tuple[str, str]:
    """The header line of an address header (``From: Name <addr@domain>``), written by the
    standard library's SMTP policy (phrase quoting, RFC 2047 display names), and its decoded
    value; cached, since a deployment has one sender. Raises InvalidInput for an address it
    cannot write."""
    header = _HEADERS(name, value)
    if header.defects or not header.addresses:  # type: ignore[attr-defined]
        raise InvalidInput(f"{name}: {value!r} is not an e-mail address")
    folded: str = header.fold(policy=SMTP)
    line = folded.removesuffix("\r\n")
    if not line.isascii():
        raise InvalidInput(f"{name}: {value!r} cannot be written in ASCII")
    return line, str(header)


def crlf(text: str) -> str:
    """``text`` with every line end (CR, LF or CRLF) as CRLF."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")


def qp_body(body: bytes) -> bytes:
    """A UTF-8 body with CRLF line ends, in quoted-printable (lines of at most 76)."""
    encoded: bytes = binascii.b2a_qp(body.replace(b"\r\n", b"\n"), istext=True)
    return encoded.replace(b"\n", b"\r\n")


def _fits_8bit(body: bytes, boundary: bytes) -> bool:
    # RFC 5322 and RFC 6152: lines of at most 998 octets; and a text (a title) must not hold
    # the boundary, which would end its part.
    return boundary not in body and max(map(len, body.split(b"\r\n"))) <= _MAX_LINE


def alternative(headers: Sequence[str], boundary: str, plain: str, html: str) -> tuple[bytes, bool]:
    """The complete message and whether it is 8bit: ``headers`` (lines without CRLF, ASCII),
    then a ``multipart/alternative`` of ``plain`` and ``html`` (CRLF line ends, see
    :func:`crlf`) separated by ``boundary`` (which starts with ``=_``).

    The parts are ``8bit`` UTF-8 (sent with ``BODY=8BITMIME``), or quoted-printable when a
    line would pass 998 octets or a text holds the boundary."""
    plain_bytes = plain.encode("utf-8")
    html_bytes = html.encode("utf-8")
    mark = boundary.encode("ascii")
    eight_bit = _fits_8bit(plain_bytes, mark) and _fits_8bit(html_bytes, mark)
    if not eight_bit:
        plain_bytes, html_bytes = qp_body(plain_bytes), qp_body(html_bytes)
    encoding = "8bit" if eight_bit else "quoted-printable"
    head = "\r\n".join(
        (
            *headers,
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
            "",
            f"--{boundary}",
            'Content-Type: text/plain; charset="utf-8"',
            f"Content-Transfer-Encoding: {encoding}",
            "",
            "",
        )
    ).encode("ascii")
    middle = (
        f"\r\n--{boundary}\r\n"
        'Content-Type: text/html; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    ).encode("ascii")
    end = f"\r\n--{boundary}--\r\n".encode("ascii")
    return b"".join((head, plain_bytes, middle, html_bytes, end)), eight_bit


def seven_bit(raw: bytes, boundary: str) -> bytes:
    """An 8bit message of :func:`alternative` with both parts in quoted-printable, for a
    server that does not take ``8BITMIME``."""
    delimiter = f"\r\n--{boundary}".encode("ascii")
    head, *parts, tail = raw.split(delimiter)
    converted = []
    for part in parts:
        part_headers, _, body = part.partition(b"\r\n\r\n")
        part_headers = part_headers.replace(
            b"Content-Transfer-Encoding: 8bit", b"Content-Transfer-Encoding: quoted-printable"
        )
        converted.append(part_headers + b"\r\n\r\n" + qp_body(body))
    return delimiter.join((head, *converted, tail))
