"""The loop's mails: composing alerts and digests in French, signing their links, handing them
to SMTP. Callers (the alert and digest rounds) claim ``mail_delivery`` by key first, then
compose with that key and send."""

from consumers.mail.compose import compose_alert, compose_digest, message_id, recipient_address
from consumers.mail.message import Mail
from consumers.mail.smtp import SmtpSender

__all__ = [
    "Mail",
    "SmtpSender",
    "compose_alert",
    "compose_digest",
    "message_id",
    "recipient_address",
]
