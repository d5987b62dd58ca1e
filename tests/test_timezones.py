"""Time zones of the communes, checked against real time-zone polygons and IANA's own tables.

The oracle is ``tzfpy`` (time-zone polygons of timezone-boundary-builder, from OpenStreetMap):
every commune with an outline is looked up at a point inside its outline; the communes of the
collectivités d'outre-mer, which have no outline in the data, at their chef-lieu (coordinates
below, from the map, a few hundred metres at most off). IANA's ``zone.tab`` / ``zone1970.tab``
say which zones each territory may use. None of it comes from the loader.
"""

from __future__ import annotations

import importlib.util
import json
import zoneinfo
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
import sqlalchemy
import tzfpy

from geo_engine import db
from geo_engine.settings import DatabaseSettings, GeoSettings
from geo_engine.territories import geodata
from geo_engine.territories.load import load
from geo_engine.territories.timezones import COMMUNE_ZONE, TERRITORY_COUNTRY, TERRITORY_ZONE

pytestmark = pytest.mark.geodata

# Chef-lieu (lat, lon) of every commune of Polynésie française and of the TAAF districts, and of
# one commune of each other collectivité (each has a single zone, checked below).
COM_POINTS = {
    "98711": (-17.35, -145.51),  # Anaa (Tuamotu)
    "98712": (-17.52, -149.53),  # Arue (Tahiti)
    "98713": (-15.25, -146.75),  # Arutua
    "98714": (-16.50, -151.74),  # Bora-Bora
    "98715": (-17.55, -149.60),  # Faaa
    "98716": (-16.05, -145.62),  # Fakarava
    "98717": (-15.82, -140.87),  # Fangatau
    "98718": (-10.47, -138.65),  # Fatu-Hiva (Marquesas)
    "98719": (-23.12, -134.97),  # Gambier (Rikitea, Mangareva)
    "98720": (-18.07, -140.95),  # Hao
    "98721": (-17.55, -142.62),  # Hikueru
    "98722": (-17.60, -149.30),  # Hitiaa O Te Ra
    "98723": (-9.80, -139.03),  # Hiva-Oa (Marquesas)
    "98724": (-16.72, -151.03),  # Huahine
    "98725": (-17.50, -149.47),  # Mahina
    "98726": (-16.60, -143.65),  # Makemo
    "98727": (-14.45, -146.05),  # Manihi
    "98728": (-16.44, -152.25),  # Maupiti
    "98729": (-17.53, -149.83),  # Moorea-Maiao
    "98730": (-14.17, -141.23),  # Napuka
    "98731": (-8.91, -140.10),  # Nuku-Hiva (Marquesas, Taiohae)
    "98732": (-19.28, -138.78),  # Nukutavake
    "98733": (-17.69, -149.58),  # Paea
    "98734": (-17.75, -149.55),  # Papara
    "98735": (-17.54, -149.57),  # Papeete
    "98736": (-17.53, -149.55),  # Pirae
    "98737": (-14.82, -138.81),  # Pukapuka
    "98738": (-17.60, -149.60),  # Punaauia
    "98739": (-23.87, -147.67),  # Raivavae (Australes)
    "98740": (-14.97, -147.65),  # Rangiroa
    "98741": (-27.61, -144.33),  # Rapa
    "98742": (-18.47, -136.45),  # Reao
    "98743": (-22.65, -152.81),  # Rimatara
    "98744": (-22.45, -151.35),  # Rurutu
    "98745": (-16.62, -151.50),  # Tahaa
    "98746": (-9.95, -139.08),  # Tahuata (Marquesas)
    "98747": (-17.73, -149.20),  # Taiarapu-Est
    "98748": (-17.80, -149.30),  # Taiarapu-Ouest
    "98749": (-14.45, -145.00),  # Takaroa
    "98750": (-16.83, -151.37),  # Taputapuatea
    "98751": (-17.33, -138.40),  # Tatakoto
    "98752": (-17.75, -149.40),  # Teva I Uta
    "98753": (-23.36, -149.48),  # Tubuai
    "98754": (-16.80, -151.47),  # Tumaraa
    "98755": (-20.78, -138.55),  # Tureia
    "98756": (-8.92, -139.55),  # Ua-Huka (Marquesas)
    "98757": (-9.40, -140.08),  # Ua-Pou (Marquesas)
    "98758": (-16.73, -151.44),  # Uturoa
    "98411": (-37.83, 77.57),  # Saint-Paul et Nouvelle-Amsterdam (Martin-de-Viviès)
    "98412": (-49.35, 70.22),  # Kerguelen (Port-aux-Français)
    "98413": (-46.43, 51.86),  # Crozet (Alfred-Faure)
    "98414": (-66.66, 140.00),  # Terre Adélie (Dumont-d'Urville)
    "98415": (-22.36, 40.36),  # Îles Éparses (Europa)
    "97502": (46.78, -56.18),  # Saint-Pierre
    "97701": (17.90, -62.85),  # Saint-Barthélemy (Gustavia)
    "97801": (18.07, -63.08),  # Saint-Martin (Marigot)
    "98613": (-13.28, -176.18),  # Uvea (Mata-Utu)
    "98612": (-14.29, -178.15),  # Sigave (Futuna)
    "98818": (-22.27, 166.45),  # Nouméa
    "98814": (-20.92, 167.24),  # Lifou (Loyalty Islands)
    "98901": (10.30, -109.22),  # Clipperton
}

