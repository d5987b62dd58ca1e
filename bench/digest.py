"""A daily digest round at national scale (placeholder, completed below)."""

from __future__ import annotations

from geo_engine.settings import DatabaseSettings, GeoSettings

PROJECTS = 20_000


def digest_database(
    settings: DatabaseSettings, geo: GeoSettings, users: int, seed: int
) -> DatabaseSettings:
    """``<database>_bench_digest``: France, ``users`` fixture users and ``PROJECTS`` projects."""
    from bench.runner import fixture_database

    return fixture_database(
        settings, geo, "_bench_digest", users=users, projects=PROJECTS, seed=seed
    )
