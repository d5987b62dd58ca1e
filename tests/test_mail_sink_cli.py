"""``geo-engine mail sink``: the local SMTP sink of the demo, as a real process, receiving a
mail from SmtpSender and keeping it as an .eml file a person can open."""

from __future__ import annotations

import email
import os
import signal
import subprocess
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from consumers.content import Item, Recipient
from consumers.mail import SmtpSender, compose_alert, message_id
from contracts.errors import Unavailable
from tests.cli import CLI, REPO, run_cli
from tests.smtpsink import free_port, mail_settings

pytestmark = pytest.mark.slow  # two runs of the command line


def _wait_for(condition: object, what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not callable(condition) or not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_the_sink_keeps_each_mail_as_an_eml_file(tmp_path: Path) -> None:
    port = free_port()
    folder = tmp_path / "mail"
    process = subprocess.Popen(  # noqa: S603 - our own CLI
        [str(CLI), "mail", "sink", "--port", str(port), "--dir", str(folder)],
        cwd=REPO,
        env={**os.environ, "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        settings = mail_settings(port)
        item = Item(
            9, "Un banc sur la place", "Mairie", "consultation", "published", "Ici", "commune", None
        )
        mail = compose_alert(
            Recipient(7, "America/Cayenne", "Cayenne"), [item], "alert:7:9:published:0:0", settings
        )

        def sent() -> bool:
            try:
                SmtpSender(settings).send([mail])
            except Unavailable:  # not listening yet
                return False
            return True

        _wait_for(sent, "the sink to accept a mail")
        _wait_for(lambda: len(list(folder.glob("*.eml"))) == 1, "the .eml file")
        [eml] = folder.glob("*.eml")
        kept = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        assert isinstance(kept, EmailMessage)
        assert kept["Message-ID"] == message_id("alert:7:9:published:0:0", settings)
        body = kept.get_body(("plain",))
        assert body is not None and "Un banc sur la place" in body.get_content()
        assert not list(folder.glob(".*.part"))
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "1 mails received" in err
    assert "citoyen-7@habitants.geo-engine.example" in out


def test_a_port_out_of_range_is_refused(tmp_path: Path) -> None:
    result = run_cli("mail", "sink", "--port", "70000", "--dir", str(tmp_path), env={})
    assert result.returncode == 2
    assert "--port must be between 1 and 65535, not 70000" in result.stderr