# Where the engine departs from the polygons, and why. Everything else must agree exactly.
DEPARTS_FROM_POLYGONS = {
    # IANA's zone1970.tab lists Crozet under Asia/Dubai (UTC+4); the polygons put the archipelago
    # with Kerguelen (UTC+5). IANA decides.
    "98413": ("Asia/Dubai", "Indian/Kerguelen"),
    # Clipperton has no IANA zone; the polygons give the nautical zone of its longitude
    # (109.2° W: UTC−7) where the island keeps UTC−8, as the loader has always said.
    "98901": ("Etc/GMT+8", "Etc/GMT+7"),
}

JANUARY = datetime(2026, 1, 15, 12, 0)


def _offset_h(zone: str) -> float:
    offset = JANUARY.replace(tzinfo=ZoneInfo(zone)).utcoffset()
    assert offset is not None
    return offset.total_seconds() / 3600


def _zone_tables() -> dict[str, set[str]]:
    """Country code -> zones that IANA's zone.tab and zone1970.tab list for it."""
    for folder in zoneinfo.TZPATH:
        if (Path(folder) / "zone1970.tab").is_file():
            break
    else:  # pragma: no cover
        pytest.fail(f"no zone1970.tab in {zoneinfo.TZPATH}: install the system's tzdata")
    by_country: dict[str, set[str]] = {}
    for name in ("zone.tab", "zone1970.tab"):
        for line in (Path(folder) / name).read_text("utf-8").splitlines():
            if line.startswith("#") or not line.strip():
                continue
            countries, _, zone = line.split("\t")[:3]
            for country in countries.split(","):
                by_country.setdefault(country, set()).add(zone)
    return by_country


def test_reported_communes(conn: psycopg.Connection) -> None:
    zones = dict(conn.execute("SELECT code, timezone FROM commune").fetchall())
    assert zones["98731"] == "Pacific/Marquesas"  # Nuku-Hiva
    assert _offset_h(zones["98731"]) == -9.5
    assert zones["98719"] == "Pacific/Gambier"
    assert _offset_h(zones["98719"]) == -9
    assert zones["98735"] == "Pacific/Tahiti"  # Papeete
    assert zones["98755"] == "Pacific/Tahiti"  # Tureia: Tuamotu, next to the Gambier
    assert zones["98414"] == "Antarctica/DumontDUrville"
    assert zones["75056"] == "Europe/Paris"
    assert zones["2A004"] == "Europe/Paris"  # Ajaccio


def test_every_commune_with_an_outline_agrees_with_the_polygons(
    conn: psycopg.Connection,
) -> None:
    rows = conn.execute("""
        SELECT code, timezone, ST_X(p), ST_Y(p)
        FROM (SELECT code, timezone, ST_PointOnSurface(geom) AS p FROM commune
              WHERE geom IS NOT NULL) c""").fetchall()
    assert len(rows) == 34_868
    wrong = [
        (code, zone, found)
        for code, zone, lon, lat in rows
        if (found := tzfpy.get_tz(lon, lat)) != zone
    ]
    assert wrong == []
    assert {zone for _, zone, _, _ in rows} == {
        "Europe/Paris",
        "America/Guadeloupe",
        "America/Martinique",
        "America/Cayenne",
        "Indian/Reunion",
        "Indian/Mayotte",
    }


def test_every_commune_of_the_collectivites_agrees_with_the_polygons(
    conn: psycopg.Connection,
) -> None:
    zones = dict(conn.execute("SELECT code, timezone FROM commune").fetchall())
    checked = []
    for code, (lat, lon) in COM_POINTS.items():
        found = tzfpy.get_tz(lon, lat)
        zone = zones[code]
        if code in DEPARTS_FROM_POLYGONS:
            assert (zone, found) == DEPARTS_FROM_POLYGONS[code], code
        elif found.startswith("Etc/"):
            # At sea, where IANA names no zone (the Îles Éparses): the same time.
            assert _offset_h(zone) == _offset_h(found), (code, zone, found)
        else:
            assert zone == found, (code, zone, found)
        checked.append(code)
    polynesie_and_taaf = {c for c in zones if c.startswith(("987", "984"))}
    assert polynesie_and_taaf <= set(checked)  # every commune of the two territories
    assert len(polynesie_and_taaf) == 53


