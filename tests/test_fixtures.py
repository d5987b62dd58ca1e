"""``fixtures.population``: seeded, spread in proportion to population, homes inside communes,
valid interests, and a JSON Lines form that reads back into the same batch.

Population shares come from ``membership/communes-epci-2026.csv`` (read with ``csv``), not from
the database the generator reads.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
import pytest
from scipy import stats

from contracts.themes import Theme
from contracts.users import Notifications
from fixtures.population import generate_users, to_jsonl
from geo_engine.territories.locate import locate
from geo_engine.users.places import UserBatch, read_jsonl

pytestmark = pytest.mark.geodata


@pytest.fixture(scope="module")
def communes_csv(geodata_dir: Path) -> dict[str, dict[str, Any]]:
    """Current communes with a 2026 outline: code → row (population as int)."""
    path = geodata_dir / "membership" / "communes-epci-2026.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [
            {**row, "population": int(row["population"] or 0)}
            for row in csv.DictReader(handle)
            if row["type"] == "commune-actuelle" and row["polygone_commune_2026"] == "true"
        ]
    return {row["code_insee"]: row for row in rows}


def _same(a: UserBatch, b: UserBatch) -> bool:
    return (
        np.array_equal(a.ids, b.ids)
        and np.array_equal(a.lon, b.lon, equal_nan=True)
        and np.array_equal(a.lat, b.lat, equal_nan=True)
        and a.commune.tolist() == b.commune.tolist()
        and a.postal_code.tolist() == b.postal_code.tolist()
        and a.interests == b.interests
        and a.notifications == b.notifications
        and a.timezone == b.timezone
    )


def test_same_seed_same_users(conn: psycopg.Connection) -> None:
    first = generate_users(conn, 5000, seed=3)
    again = generate_users(conn, 5000, seed=3)
    other = generate_users(conn, 5000, seed=4)
    assert len(first) == len(again) == len(other) == 5000
    assert _same(first, again)
    assert first.ids.tolist() == list(range(1, 5001))
    assert not _same(first, other)
    # Not a near copy either: most users differ.
    both = ~np.isnan(first.lon) & ~np.isnan(other.lon)
    assert (first.lon[both] != other.lon[both]).mean() > 0.99
    assert sum(a != b for a, b in zip(first.interests, other.interests, strict=True)) > 2500
    shifted = generate_users(conn, 10, seed=3, first_id=1_000_001)
    assert shifted.ids.tolist() == list(range(1_000_001, 1_000_011))


@pytest.mark.slow
def test_users_follow_the_population(
    conn: psycopg.Connection, communes_csv: dict[str, dict[str, Any]]
) -> None:
    """50,000 users: shares per région match population shares (chi-square), and Paris's."""
    batch = generate_users(conn, 50_000, seed=11)
    points = np.flatnonzero(~np.isnan(batch.lon))
    by_code = np.flatnonzero(batch.commune != None)  # noqa: E711
    by_postal = np.flatnonzero(batch.postal_code != None)  # noqa: E711
    assert len(points) + len(by_code) + len(by_postal) == len(batch)
    # Roughly the shares the module documents (10% commune only, 5% postal code only).
    assert 0.08 < len(by_code) / len(batch) < 0.12
    assert 0.035 < len(by_postal) / len(batch) < 0.065

    # The commune of each home point, as locate's rule has it, in one query.
    rows = conn.execute(
        """SELECT (SELECT p.commune_code FROM commune_piece p
                   WHERE ST_Covers(p.geom, ST_SetSRID(ST_MakePoint(x, y), 4326))
                   ORDER BY p.commune_code LIMIT 1)
           FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS t(x, y, n) ORDER BY n""",
        (batch.lon[points].tolist(), batch.lat[points].tolist()),
    ).fetchall()
    communes = [r[0] for r in rows] + batch.commune[by_code].tolist()
    assert None not in communes
    # Users given by postal code only are left out: which of them is which is random anyway.
    total = len(communes)

    population = {code: row["population"] for code, row in communes_csv.items()}
    everyone = sum(p for p in population.values() if p > 0)
    region_of = {code: row["region"] for code, row in communes_csv.items()}
    observed = Counter(region_of[c] for c in communes)
    expected_pop = Counter()
    for code, pop in population.items():
        if pop > 0:
            expected_pop[region_of[code]] += pop
    regions = sorted(expected_pop)
    assert set(observed) <= set(regions)
    assert len(regions) == 18  # 13 metropolitan régions and 5 DROM
    expected = np.array([expected_pop[r] / everyone * total for r in regions])
    counts = np.array([observed[r] for r in regions])
    chi2 = float((((counts - expected) ** 2) / expected).sum())
    by_region = dict(zip(regions, counts.tolist(), strict=True))
    assert chi2 < stats.chi2.ppf(0.999, df=len(regions) - 1), by_region

    paris_share = population["75056"] / everyone
    paris_users = sum(1 for c in communes if c == "75056")
    assert paris_users / total == pytest.approx(paris_share, rel=0.10)
    # Every user's commune is inhabited.
    assert all(population[c] > 0 for c in set(communes))


def test_homes_lie_in_inhabited_communes(
    conn: psycopg.Connection, communes_csv: dict[str, dict[str, Any]]
) -> None:
    batch = generate_users(conn, 5000, seed=3)
    points = np.flatnonzero(~np.isnan(batch.lon))
    assert len(points) > 4000
    for i in points.tolist():
        found = locate(conn, float(batch.lat[i]), float(batch.lon[i]))
        assert found is not None, (batch.lon[i], batch.lat[i])
        assert found.commune.population > 0
        assert communes_csv[found.commune.code]["population"] == found.commune.population
    for code in batch.commune[batch.commune != None].tolist():  # noqa: E711
        assert communes_csv[code]["population"] > 0
    postal_codes = {
        p for row in communes_csv.values() for p in (row["codes_postaux"] or "").split("|") if p
    }
    for postal in batch.postal_code[batch.postal_code != None].tolist():  # noqa: E711
        assert postal in postal_codes


def test_interests_and_notifications_are_valid(conn: psycopg.Connection) -> None:
    batch = generate_users(conn, 5000, seed=3)
    themes = {t.value for t in Theme}
    sizes = Counter(len(i) for i in batch.interests)
    assert set(sizes) == {0, 1, 2, 3, 4}
    seen: set[str] = set()
    for interests in batch.interests:
        assert len(set(interests)) == len(interests)
        assert set(interests) <= themes
        seen |= set(interests)
    assert seen == themes
    for raw in set(batch.notifications):
        Notifications.model_validate(orjson.loads(raw))
    assert len(set(batch.notifications)) > 8  # several settings, not one default
    assert batch.timezone == [None] * 5000


def test_jsonl_reads_back_into_the_same_batch(conn: psycopg.Connection, tmp_path: Path) -> None:
    batch = generate_users(conn, 5000, seed=3)
    path = tmp_path / "users.jsonl"
    path.write_bytes(b"".join(to_jsonl(batch)))
    assert path.read_bytes().count(b"\n") == 5000
    again = read_jsonl(path)
    assert _same(batch, again)
    assert again.line.tolist() == list(range(1, 5001))
