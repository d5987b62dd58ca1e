"""What the subcommands share: console, progress bars, clean exits.

Commands raise the engine's error kinds (:mod:`contracts.errors`) and never choose an exit
code: :func:`fail`, called once by the entry point, prints the message and exits with the code
``POLICIES`` gives the kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from contracts.errors import EngineError, policy_of
from contracts.values import parse_int, parse_number

err = Console(stderr=True)


def fail(error: EngineError) -> NoReturn:
    """Print the error's message on stderr and exit with its kind's exit code."""
    # The message may quote what the user typed: it must not be read as rich markup.
    err.print(f"[red]error:[/red] {escape(error.detail)}", highlight=False, soft_wrap=True)
    raise SystemExit(policy_of(error).exit_code)


def strict_float(text: str) -> float:
    """Typer parser of a float option: the engine's one strict number parser (ASCII digits)."""
    return parse_number(text)


def strict_int(text: str | int) -> int:
    """Typer parser of an integer argument or option (ASCII digits). Typer hands an option's
    default to the parser as it is, an int."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    return parse_int(str(text))


@contextmanager
def progress_bar() -> Iterator[Progress]:
    """A rich progress bar on stderr, so stdout stays clean for JSON."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as progress:
        yield progress
