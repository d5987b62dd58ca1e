"""The evaluation space: one city edition of Pabulib files as the engine sees a place.

This is the contract between the evaluation and the engine's adapter (``engine.py``): the city
and its districts and local areas are territories; every project is an item with a scope
territory, categories and coordinates; every voter has the district the city recorded; the
ballots are participations. Nothing here knows a folder or city by name: the levels come
from META (``district``, ``subunit``), the projects' scope column and the voters' location
column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse

from contracts.errors import InvalidInput
from recommender.evaluation import pabulib
from recommender.evaluation.districts import district_or_none, normalise

Level = Literal["city", "district", "area"]
# Column names, in order of preference, of a project's scope and of a voter's location.
PROJECT_SCOPE_COLUMNS = ("district", "neighborhood", "neighbourhood")
VOTER_LOCATION_COLUMNS = ("district", "neighborhood", "neighbourhood", "district_preference")
INTEREST_PREFIX = "topic_preference_"
# A voters' location column is "derived" (not where the voter lives but read off their choice)
# when it agrees with the scope of their district-level choice in a free-choice file this often.
DERIVED_AGREEMENT = 0.99
DERIVED_MIN_VOTERS = 20


@dataclass(frozen=True)
class Territory:
    code: str  # normalised name, unique in the space
    level: Level
    name: str
    parent: str | None  # district of an area; city of a district; None for the city
    lonlat: tuple[float, float] | None  # mean of its projects' coordinates when any have some


@dataclass(frozen=True)
class Budget:  # one .pb file
    key: str  # file name
    territory: str  # code of the territory the file covers (city/district/area)
    cap: int | None  # most projects one ballot may support; None = no cap


@dataclass(frozen=True)
class EvaluationSpace:
    dataset: str  # folder name
    territories: Mapping[str, Territory]
    budgets: Sequence[Budget]
    item_keys: Sequence[tuple[str, str]]  # (file, project_id), n_items
    item_budget: np.ndarray  # int32 index into budgets
    item_territory: Sequence[str]  # the project's scope territory code
    item_level: Sequence[str]  # "city" | "district" | "area"
    item_categories: Sequence[tuple[str, ...]]  # normalised lower-case, possibly empty
    item_lonlat: np.ndarray  # (n_items, 2) float64, NaN when absent
    item_names: Sequence[str]
    voter_ids: Sequence[str]
    voter_district: Sequence[str | None]  # territory code, as recorded by the city
    voter_area: Sequence[str | None]  # local area (Warsaw) when known
    voter_interests: Sequence[Mapping[str, float]] | None  # Zurich: declared topic points
    ballots: scipy.sparse.csr_matrix  # n_voters × n_items, 1.0 = supported
    # Added fields.
    city: str = ""  # code of the city territory
    voter_location_derived: bool = False  # the location column was read off the ballots
    # The points each ballot gave each project it supported (1 for approval ballots): what a
    # voter spent of a cumulative budget. None when the space was built without them.
    ballot_points: scipy.sparse.csr_matrix | None = None

    @property
    def n_items(self) -> int:
        return len(self.item_keys)

    @property
    def n_voters(self) -> int:
        return len(self.voter_ids)

    def places(self, voters: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The voters grouped by where they may vote: ``(eligible, place_of, located)`` where
        ``eligible`` is (n_places × n_items) bool, ``place_of`` (len(voters)) each voter's row
        in it, ``located`` (len(voters)) whether the voter's district or area is known. A
        project of a city file is open to all; a district or area file's only to that
        district's or area's voters (an area's also to a voter of its district whose area is
        unknown). A voter whose location is unknown may vote on everything."""
        index: dict[tuple[str | None, str | None], int] = {}
        rows: list[np.ndarray] = []
        place_of = np.empty(len(voters), dtype=np.int64)
        located = np.zeros(len(voters), dtype=bool)
        for n, v in enumerate(voters.tolist()):
            key = (self.voter_district[v], self.voter_area[v])
            located[n] = key != (None, None)
            row = index.get(key)
            if row is None:
                row = index[key] = len(rows)
                rows.append(self._open_row(*key))
            place_of[n] = row
        eligible = np.vstack(rows) if rows else np.ones((0, self.n_items), dtype=bool)
        return eligible, place_of, located

    @cached_property
    def _open_rows(self) -> dict[tuple[str | None, str | None], np.ndarray]:
        return {}

    def _open_row(self, district: str | None, area: str | None) -> np.ndarray:
        """(n_items) bool: what a voter of this district and area may vote on (memoised)."""
        row = self._open_rows.get((district, area))
        if row is None:
            if district is None and area is None:
                row = np.ones(self.n_items, dtype=bool)
            else:
                by_budget = np.array(
                    [self._open_to(b.territory, district, area) for b in self.budgets], dtype=bool
                )
                row = by_budget[self.item_budget]
            self._open_rows[(district, area)] = row
        return row

    def _open_to(self, territory: str, district: str | None, area: str | None) -> bool:
        t = self.territories[territory]
        if t.level == "city":
            return True
        if t.level == "district":
            return territory == district or (
                area is not None and self.territories[area].parent == territory
            )
        return territory == area or (area is None and t.parent == district)


