"""Running the real ``geo-engine`` command, as a user would, for the CLI tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
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


def run_parallel(cli: Callable[..., Run], runs: dict[str, list[str]]) -> dict[str, Run]:
    """Several ``cli(*args)`` at once (each on its own database or file), by name."""
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        futures = {name: pool.submit(cli, *args) for name, args in runs.items()}
        return {name: future.result() for name, future in futures.items()}


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    """One line per item: strings as they are (to write broken lines), the rest as JSON."""
    path.write_bytes(
        b"".join((x.encode() if isinstance(x, str) else orjson.dumps(x)) + b"\n" for x in lines)
    )
    return path
