"""`geo-engine digest run` and `geo-engine alerts run`: what they refuse, in one clear line."""

from __future__ import annotations

import pytest

from tests.cli import run_cli


@pytest.mark.slow  # three processes of the CLI
def test_digest_run_refuses_an_unknown_frequency_and_a_naive_instant() -> None:
    bad = run_cli("digest", "run", "--frequency", "hourly", env={})
    assert bad.returncode == 2
    assert "--frequency 'hourly': choose daily or weekly" in bad.stderr
    naive = run_cli("digest", "run", "--frequency", "daily", "--at", "2026-03-29T08:00", env={})
    assert naive.returncode == 2
    assert "has no offset" in naive.stderr
    garbled = run_cli("alerts", "run", "--at", "29/03/2026", env={})
    assert garbled.returncode == 2
    assert "is not an ISO 8601 date and time" in garbled.stderr
    assert "Traceback" not in bad.stderr + naive.stderr + garbled.stderr
