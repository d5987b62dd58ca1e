"""Reading the French geography data set (layout of ``shared/geodata``) into plain records.

Nothing here touches the database. Every problem raises :class:`GeoDataError` naming the file,
the feature and the reason, so a broken file is refused before anything is written.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import shapely

from contracts.errors import InvalidInput
from geo_engine.territories.timezones import commune_zone

COMMUNES_FILE = re.compile(r"^communes-(\d{4})-france\.geojson(\.gz)?$")

COMMUNES_FILE = re.compile(r"^communes-(\d{4})-france\.geojson(\.gz)?$")


class GeoDataError(InvalidInput):
    """A data file that cannot be read; the message names the file, the feature and the reason."""

    def __init__(self, path: Path, reason: str, feature: str | None = None) -> None:
        where = f"{path}: feature {feature}: " if feature is not None else f"{path}: "
        super().__init__(where + reason)
        self.path = path
        self.feature = feature
        self.reason = reason


@dataclass(frozen=True)
class Area:
    """A territory with an outline given as EWKB hex (SRID 4326), or none."""

    code: str
    name: str
    wkb: str | None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class GeoDataSet:
    millesime: int
    source: str
    regions: list[Area]
    departements: list[Area]
    epcis: list[dict[str, Any]]
    communes: list[dict[str, Any]]
    arrondissements: list[dict[str, Any]]


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise GeoDataError(path, "file is missing")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return orjson.loads(raw)
    except (OSError, EOFError, orjson.JSONDecodeError) as exc:
        raise GeoDataError(path, f"not readable JSON: {exc}") from exc


def _features(path: Path, id_property: str) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """Yield (id, properties, geometry) of a GeoJSON FeatureCollection, checking its shape."""
    doc = _read_json(path)
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise GeoDataError(path, "not a GeoJSON FeatureCollection")
    for index, feature in enumerate(doc.get("features") or []):
        props = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(props, dict) or props.get(id_property) in (None, ""):
            raise GeoDataError(path, f"no '{id_property}' property", feature=f"#{index}")
        yield str(props[id_property]), props, feature.get("geometry")


def _to_ewkb(path: Path, items: list[tuple[str, Any]]) -> list[str]:
    """Parse GeoJSON geometries (vectorised) into EWKB hex; refuse non-areal or out-of-range ones.

    Invalid but well-formed polygons pass: the loader repairs them with ``ST_MakeValid``.
    """
    texts = [orjson.dumps(geom).decode() if isinstance(geom, dict) else "" for _, geom in items]
    geoms = shapely.from_geojson(texts, on_invalid="ignore") if texts else np.array([])
    for (code, raw), text, geom in zip(items, texts, geoms, strict=True):
        if geom is None:
            reason = "no geometry"
            if text:
                try:
                    shapely.from_geojson(text, on_invalid="raise")
                except Exception as exc:  # shapely raises GEOSException with the parser's reason
                    reason = f"unreadable geometry: {exc}"
            raise GeoDataError(path, reason, feature=code)
        kind = shapely.get_type_id(geom)
        if kind not in (3, 6):  # Polygon, MultiPolygon
            raise GeoDataError(
                path,
                f"geometry is a {raw.get('type')}, not a Polygon or MultiPolygon",
                feature=code,
            )
        xmin, ymin, xmax, ymax = shapely.bounds(geom)
        if not (-180 <= xmin <= xmax <= 180 and -90 <= ymin <= ymax <= 90):
            raise GeoDataError(path, "coordinates outside longitude/latitude ranges", feature=code)
    geoms = shapely.set_srid(geoms, 4326)
    return [str(h) for h in shapely.to_wkb(geoms, hex=True, include_srid=True)]


def _areas(path: Path, id_property: str, name_property: str) -> dict[str, tuple[str, str]]:
    feats = list(_features(path, id_property))
    wkbs = _to_ewkb(path, [(code, geom) for code, _, geom in feats])
    return {
        code: (str(props.get(name_property, code)), wkb)
        for (code, props, _), wkb in zip(feats, wkbs, strict=True)
    }


def communes_file(root: Path) -> tuple[Path, int]:
    """The national communes file and the millésime its name carries."""
    folder = root / "communes"
    found = sorted(
        (int(m.group(1)), p)
        for p in (folder.iterdir() if folder.is_dir() else [])
        if (m := COMMUNES_FILE.match(p.name))
    )
    if not found:
        raise GeoDataError(folder, "no communes-YYYY-france.geojson(.gz) file")
    millesime, path = found[-1]
    return path, millesime


def read(root: Path) -> GeoDataSet:
    """Read the whole data set; raises GeoDataError before anything is half-read."""
    commune_path, millesime = communes_file(root)
    membership = root / "membership"
    records = _read_json(membership / "communes.json")
    epci_records = _read_json(membership / "epci.json")
    dep_records = _read_json(membership / "departements.json")
    reg_records = _read_json(membership / "regions.json")

    reg_geoms = _areas(root / "regions" / "regions-avec-outre-mer.geojson", "code", "nom")
    dep_geoms = _areas(root / "departements" / "departements-avec-outre-mer.geojson", "code", "nom")
    regions = [
        Area(r["code"], r["nom"], reg_geoms.get(r["code"], ("", None))[1], {"zone": r["zone"]})
        for r in reg_records
    ]
    departements = [
        Area(
            d["code"],
            d["nom"],
            dep_geoms.get(d["code"], ("", None))[1],
            {"zone": d["zone"], "region": d["region"]},
        )
        for d in dep_records
    ]

    commune_feats = list(_features(commune_path, "code"))
    commune_wkb = dict(
        zip(
            (code for code, _, _ in commune_feats),
            _to_ewkb(commune_path, [(code, geom) for code, _, geom in commune_feats]),
            strict=True,
        )
    )
    epci_of: dict[str, str] = {}
    epcis = []
    for e in epci_records:
        members = e.get("membres") or []
        for m in members:
            epci_of[m["code"]] = e["code"]
        epcis.append(
            {
                "siren": e["code"],
                "name": e["nom"],
                "kind": e["type"],
                "population": int(e.get("populationTotale") or 0),
                "member_count": len(members),
            }
        )

    communes = []
    arrondissements = []
    seen: set[str] = set()
    for index, c in enumerate(records):
        kind = c.get("type")
        code = c.get("code")
        if not code or kind is None:
            raise GeoDataError(membership / "communes.json", "no code or type", feature=f"#{index}")
        if kind == "arrondissement-municipal":
            arrondissements.append(
                {
                    "code": code,
                    "name": c["nom"],
                    "commune_code": c["commune"],
                    "population": int(c.get("population") or 0),
                    "postal_codes": sorted(set(c.get("codesPostaux") or [])),
                }
            )
            continue
        if kind != "commune-actuelle":
            continue
        seen.add(code)
        dep = c["departement"]
        communes.append(
            {
                "code": code,
                "name": c["nom"],
                "departement_code": dep,
                "region_code": c.get("region") or dep,
                "epci_siren": epci_of.get(code),
                "population": int(c.get("population") or 0),
                "postal_codes": sorted(set(c.get("codesPostaux") or [])),
                "zone": c["zone"],
                "timezone": commune_zone(code, dep),
                "former_codes": sorted(set(c.get("anciensCodes") or []) - {code}),
                "wkb": commune_wkb.get(code),
            }
        )
    absorbed: dict[str, str] = {}
    for c in communes:
        for former in c["former_codes"]:
            if former in absorbed:
                raise GeoDataError(
                    membership / "communes.json",
                    f"former code {former} claimed by both {absorbed[former]} and {c['code']}",
                    feature=c["code"],
                )
            absorbed[former] = c["code"]
    unknown = sorted(set(commune_wkb) - seen)
    if unknown:
        raise GeoDataError(
            commune_path,
            "outline of a commune that communes.json does not list",
            feature=unknown[0],
        )

    paris = root / "communes" / "paris-arrondissements-municipaux.geojson"
    if paris.is_file():
        arr_geoms = _areas(paris, "c_arinsee", "l_aroff")
        for a in arrondissements:
            a["wkb"] = arr_geoms.get(a["code"], ("", None))[1]
    return GeoDataSet(
        millesime=millesime,
        source=str(root.resolve()),
        regions=regions,
        departements=departements,
        epcis=epcis,
        communes=communes,
        arrondissements=arrondissements,
    )