@dataclass
class _Builder:
    city: str
    territories: dict[str, Territory] = field(default_factory=dict)

    def add(self, name: str, level: Level, parent: str | None) -> str:
        code = normalise(name)
        existing = self.territories.get(code)
        if existing is not None and (existing.level, existing.parent) != (level, parent):
            code = f"{parent}/{code}"  # same name at another level: qualified by its parent
            existing = self.territories.get(code)
        if existing is None:
            self.territories[code] = Territory(code, level, name, parent, None)
        return code


def _float(text: str | None) -> float:
    if not text or not text.isascii():
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


def _cap(f: pabulib.PbFile) -> int | None:
    caps = [f.meta_int("max_length")]
    if f.meta.get("vote_type", "").strip() == "cumulative":
        caps.append(f.meta_int("max_sum_points"))  # each supported project takes ≥ 1 point
    known = [c for c in caps if c is not None]
    return min(known) if known else None


def _column(header: Mapping[str, str] | None, names: Sequence[str]) -> str | None:
    if header is None:
        return None
    return next((n for n in names if n in header), None)


def build(folder: Path) -> EvaluationSpace:
    """The evaluation space of one city-edition folder of ``.pb`` files."""
    files = pabulib.read_folder(folder)
    units = {f.meta.get("unit", "").strip() for f in files} - {""}
    if len(units) > 1:
        raise InvalidInput(f"{folder}: files of several cities ({', '.join(sorted(units))})")
    city_name = units.pop() if units else folder.name
    b = _Builder(city=normalise(city_name))
    b.add(city_name, "city", None)

    budgets: list[Budget] = []
    item_keys: list[tuple[str, str]] = []
    item_budget: list[int] = []
    item_territory: list[str] = []
    item_categories: list[tuple[str, ...]] = []
    item_lonlat: list[tuple[float, float]] = []
    item_names: list[str] = []
    file_items: list[dict[str, int]] = []

    for f in files:
        territory = _file_territory(b, f)
        budgets.append(Budget(f.name, territory, _cap(f)))
        level = b.territories[territory].level
        scope_col = _column(f.projects[0] if f.projects else None, PROJECT_SCOPE_COLUMNS)
        scopes = [district_or_none(p.get(scope_col)) if scope_col else None for p in f.projects]
        # A city file whose projects all share one scope value: that value names the city
        # (Wrocław's "Ogólnomiejskie"), not a district.
        one_scope = len(set(scopes)) == 1 and level == "city" and len(scopes) > 1
        index: dict[str, int] = {}
        for p, scope in zip(f.projects, scopes, strict=True):
            t = territory
            if scope is not None and not one_scope and level != "area":
                child: Level = "district" if level == "city" else "area"
                t = b.add(p[scope_col or ""], child, territory)
            index[p["project_id"]] = len(item_keys)
            item_keys.append((f.name, p["project_id"]))
            item_budget.append(len(budgets) - 1)
            item_territory.append(t)
            item_categories.append(
                tuple(c.casefold() for c in pabulib.split_list(p.get("category", "")))
            )
            item_lonlat.append((_float(p.get("longitude")), _float(p.get("latitude"))))
            item_names.append(p.get("name", ""))
        file_items.append(index)

    voters, ballots, points, recorded, interests = _read_voters(files, file_items)
    lonlat = np.array(item_lonlat, dtype=np.float64).reshape(len(item_keys), 2)
    voter_district, voter_area = _locate_voters(b, files, voters, recorded, item_territory)
    derived = _derived_location(
        b, files, file_items, voters, voter_district, item_territory, ballots
    )
    if derived:
        voter_district = [None] * len(voters)
        voter_area = [None] * len(voters)
    territories = _with_centroids(b.territories, item_territory, lonlat)
    return EvaluationSpace(
        dataset=folder.name,
        territories=territories,
        budgets=budgets,
        item_keys=item_keys,
        item_budget=np.array(item_budget, dtype=np.int32),
        item_territory=item_territory,
        item_level=[territories[t].level for t in item_territory],
        item_categories=item_categories,
        item_lonlat=lonlat,
        item_names=item_names,
        voter_ids=voters,
        voter_district=voter_district,
        voter_area=voter_area,
        voter_interests=interests,
        ballots=ballots,
        ballot_points=points,
        city=b.city,
        voter_location_derived=derived,
    )


