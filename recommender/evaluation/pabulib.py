"""Reading Pabulib ``.pb`` files: three ``;``-separated sections, META, PROJECTS and VOTES.

The format (Stolicki, Szufa, Talmon, arXiv:2012.06539): a section name on a line of its own,
then a header row, then one row per key, project or ballot. Fields may be quoted (the csv
module reads them). A malformed file is refused with :class:`contracts.errors.InvalidInput`
naming the file and the line.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from contracts.errors import InvalidInput

SECTIONS = ("META", "PROJECTS", "VOTES")


@dataclass(frozen=True)
class PbFile:
    """One ``.pb`` file as text: META keys, and PROJECTS and VOTES rows keyed by their header."""

    name: str
    meta: Mapping[str, str]
    projects: Sequence[Mapping[str, str]]
    votes: Sequence[Mapping[str, str]]
    vote_lines: Sequence[int] = ()  # the line of each VOTES row, for messages

    def meta_int(self, key: str) -> int | None:
        """A META value as a positive integer (``5``, ``5.0``), ``None`` when absent or blank."""
        text = self.meta.get(key, "").strip()
        if not text:
            return None
        try:
            value = float(text) if text.isascii() else float("nan")
        except ValueError:
            value = float("nan")
        if value != value or value < 0 or value != int(value):
            raise InvalidInput(f"{self.name}: META {key} is not a whole number: {text!r}")
        return int(value)


def _error(name: str, line: int, reason: str) -> InvalidInput:
    return InvalidInput(f"{name}:{line}: {reason}", errors=[f"{name}:{line}: {reason}"])


def parse(text: str, name: str) -> PbFile:
    """Parse the text of one ``.pb`` file called ``name`` (for the messages)."""
    meta: dict[str, str] = {}
    tables: dict[str, list[dict[str, str]]] = {"PROJECTS": [], "VOTES": []}
    vote_lines: list[int] = []
    section: str | None = None
    header: list[str] | None = None
    seen: set[str] = set()
    reader = csv.reader(text.splitlines(), delimiter=";", quotechar='"')
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        first = row[0].strip()
        if len(row) == 1 and first in SECTIONS:
            if first in seen:
                raise _error(name, line, f"section {first} appears twice")
            seen.add(first)
            section, header = first, None
            continue
        if section is None:
            raise _error(name, line, "data before the first section (META, PROJECTS or VOTES)")
        if header is None:
            header = [cell.strip() for cell in row]
            key = (
                "key"
                if section == "META"
                else ("project_id" if section == "PROJECTS" else "voter_id")
            )
            if not header or header[0] != key:
                raise _error(name, line, f"the {section} header must start with {key!r}")
            if len(set(header)) != len(header):
                raise _error(name, line, f"the {section} header repeats a column")
            continue
        if len(row) != len(header):
            raise _error(
                name, line, f"{section} row has {len(row)} fields, the header has {len(header)}"
            )
        record = {column: cell.strip() for column, cell in zip(header, row, strict=True)}
        if section == "META":
            meta[record["key"]] = record.get("value", "")
        else:
            if not record[header[0]]:
                raise _error(name, line, f"{section} row without {header[0]}")
            tables[section].append(record)
            if section == "VOTES":
                vote_lines.append(line)
    for required in SECTIONS:
        if required not in seen:
            raise _error(name, 1, f"no {required} section")
    ids = [p["project_id"] for p in tables["PROJECTS"]]
    if len(set(ids)) != len(ids):
        raise _error(name, 1, "a project_id appears twice in PROJECTS")
    return PbFile(
        name=name,
        meta=meta,
        projects=tables["PROJECTS"],
        votes=tables["VOTES"],
        vote_lines=vote_lines,
    )


def read(path: Path) -> PbFile:
    """Read and parse one ``.pb`` file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _error(path.name, 1, f"not UTF-8 text ({exc.reason})") from exc
    return parse(text, path.name)


def read_folder(folder: Path) -> list[PbFile]:
    """Every ``.pb`` file of one city-edition folder, in name order."""
    files = sorted(folder.glob("*.pb"))
    if not files:
        raise InvalidInput(f"{folder}: no .pb file in this folder")
    try:
        return [read(path) for path in files]
    except InvalidInput as exc:
        raise exc.within(str(folder)) from None


def split_list(value: str) -> list[str]:
    """A comma-separated cell (``vote``, ``points``, ``category``) as its non-empty items."""
    return [part.strip() for part in value.split(",") if part.strip()]
