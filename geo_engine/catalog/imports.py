"""A whole catalogue from its JSON Lines files, in one transaction: all or nothing.

The four parts are read and stored in the order their references need (organisations, members,
projects, contributions), each file validated line by line (``geo_engine.jsonl``) and then
stored set-wise (``load.py``): staged by COPY, its references checked in one query, one
``INSERT … SELECT`` per table, indexes and foreign keys built once when the import is big
compared with the table (``bulk.py``). Each part's records are dropped once stored, so the
peak memory is that of the biggest file's records, not of the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import psycopg
from pydantic import BaseModel

from contracts.catalog import ContributionRecord, MemberRecord, OrganisationRecord, ProjectRecord
from geo_engine.catalog.load import (
    store_contributions,
    store_members,
    store_organisations,
    store_projects,
)
from geo_engine.jsonl import ImportRejected, Line, read_records
from geo_engine.settings import CatalogSettings

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Part(Generic[M]):
    """One kind of catalogue record: its file name in a catalogue folder, its model, what makes
    two lines the same record, and how it is stored."""

    file: str
    model: type[M]
    key: Callable[[M], Hashable]
    store: Callable[[psycopg.Connection, Sequence[Line[M]], str, CatalogSettings | None], int]


# In the order of their references: a member names an organisation, a contribution a project.
PARTS: dict[str, Part[Any]] = {
    "organisations": Part(
        "organisations.jsonl", OrganisationRecord, lambda r: r.id, store_organisations
    ),
    "members": Part(
        "members.jsonl", MemberRecord, lambda r: (r.organisation_id, r.user_id), store_members
    ),
    "projects": Part("projects.jsonl", ProjectRecord, lambda r: r.id, store_projects),
    "contributions": Part(
        "contributions.jsonl", ContributionRecord, lambda r: r.id, store_contributions
    ),
}


@dataclass(frozen=True)
class Imported:
    """What one part's import did: ``lines`` records read, ``written`` rows inserted or
    changed (a record already stored as it is counts in ``lines`` only)."""

    lines: int
    written: int


def catalog_files(directory: Path) -> dict[str, Path]:
    """The parts present in ``directory`` (``organisations.jsonl``, ``members.jsonl``,
    ``projects.jsonl``, ``contributions.jsonl``), in import order; InvalidInput (as
    ImportRejected) when there is none."""
    found = {name: directory / part.file for name, part in PARTS.items()}
    found = {name: path for name, path in found.items() if path.is_file()}
    if not found:
        names = ", ".join(part.file for part in PARTS.values())
        raise ImportRejected([f"{directory}: no catalogue file here (expected {names})"])
    return found


def _read(name: str, path: Path, progress: Callable[[int], None]) -> list[Line[Any]]:
    part = PARTS[name]
    return read_records(path, part.model, part.key, progress=progress)


def import_part(
    conn: psycopg.Connection,
    name: str,
    path: Path,
    settings: CatalogSettings | None,
    progress: Callable[[int], None] = lambda _n: None,
) -> Imported:
    """Read ``path`` as part ``name`` of the catalogue and store it in the caller's
    transaction. ImportRejected names every bad line (``file:line: field: reason``); the
    caller then rolls back."""
    lines = _read(name, path, progress)
    return Imported(len(lines), PARTS[name].store(conn, lines, path.name, settings))


def import_catalog(
    conn: psycopg.Connection,
    files: dict[str, Path],
    settings: CatalogSettings | None,
    started: Callable[[str, Path], None] = lambda _name, _path: None,
) -> dict[str, Imported]:
    """Import the parts in ``files`` (name → path, names of :data:`PARTS`) in import order, in
    the caller's transaction, calling ``started`` before each. The first part with a bad line
    stops the import with ImportRejected (the parts after it would only repeat its errors as
    unknown references); the caller rolls back and nothing is written.

    While a part is stored (PostgreSQL working, this process waiting with the GIL released),
    the next part's file is read and validated in a thread: the two cores work at once, for
    the memory of two parts' records."""
    unknown = sorted(set(files) - set(PARTS))
    if unknown:
        raise ImportRejected([f"{name}: not a part of the catalogue" for name in unknown])
    names = [name for name in PARTS if name in files]
    done: dict[str, Imported] = {}
    with ThreadPoolExecutor(max_workers=1) as reader:
        reading = reader.submit(_read, names[0], files[names[0]], lambda _n: None)
        for position, name in enumerate(names):
            started(name, files[name])
            lines = reading.result()
            if position + 1 < len(names):
                following = names[position + 1]
                reading = reader.submit(_read, following, files[following], lambda _n: None)
            store = PARTS[name].store
            done[name] = Imported(len(lines), store(conn, lines, files[name].name, settings))
            del lines
    return done
