"""Small data sets in the folder layout of ``shared/geodata``, cut out of the real files.

``cut`` keeps a handful of real communes (their outlines from a per-département file, their
membership entries, their EPCI restricted to the kept members, their département and région);
``MiniData.write`` lays them out the way ``geo_engine.territories.geodata.read`` expects
them. Tests may edit the records in between (break a geometry, merge two communes into a
commune nouvelle, ...).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import mapping, shape

Record = dict[str, Any]


@functools.lru_cache(maxsize=16)
def _load(path: Path) -> Any:
    """A parsed data file, cached: callers must not mutate it (``cut`` hands out deep copies)."""
    return json.loads(path.read_text(encoding="utf-8"))


def _dump(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def _collection(features: list[Record]) -> Record:
    return {"type": "FeatureCollection", "features": features}


@dataclass
class MiniData:
    millesime: int
    commune_features: list[Record]
    records: list[Record]  # membership/communes.json
    epcis: list[Record]  # membership/epci.json
    departements: list[Record]  # membership/departements.json
    regions: list[Record]  # membership/regions.json
    departement_features: list[Record]
    region_features: list[Record]
    paris_features: list[Record] | None = field(default=None)

    # -- look-ups -------------------------------------------------------------------------------
    def feature(self, code: str) -> Record:
        return next(f for f in self.commune_features if f["properties"]["code"] == code)

    def record(self, code: str) -> Record:
        return next(r for r in self.records if r["code"] == code)

    def outline(self, code: str) -> shapely.Geometry:
        return shape(self.feature(code)["geometry"])

    @property
    def commune_codes(self) -> list[str]:
        return sorted(r["code"] for r in self.records if r["type"] == "commune-actuelle")

    # -- layout ---------------------------------------------------------------------------------
    def communes_path(self, root: Path) -> Path:
        return root / "communes" / f"communes-{self.millesime}-france.geojson"

    def write(self, root: Path) -> Path:
        """Write the data set under ``root`` (created) and return ``root``."""
        _dump(self.communes_path(root), _collection(self.commune_features))
        if self.paris_features is not None:
            _dump(
                root / "communes" / "paris-arrondissements-municipaux.geojson",
                _collection(self.paris_features),
            )
        _dump(
            root / "departements" / "departements-avec-outre-mer.geojson",
            _collection(self.departement_features),
        )
        _dump(
            root / "regions" / "regions-avec-outre-mer.geojson", _collection(self.region_features)
        )
        _dump(root / "membership" / "communes.json", self.records)
        _dump(root / "membership" / "epci.json", self.epcis)
        _dump(root / "membership" / "departements.json", self.departements)
        _dump(root / "membership" / "regions.json", self.regions)
        return root


def cut(
    geodata_dir: Path,
    codes: Iterable[str],
    *,
    commune_file: str = "communes-2026-51.geojson",
    millesime: int = 2026,
) -> MiniData:
    """The real communes ``codes`` (all from ``commune_file``) with everything they refer to."""
    kept = set(codes)
    features = [
        f
        for f in _load(geodata_dir / "communes" / commune_file)["features"]
        if f["properties"]["code"] in kept
    ]
    missing = kept - {f["properties"]["code"] for f in features}
    assert not missing, f"{sorted(missing)} not in {commune_file}"

    membership = geodata_dir / "membership"
    records = [
        r
        for r in _load(membership / "communes.json")
        if (r["type"] == "commune-actuelle" and r["code"] in kept)
        or (r["type"] == "arrondissement-municipal" and r.get("commune") in kept)
    ]
    epcis = []
    for e in _load(membership / "epci.json"):
        members = [m for m in e.get("membres") or [] if m["code"] in kept]
        if members:
            epcis.append({**e, "membres": members})
    dep_codes = {r["departement"] for r in records}
    departements = [d for d in _load(membership / "departements.json") if d["code"] in dep_codes]
    reg_codes = {r["region"] for r in records} | {d["region"] for d in departements}
    regions = [r for r in _load(membership / "regions.json") if r["code"] in reg_codes]

    dep_features = [
        f
        for f in _load(geodata_dir / "departements" / "departements-avec-outre-mer.geojson")[
            "features"
        ]
        if f["properties"]["code"] in dep_codes
    ]
    reg_features = [
        f
        for f in _load(geodata_dir / "regions" / "regions-avec-outre-mer.geojson")["features"]
        if f["properties"]["code"] in reg_codes
    ]
    paris = None
    if "75056" in kept:
        paris = _load(geodata_dir / "communes" / "paris-arrondissements-municipaux.geojson")[
            "features"
        ]
    mini = MiniData(
        millesime=millesime,
        commune_features=features,
        records=records,
        epcis=epcis,
        departements=departements,
        regions=regions,
        departement_features=dep_features,
        region_features=reg_features,
        paris_features=paris,
    )
    return copy.deepcopy(mini)


def merged(data: MiniData, absorbed: str, into: str, millesime: int) -> MiniData:
    """The next millésime of ``data`` where commune ``absorbed`` merged into commune ``into``.

    As INSEE publishes it: ``into`` keeps its code and lists ``absorbed`` in ``anciensCodes``;
    ``absorbed`` leaves communes.json and its EPCI's members; the outline is the union of both.
    """
    new = copy.deepcopy(data)
    new.millesime = millesime
    survivor, gone = new.record(into), new.record(absorbed)
    survivor["anciensCodes"] = sorted({*(survivor.get("anciensCodes") or []), absorbed})
    survivor["population"] = int(survivor.get("population") or 0) + int(gone.get("population") or 0)
    survivor["codesPostaux"] = sorted(
        {*(survivor.get("codesPostaux") or []), *(gone.get("codesPostaux") or [])}
    )
    new.records.remove(gone)

    union = shapely.union(new.outline(into), new.outline(absorbed))
    new.feature(into)["geometry"] = mapping(union)
    new.commune_features.remove(new.feature(absorbed))

    for e in new.epcis:
        e["membres"] = [m for m in e["membres"] if m["code"] != absorbed]
    new.epcis = [e for e in new.epcis if e["membres"]]
    return new


def without(data: MiniData, code: str, millesime: int) -> MiniData:
    """The next millésime of ``data`` where commune ``code`` vanished with no successor."""
    new = copy.deepcopy(data)
    new.millesime = millesime
    new.records.remove(new.record(code))
    new.commune_features.remove(new.feature(code))
    for e in new.epcis:
        e["membres"] = [m for m in e["membres"] if m["code"] != code]
    new.epcis = [e for e in new.epcis if e["membres"]]
    return new
