"""Running the real ``geo-engine`` command, as a user would, for the CLI tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CLI = REPO / ".venv" / "bin" / "geo-engine"

Run = subprocess.CompletedProcess[str]


def run_cli(*args: str, env: dict[str, str], columns: int = 200) -> Run:
    """``geo-engine ARGS`` from the repo root with ``env`` on top of ours; never raises on exit."""
    if not CLI.is_file():
        pytest.fail(f"{CLI} is missing: install the project (uv sync)")
    return subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [str(CLI), *args],
        cwd=REPO,
        env={**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
