"""The CLI says what is wrong in one line instead of a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLI = REPO / ".venv" / "bin" / "geo-engine"


def test_unreachable_database_is_one_clear_line() -> None:
    env = {
        **os.environ,
        # Port 1 on loopback: nothing listens there.
        "GEO_ENGINE_DATABASE_URL": "postgresql://geo_engine:x@127.0.0.1:1/geo_engine",
        "COLUMNS": "40",
        "NO_COLOR": "1",
    }
    done = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [str(CLI), "geo", "locate", "48.85", "2.35"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "cannot reach the database" in lines[0]
    assert "GEO_ENGINE_DATABASE_URL" in lines[0]
    assert "Traceback" not in done.stderr
