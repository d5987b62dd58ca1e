"""The CLI says what is wrong in one line instead of a traceback."""

from __future__ import annotations

from contracts.errors import POLICIES, Unavailable
from tests.cli import run_cli


def test_unreachable_database_is_one_clear_line() -> None:
    # Port 1 on loopback: nothing listens there.
    done = run_cli(
        "geo",
        "locate",
        "48.85",
        "2.35",
        env={"GEO_ENGINE_DATABASE_URL": "postgresql://geo_engine:x@127.0.0.1:1/geo_engine"},
        columns=40,
    )
    assert done.returncode == POLICIES[Unavailable].exit_code == 75  # EX_TEMPFAIL
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "cannot reach the database" in lines[0]
    assert "GEO_ENGINE_DATABASE_URL" in lines[0]
    assert "Traceback" not in done.stderr
