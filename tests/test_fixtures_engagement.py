"""``fixtures.engagement`` on the real France: seeded; geography first (commune ≫ epci ≫
département ≫ national), interests and popularity raise engagement; participations are a subset
of clicks; the exposed truth (``expected_clicks``) is what the sampler draws from; stored by
COPY without events, and read back by the recommender's reads."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from scipy import stats

from fixtures import engagement as sim
from fixtures.catalog import generate_catalog
from fixtures.population import _interests
from geo_engine import db
from geo_engine import engagement as reads
from geo_engine.catalog import load as catalog_load
from geo_engine.settings import DatabaseSettings

pytestmark = pytest.mark.geodata

PROJECTS = 2_000
USERS = 20_000
FIRST_USER = 8_000_001


@pytest.fixture(scope="module")
def ground(france_db: DatabaseSettings) -> Iterator[psycopg.Connection]:
    """USERS users with interests in communes drawn by population, and a catalogue, rolled back
    at the end of the module."""
    with db.connect(france_db) as conn:
        rows = conn.execute(
            "SELECT code, population FROM commune WHERE geom IS NOT NULL ORDER BY code"
        ).fetchall()
        weights = np.array([r[1] for r in rows], dtype=float)
        rng = np.random.default_rng(0)
        drawn = rng.choice(len(rows), size=USERS, p=weights / weights.sum())
        ids = list(range(FIRST_USER, FIRST_USER + USERS))
        conn.execute(
            """INSERT INTO app_user (id, interests)
               SELECT id, coalesce(string_to_array(nullif(i, ''), ','), '{}')
               FROM unnest(%s::int8[], %s::text[]) AS u(id, i)""",
            (ids, [",".join(t) for t in _interests(rng, USERS)]),
        )
        conn.execute(
            """INSERT INTO user_place (user_id, commune_code)
               SELECT * FROM unnest(%s::int8[], %s::text[])""",
            (ids, [rows[i][0] for i in drawn.tolist()]),
        )
        catalog = generate_catalog(conn, PROJECTS, seed=5)
        catalog_load.store_organisations(conn, catalog.organisations)
        catalog_load.store_members(conn, catalog.members)
        catalog_load.store_projects(conn, catalog.projects)
        yield conn
        conn.rollback()


@pytest.fixture(scope="module")
def generated(ground: psycopg.Connection) -> sim.Engagement:
    return sim.generate_engagement(ground, seed=3)


def _pairs(g: sim.Engagement, participation: bool) -> set[tuple[int, int]]:
    rows = g.participation == participation
    return set(zip(g.user_id[rows].tolist(), g.project_id[rows].tolist(), strict=True))


def test_same_seed_same_engagement(ground: psycopg.Connection, generated: sim.Engagement) -> None:
    again = sim.generate_engagement(ground, seed=3)
    other = sim.generate_engagement(ground, seed=4)
    for name in ("user_id", "project_id", "participation", "count", "first_us", "follow_user"):
        assert np.array_equal(getattr(generated, name), getattr(again, name)), name
    assert _pairs(generated, False) != _pairs(other, False)
    assert generated.clicks > 5_000 and generated.participations > 500


def test_participations_are_clicks_and_times_are_ordered(generated: sim.Engagement) -> None:
    clicks, joined = _pairs(generated, False), _pairs(generated, True)
    assert joined and joined <= clicks
    assert len(clicks) == generated.clicks  # one row per pair and kind
    assert np.all(generated.first_us <= generated.last_us)
    assert np.all(generated.last_us <= sim.REFERENCE_US)
    assert np.all(generated.count >= 1) and generated.count.max() > 1
    # Nobody takes part before a project opens.
    model = generated.model
    at = np.searchsorted(model.project_ids, generated.project_id[generated.participation])
    assert model.opened[at].all()


def _opportunities(model: sim.BehaviourModel) -> tuple[np.ndarray, np.ndarray]:
    """Every concerned (user index, project index) pair."""
    n = len(model.project_ids)
    users_of = [np.flatnonzero(model.user_commune == c) for c in range(len(model.communes))]
    u_parts, p_parts = [], []
    commune, project = model.local_key // n, model.local_key % n
    for c in np.unique(commune):
        these = project[commune == c]
        people = users_of[c]
        u_parts.append(np.repeat(people, len(these)))
        p_parts.append(np.tile(these, len(people)))
    nationals = np.flatnonzero(model.national)
    u_parts.append(np.repeat(np.arange(len(model.user_ids)), len(nationals)))
    p_parts.append(np.tile(nationals, len(model.user_ids)))
    return np.concatenate(u_parts), np.concatenate(p_parts)


def test_geography_first_then_interests_and_popularity(generated: sim.Engagement) -> None:
    model = generated.model
    users, projects = _opportunities(model)
    level = model.levels(users, projects)
    assert (level >= 0).all()
    clicked = ~generated.participation
    key = np.searchsorted(model.user_ids, generated.user_id[clicked]) * len(model.project_ids)
    key += np.searchsorted(model.project_ids, generated.project_id[clicked])
    opportunity_key = users * len(model.project_ids) + projects
    order = np.argsort(key)
    at = np.clip(np.searchsorted(key[order], opportunity_key), 0, len(key) - 1)
    found = key[order][at] == opportunity_key
    got = np.where(found, generated.count[clicked][order][at], 0).astype(float)
    assert got.sum() == generated.count[clicked].sum()  # every click is an opportunity

    def rate(mask: np.ndarray) -> float:
        return float(got[mask].sum() / mask.sum())

    by_level = {
        name: rate(level == sim.LEVELS.index(name))
        for name in ("commune", "epci", "departement", "national")
    }
    assert by_level["commune"] > 3 * by_level["epci"] > 0, by_level
    assert by_level["epci"] > 3 * by_level["departement"] > 0, by_level
    assert by_level["departement"] > 3 * by_level["national"] > 0, by_level

    # Interests: at one level, a declared interest among the project's themes raises clicks.
    national = level == sim.NATIONAL
    declared = (model.declared[users] & model.project_themes[projects]).any(axis=1)
    assert rate(national & declared) > 2 * rate(national & ~declared)

    # Popularity: the project's appeal orders its clicks.
    per_project = np.bincount(
        projects[national], weights=got[national], minlength=len(model.project_ids)
    )
    nat = np.flatnonzero(model.national)
    assert stats.spearmanr(model.appeal[nat], per_project[nat]).statistic > 0.5

    # The exposed truth is what was drawn from: expected and drawn clicks agree.
    expected = model.expected_clicks(model.user_ids[users], model.project_ids[projects])
    assert abs(got.sum() - expected.sum()) < 4 * np.sqrt(expected.sum())
    for name in ("commune", "national"):
        mask = level == sim.LEVELS.index(name)
        assert abs(got[mask].sum() - expected[mask].sum()) < 4 * np.sqrt(expected[mask].sum())
    # A project that does not concern a user has no chance; unknown ids neither.
    assert model.expected_clicks(np.array([1]), model.project_ids[:1]).tolist() == [0.0]


def test_stored_without_events_and_read_back(
    ground: psycopg.Connection, generated: sim.Engagement
) -> None:
    conn = ground
    conn.execute("SAVEPOINT engagement")
    events = conn.execute("SELECT count(*) FROM outbox").fetchone()
    written, follows = sim.store_engagement(conn, generated)
    assert written == len(generated.user_id) and follows == len(generated.follow_user) > 0
    assert conn.execute("SELECT count(*) FROM outbox").fetchone() == events
    # Again: the same rows, replaced, nothing added.
    assert sim.store_engagement(conn, generated) == (written, 0)
    assert conn.execute("SELECT count(*) FROM engagement").fetchone() == (written,)
    orphans = conn.execute(
        """SELECT count(*) FROM engagement AS p WHERE p.kind = 'participation'
           AND NOT EXISTS (SELECT FROM engagement AS c WHERE c.kind = 'click'
                           AND (c.user_id, c.project_id) = (p.user_id, p.project_id))"""
    ).fetchone()
    assert orphans == (0,)
    users, projects, kinds = reads.interactions(conn)
    assert len(users) == written
    assert int((kinds == reads.PARTICIPATION).sum()) == generated.participations
    some = generated.user_id[:50]
    signals = reads.user_signals(conn, some)
    assert set(signals.e_user.tolist()) == set(some.tolist())
    top = generated.project_id[generated.participation]
    counts = reads.project_participants(conn, np.unique(top))
    assert counts.sum() == generated.participations
    conn.execute("ROLLBACK TO SAVEPOINT engagement")
