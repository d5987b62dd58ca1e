"""Reading JSON Lines imports: every bad line is reported (file, line, field, reason), and a
file with any bad line writes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

from contracts.errors import InvalidInput

MAX_REPORTED_ERRORS = 20

M = TypeVar("M", bound=BaseModel)


class ImportRejected(InvalidInput):
    """The input has invalid lines; nothing was written. ``errors`` holds one
    ``"source:line: field: reason"`` per refusal; the detail shows the first
    :data:`MAX_REPORTED_ERRORS` of them, one per line."""

    errors: list[str]

    def __init__(self, errors: list[str], total: int | None = None) -> None:
        total = len(errors) if total is None else total
        shown = errors[:MAX_REPORTED_ERRORS]
        more = f"\n… and {total - len(shown)} more" if total > len(shown) else ""
        super().__init__("\n".join(shown) + more, errors=errors)
        self.total = total


def validation_messages(exc: ValidationError, prefix: str) -> Iterator[str]:
    """One ``prefix: field: reason`` per pydantic error."""
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "line"
        reason = err["msg"].removeprefix("Value error, ")
        yield f"{prefix}: {where}: {reason}"


class Line(NamedTuple, Generic[M]):
    number: int
    record: M


def read_records(
    path: Path,
    model: type[M],
    key: Callable[[M], object],
    progress: Callable[[int], None] = lambda _n: None,
) -> list[Line[M]]:
    """Validate every line against ``model``; a ``key`` seen twice is an error too."""
    records: list[Line[M]] = []
    errors: list[str] = []
    seen: dict[object, int] = {}
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number % 10_000 == 0:
                progress(10_000)
            if not raw.strip():
                continue
            try:
                record = model.model_validate_json(raw)
            except ValidationError as exc:
                errors.extend(validation_messages(exc, f"{path.name}:{number}"))
                continue
            identity = key(record)
            if identity in seen:
                errors.append(f"{path.name}:{number}: {identity} already on line {seen[identity]}")
                continue
            seen[identity] = number
            records.append(Line(number, record))
    if errors:
        raise ImportRejected(errors)
    return records
