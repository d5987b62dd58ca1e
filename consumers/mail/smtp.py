"""Handing mails to the SMTP server (``GEO_ENGINE_SMTP_HOST``, ``GEO_ENGINE_SMTP_PORT``)."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Sequence
from email.utils import parseaddr

from consumers.mail.message import Mail
from consumers.settings import MailSettings
from contracts.errors import InvalidInput, Unavailable

log = logging.getLogger("consumers.mail")


class SmtpSender:
    """Sends mails over one SMTP connection per :meth:`send` (stdlib ``smtplib``)."""

    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings
        self.envelope_from = parseaddr(settings.mail_from)[1]

    def send(self, messages: Sequence[Mail]) -> None:
        """Hand every message to the server, in order, on one connection.

        Returns once the server accepted them all. Raises Unavailable when the server cannot
        be reached, drops the connection or answers a temporary (4xx) refusal: the caller
        retries the whole call, and the Message-IDs (from the idempotency keys) let the next
        hop recognise a mail it already had. Raises InvalidInput on a permanent (5xx)
        refusal of a message, naming its Message-ID. Nothing is opened for no message."""
        if not messages:
            return
        where = f"{self.settings.smtp_host}:{self.settings.smtp_port}"
        try:
            with smtplib.SMTP(
                self.settings.smtp_host,
                self.settings.smtp_port,
                timeout=self.settings.smtp_timeout_s,
            ) as server:
                server.ehlo_or_helo_if_needed()  # the extensions (8BITMIME) are known after
                for message in messages:
                    self._send_one(server, message, where)
        except smtplib.SMTPResponseException as exc:
            raise Unavailable(
                f"SMTP server {where} refused: {exc.smtp_code} {_text(exc.smtp_error)}"
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise Unavailable(f"SMTP server {where} unreachable: {exc}") from exc

    def _send_one(self, server: smtplib.SMTP, message: Mail, where: str) -> None:
        try:
            # Headers are ASCII (RFC 2047): no SMTPUTF8. 8bit parts need the server's
            # 8BITMIME (RFC 6152); without it they go in quoted-printable.
            if message.eight_bit and server.has_extn("8bitmime"):
                refused = server.sendmail(
                    self.envelope_from, [message.to], message.raw, ["BODY=8BITMIME"]
                )
            else:
                refused = server.sendmail(self.envelope_from, [message.to], message.as_seven_bit())
        except smtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise InvalidInput(
                    f"SMTP server {where} refused the mail {message.message_id}: "
                    f"{exc.smtp_code} {_text(exc.smtp_error)}"
                ) from exc
            raise
        for address, (code, reason) in refused.items():
            if 500 <= code < 600:
                raise InvalidInput(
                    f"SMTP server {where} refused {address} for {message.message_id}: "
                    f"{code} {_text(reason)}"
                )
            raise smtplib.SMTPResponseException(code, reason)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
