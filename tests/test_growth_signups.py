"""Generated users' sign-ups spread over the weeks before the load (fixtures/signups.py), so
the growth report's cohorts have weeks to show; the same seed gives the same dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from fixtures.signups import spread_sign_ups

pytestmark = pytest.mark.geodata

BEFORE = datetime(2026, 11, 30, 12, tzinfo=UTC)
OLD = datetime(2025, 1, 1, tzinfo=UTC)


def test_sign_ups_spread_over_the_weeks(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO app_user (id, created_at) VALUES (9200000, %s)", (OLD,))
    started = conn.execute("SELECT now()").fetchone()
    assert started is not None
    conn.execute("INSERT INTO app_user (id) SELECT generate_series(9200001, 9202000)")
    assert spread_sign_ups(conn, started[0], BEFORE, seed=42, weeks=26) == 2000
    rows = conn.execute(
        "SELECT id, created_at FROM app_user WHERE id BETWEEN 9200000 AND 9202000 ORDER BY id"
    ).fetchall()
    assert rows[0][1] == OLD  # a user from before the load keeps their sign-up
    dates = [r[1] for r in rows[1:]]
    assert all(BEFORE - timedelta(weeks=26) <= d < BEFORE for d in dates)
    weeks = {(BEFORE - d) // timedelta(weeks=1) for d in dates}
    assert weeks == set(range(26))  # every week has sign-ups (about 77 each)
    again = conn.execute(
        "SELECT created_at FROM app_user WHERE id BETWEEN 9200001 AND 9202000 ORDER BY id"
    ).fetchall()
    conn.execute("UPDATE app_user SET created_at = now() WHERE id > 9200000")
    spread_sign_ups(conn, started[0], BEFORE, seed=42, weeks=26)
    same = conn.execute(
        "SELECT created_at FROM app_user WHERE id BETWEEN 9200001 AND 9202000 ORDER BY id"
    ).fetchall()
    assert same == again
    conn.execute("UPDATE app_user SET created_at = now() WHERE id > 9200000")
    spread_sign_ups(conn, started[0], BEFORE, seed=7, weeks=26)
    other = conn.execute(
        "SELECT created_at FROM app_user WHERE id BETWEEN 9200001 AND 9202000 ORDER BY id"
    ).fetchall()
    assert other != again