def test_one_zone_per_commune_for_territories_with_one(conn: psycopg.Connection) -> None:
    rows = conn.execute("""
        SELECT departement_code, array_agg(DISTINCT timezone ORDER BY timezone)
        FROM commune GROUP BY departement_code""").fetchall()
    several = {dep: zones for dep, zones in rows if len(zones) > 1}
    assert several == {
        "984": ["Antarctica/DumontDUrville", "Asia/Dubai", "Indian/Kerguelen", "Indian/Mayotte"],
        "987": ["Pacific/Gambier", "Pacific/Marquesas", "Pacific/Tahiti"],
    }


# Communes whose zone IANA lists under another country code than their territory's.
LISTED_ELSEWHERE = {
    "98414": "AQ",  # Terre Adélie: Dumont-d'Urville is listed under Antarctica
    "98415": "YT",  # Îles Éparses: IANA names no zone; the UTC+3 zone of neighbouring Mayotte
}


def test_every_zone_is_iana_and_listed_for_its_territory(conn: psycopg.Connection) -> None:
    listed = _zone_tables()
    rows = conn.execute("SELECT code, departement_code, timezone FROM commune").fetchall()
    assert len(rows) == 34_969
    for zone in {z for _, _, z in rows}:
        ZoneInfo(zone)  # loads: a real IANA zone
    used: dict[str, set[str]] = {}
    for code, dep, zone in rows:
        metro = len(dep) == 2  # départements 01-95, 2A, 2B
        country = "FR" if metro else LISTED_ELSEWHERE.get(code) or TERRITORY_COUNTRY.get(dep)
        if country is None:
            assert dep == "989", (code, dep)  # Clipperton: no IANA country
            continue
        assert zone in listed[country], (code, dep, zone, sorted(listed[country]))
        used.setdefault(country, set()).add(zone)
    # Every overseas territory IANA knows is there, and Polynésie uses each of its three zones.
    assert set(used) == {
        *("FR", "GP", "MQ", "GF", "RE", "PM", "YT", "BL", "MF", "TF", "WF", "PF", "NC", "AQ"),
    }
    assert used["PF"] == {"Pacific/Tahiti", "Pacific/Marquesas", "Pacific/Gambier"}
    assert used["PF"] == listed["PF"]
    assert used["TF"] == {"Indian/Kerguelen", "Asia/Dubai"}
    # Metropolitan France and Corsica: the one zone IANA lists for FR.
    assert used["FR"] == {"Europe/Paris"} == listed["FR"]


def test_a_reload_corrects_a_zone_and_counts_it(
    conn: psycopg.Connection, france: geodata.GeoDataSet, geo_settings: GeoSettings
) -> None:
    """A database loaded by the former per-département rule is corrected by ``geo load``."""
    conn.execute(
        "UPDATE commune SET timezone = 'Pacific/Tahiti' WHERE code = ANY (%s)",
        (["98731", "98719"],),
    )
    report = load(conn, france, geo_settings)
    assert report.changed
    assert report.changes["communes"]["updated"] == 2
    rows = conn.execute(
        "SELECT code, timezone FROM commune WHERE code IN ('98731', '98719') ORDER BY code"
    ).fetchall()
    assert rows == [("98719", "Pacific/Gambier"), ("98731", "Pacific/Marquesas")]
    conn.execute("DISCARD TEMP")  # the staging tables live until commit
    again = load(conn, france, geo_settings)
    assert again.changes["communes"] == {"inserted": 0, "updated": 0, "removed": 0}


def test_the_upgrade_corrects_a_database_loaded_before(france_db: DatabaseSettings) -> None:
    """Migration 0005 sets the zones the per-département rule got wrong, and only those."""
    path = next(Path(db.__file__).parent.glob("migrations/versions/0005_*.py"))
    spec = importlib.util.spec_from_file_location("migration_0005", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    # Its frozen values are today's, for every commune the old rule (the territory's zone,
    # TERRITORY_ZONE unchanged) got wrong.
    assert {
        c: z for c, z in COMMUNE_ZONE.items() if z != TERRITORY_ZONE[c[:3]]
    } == migration.TIME_ZONES
    old_rule = "UPDATE commune SET timezone = %s WHERE departement_code = %s"
    engine = sqlalchemy.create_engine(france_db.sqlalchemy_url)
    with engine.connect() as connection, connection.begin() as transaction:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cur:
            for dep in ("984", "987"):
                cur.execute(old_rule, (TERRITORY_ZONE[dep], dep))
        changed = connection.execute(
            sqlalchemy.text(migration.FIX_TIME_ZONES),
            {"zones": json.dumps(migration.TIME_ZONES)},
        ).rowcount
        zones = dict(
            connection.execute(
                sqlalchemy.text("SELECT code, timezone FROM commune WHERE code ~ '^98[47]'")
            ).all()
        )
        transaction.rollback()
    engine.dispose()
    assert changed == 10
    assert zones == {c: COMMUNE_ZONE.get(c, TERRITORY_ZONE[c[:3]]) for c in zones}
    assert zones["98731"] == "Pacific/Marquesas"
