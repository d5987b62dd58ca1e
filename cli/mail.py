"""Mail tools: a local SMTP sink that keeps what it receives as ``.eml`` files, so a person
can read the loop's mails without a mail server (``make demo`` on the system-packages path;
with Docker, Mailpit does this at http://127.0.0.1:8025)."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from cli.common import strict_int
from contracts.errors import InvalidInput, Unavailable

app = typer.Typer(no_args_is_help=True, help="The loop's mails: a local SMTP sink.")


class EmlDirectory:
    """An aiosmtpd handler that writes each received mail to ``<dir>/<time>-<id>.eml``
    (written to a temporary name, then renamed: a reader never sees half a mail)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        content: bytes = envelope.original_content or envelope.content
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        partial = self.directory / f".{name}.part"
        partial.write_bytes(content)
        partial.rename(self.directory / name)
        with self._lock:
            self.count += 1
        typer.echo(f"{name}: {envelope.mail_from} -> {', '.join(envelope.rcpt_tos)}")
        return "250 Message accepted for delivery"


@app.command()
def sink(
    port: int = typer.Option(2525, parser=strict_int, help="port to listen on"),
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    directory: Path = typer.Option(
        Path("var/mail"), "--dir", help="where received mails are written as .eml files"
    ),
) -> None:
    """Receive mails over SMTP until Ctrl-C, writing each as an .eml file."""
    from aiosmtpd.controller import Controller  # only this command needs it

    if not 1 <= port <= 65535:
        raise InvalidInput(f"--port must be between 1 and 65535, not {port}")
    if not re.fullmatch(r"[\w.:-]+", host, re.ASCII):
        raise InvalidInput(f"--host {host!r} is not an address")
    directory.mkdir(parents=True, exist_ok=True)
    handler = EmlDirectory(directory)
    controller = Controller(handler, hostname=host, port=port)
    try:
        controller.start()
    except (OSError, RuntimeError) as exc:
        raise Unavailable(f"cannot listen on {host}:{port}: {exc}") from exc
    typer.echo(f"SMTP sink on {host}:{port}, mails in {directory}/ (Ctrl-C stops)", err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
        typer.echo(f"{handler.count} mails received", err=True)