def _file_territory(b: _Builder, f: pabulib.PbFile) -> str:
    """The territory a file covers: the city without META district; the district when the
    subunit is blank, the district itself, or one of its project pools (``"X | large"``); else
    the subunit, a local area of the district."""
    district = f.meta.get("district", "").strip()
    if district_or_none(district) is None:
        return b.city
    code = b.add(district, "district", b.city)
    subunit = f.meta.get("subunit", "").strip()
    head = subunit.split("|", 1)[0]
    if district_or_none(subunit) is None or normalise(head) == normalise(district):
        return code
    return b.add(subunit, "area", code)


def _read_voters(
    files: Sequence[pabulib.PbFile], file_items: Sequence[Mapping[str, int]]
) -> tuple[
    list[str],
    scipy.sparse.csr_matrix,
    scipy.sparse.csr_matrix,
    list[str | None],
    list[Mapping[str, float]] | None,
]:
    voters: dict[str, int] = {}
    recorded: list[str | None] = []
    interests: list[dict[str, float]] = []
    rows: list[int] = []
    cols: list[int] = []
    spent: list[float] = []
    any_interest = False
    for f, index in zip(files, file_items, strict=True):
        loc_col = _column(f.votes[0] if f.votes else None, VOTER_LOCATION_COLUMNS)
        for n, v in enumerate(f.votes):
            line = f.vote_lines[n] if n < len(f.vote_lines) else 0
            vid = v["voter_id"]
            row = voters.get(vid)
            if row is None:
                row = voters[vid] = len(recorded)
                recorded.append(None)
                interests.append({})
            if loc_col and recorded[row] is None and district_or_none(v.get(loc_col)):
                recorded[row] = v[loc_col]
            for key, value in v.items():
                topic = key.removeprefix(INTEREST_PREFIX)
                if topic != key and topic not in interests[row]:  # the first file's answer
                    points = _float(value)
                    if not math.isnan(points):
                        interests[row][topic] = points
                        any_interest = True
            chosen = pabulib.split_list(v.get("vote", ""))
            points_text = pabulib.split_list(v.get("points", ""))
            if points_text and len(points_text) != len(chosen):
                raise InvalidInput(f"{f.name}:{line}: vote and points lists differ in length")
            for k, project in enumerate(chosen):
                item = index.get(project)
                if item is None:
                    raise InvalidInput(f"{f.name}:{line}: vote for unknown project {project!r}")
                given = _float(points_text[k]) if points_text else 1.0
                if given <= 0:
                    continue
                rows.append(row)
                cols.append(item)
                spent.append(given)
    n_items = sum(len(i) for i in file_items)
    matrix = scipy.sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(len(recorded), n_items)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    points = scipy.sparse.csr_matrix(
        (np.array(spent, dtype=np.float64), (rows, cols)), shape=(len(recorded), n_items)
    )
    points.sum_duplicates()
    return list(voters), matrix, points, recorded, (list(interests) if any_interest else None)


