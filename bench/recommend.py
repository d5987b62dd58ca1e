"""Recommendations at the scale of the daily digests, and one request at the API.

On ``<database>_bench_recommend`` (France, ``size`` fixture users with their seeded follows and
engagement, ``PROJECTS`` fixture projects, committed once per size through
`geo-engine fixtures load`, then vacuumed):

- ``load_s``: reading every user's facts and their communes' candidates from the ground
  (:func:`recommender.batch.load_batch`: a few set-wise statements);
- ``users_per_s``: batch scoring of every user with top-10, MMR, the exposure floor, each
  feature's contribution and the reasons' features (:func:`recommender.batch.rank_batch`),
  the best of ``RUNS`` runs; ``candidates_per_user`` is the mean size of their candidate sets;
- ``api_p50_ms``, ``api_p99_ms``: ``GET /v1/users/{id}/recommendations?k=10`` for
  ``API_REQUESTS`` random users, one after the other, through the FastAPI application in this
  process (its pool, its auth, its JSON), after ``API_WARMUP`` requests.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.auth import make_token
from geo_engine import db
from geo_engine.settings import ApiSettings, DatabaseSettings, GeoSettings
from recommender.batch import load_batch, rank_batch
from recommender.ranking import RankingConfig
from recommender.scorers import load_weighted

PROJECTS = 20_000
RUNS = 2
API_REQUESTS = 300
API_WARMUP = 20
SECRET = "bench-only-secret-of-at-least-32-characters"  # noqa: S105 (a throwaway database)


def recommend_database(
    settings: DatabaseSettings, geo: GeoSettings, users: int, seed: int
) -> DatabaseSettings:
    from bench.runner import fixture_database

    return fixture_database(
        settings, geo, "_bench_recommend", users=users, projects=PROJECTS, seed=seed
    )


def run_recommend(
    settings: DatabaseSettings, geo: GeoSettings, size: int, seed: int
) -> dict[str, Any]:
    database = recommend_database(settings, geo, size, seed)
    with db.connect(database) as conn:
        ids = [
            r[0]
            for r in conn.execute("SELECT user_id FROM user_place WHERE commune_code IS NOT NULL")
        ]
        started = time.perf_counter()
        batch = load_batch(conn, ids)
        load_s = time.perf_counter() - started
        conn.rollback()
    scorer, config = load_weighted(), RankingConfig(k=10)
    best = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        scored = sum(len(r.users) for r in rank_batch(batch, scorer, config))
        best = min(best, time.perf_counter() - started)
    users = len(batch.users)
    candidates = sum(len(g.items) * len(g.users) for g in batch.groups) / max(users, 1)

    api = ApiSettings(jwt_secret=SecretStr(SECRET), pool_min_size=1, pool_max_size=2)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(ids, API_WARMUP + API_REQUESTS)
    timings = []
    with TestClient(create_app(database, api)) as client:
        for i, user in enumerate(chosen):
            headers = {"Authorization": f"Bearer {make_token(int(user), SECRET)}"}
            started = time.perf_counter()
            answer = client.get(f"/v1/users/{user}/recommendations?k=10", headers=headers)
            elapsed = time.perf_counter() - started
            answer.raise_for_status()
            if i >= API_WARMUP:
                timings.append(elapsed * 1000)
    return {
        "users": users,
        "scored": scored,
        "candidates_per_user": round(candidates, 1),
        "load_s": round(load_s, 2),
        "score_s": round(best, 3),
        "users_per_s": round(users / best),
        "api_p50_ms": round(float(np.percentile(timings, 50)), 2),
        "api_p99_ms": round(float(np.percentile(timings, 99)), 2),
    }