def _locate_voters(
    b: _Builder,
    files: Sequence[pabulib.PbFile],
    voters: Sequence[str],
    recorded: Sequence[str | None],
    item_territory: Sequence[str],
) -> tuple[list[str | None], list[str | None]]:
    """Each voter's district and area: the value the city recorded when it names a district
    that has projects, else the district or area file the voter cast a ballot in."""
    with_items = set(item_territory)
    with_items |= {p for t in with_items if (p := b.territories[t].parent) is not None}
    by_code = {t.code: t for t in b.territories.values()}
    by_name = {normalise(t.name): t for t in b.territories.values() if t.level != "city"}
    district: list[str | None] = [None] * len(voters)
    area: list[str | None] = [None] * len(voters)
    for v, value in enumerate(recorded):
        code = district_or_none(value)
        t = by_code.get(code or "") or by_name.get(code or "")
        if t is None or t.code not in with_items:
            continue
        if t.level == "district":
            district[v] = t.code
        elif t.level == "area":
            area[v] = t.code
            district[v] = t.parent
    position = {vid: n for n, vid in enumerate(voters)}
    for f in files:
        territory = _file_territory(b, f)
        t = b.territories[territory]
        if t.level == "city":
            continue
        for vote in f.votes:
            v = position[vote["voter_id"]]
            if t.level == "area":
                area[v] = area[v] or territory
                district[v] = district[v] or t.parent
            else:
                district[v] = district[v] or territory
    return district, area


def _derived_location(
    b: _Builder,
    files: Sequence[pabulib.PbFile],
    file_items: Sequence[Mapping[str, int]],
    voters: Sequence[str],
    voter_district: Sequence[str | None],
    item_territory: Sequence[str],
    ballots: scipy.sparse.csr_matrix,
) -> bool:
    """Whether the voters' recorded district was read off their own choice: in a city file
    whose projects are scoped to several districts (any voter may choose any), the recorded
    district equals the scope of a chosen project for (nearly) every such voter."""
    for f, index in zip(files, file_items, strict=True):
        if b.territories[_file_territory(b, f)].level != "city":
            continue
        items = np.fromiter(index.values(), dtype=np.int64)
        scoped = [i for i in items if b.territories[item_territory[i]].level != "city"]
        if len({item_territory[i] for i in scoped}) < 2:
            continue
        sub = ballots[:, scoped].tocsr()
        agree = single = chose = 0
        for v in np.flatnonzero(np.diff(sub.indptr)).tolist():
            if voter_district[v] is None:
                continue
            chose += 1
            row = sub.indices[sub.indptr[v] : sub.indptr[v + 1]]
            chosen = {item_territory[scoped[j]] for j in row}
            if len(chosen) == 1:
                single += 1
                agree += voter_district[v] in chosen
        # Most voters chose in one district only, and that district is their recorded one.
        if (
            single >= DERIVED_MIN_VOTERS
            and single >= 0.5 * chose
            and agree >= DERIVED_AGREEMENT * single
        ):
            return True
    return False


def _with_centroids(
    territories: Mapping[str, Territory], item_territory: Sequence[str], lonlat: np.ndarray
) -> dict[str, Territory]:
    """Each territory's ``lonlat``: the mean of the coordinates of its projects and of its
    children's projects, when any have some."""
    sums: dict[str, list[float]] = {}
    for i, code in enumerate(item_territory):
        if np.isnan(lonlat[i]).any():
            continue
        t: str | None = code
        while t is not None:
            acc = sums.setdefault(t, [0.0, 0.0, 0.0])
            acc[0] += lonlat[i, 0]
            acc[1] += lonlat[i, 1]
            acc[2] += 1
            t = territories[t].parent
    out: dict[str, Territory] = {}
    for code, territory in territories.items():
        total = sums.get(code)
        centre = (total[0] / total[2], total[1] / total[2]) if total else None
        out[code] = Territory(
            territory.code, territory.level, territory.name, territory.parent, centre
        )
    return out
