"""`geo-engine loop tick --at ISO`: the scheduled passes once, committed; a second run for the
same time adds nothing; a time without its offset is refused with a clear message."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from geo_engine import db
from geo_engine.settings import DatabaseSettings
from tests import api_data as data
from tests.cli import run_cli

pytestmark = pytest.mark.geodata

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BAYONNE = "64102"


def test_loop_tick_runs_the_passes_once(clone_france: Callable[[], DatabaseSettings]) -> None:
    database = clone_france()
    data.write(
        database,
        users=[1, 2],
        organisations=[data.organisation(7001)],
        projects=[
            data.project(
                101,
                7001,
                data.territories(("commune", BAYONNE)),
                tool="votation",
                closes_at=(AT + timedelta(days=2)).isoformat(),
            )
        ],
    )
    with db.connect(database) as conn:
        conn.execute(
            "INSERT INTO user_place (user_id, commune_code) VALUES (1, %s), (2, %s)",
            (BAYONNE, BAYONNE),
        )
        conn.execute(
            """INSERT INTO meeting (id, project_id, kind, title, place, starts_at, ends_at)
               VALUES (1, 101, 'balade_urbaine', 'Balade', 'Place de la mairie', %s, %s)""",
            (AT + timedelta(hours=20), AT + timedelta(hours=22)),
        )
        conn.commit()
    env = {"GEO_ENGINE_DATABASE_URL": database.database_url}
    first = run_cli("loop", "tick", "--at", AT.isoformat(), env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"closing_soon": 2, "meeting_reminders": 2}
    again = run_cli("loop", "tick", "--at", AT.isoformat(), env=env)
    assert json.loads(again.stdout) == {"closing_soon": 0, "meeting_reminders": 0}
    with db.connect(database) as conn:
        rows = conn.execute(
            "SELECT kind, priority, lead_days, count(*) FROM inbox GROUP BY 1, 2, 3 ORDER BY 1"
        ).fetchall()
    assert rows == [("closing_soon", 2, 0, 2), ("meeting_reminder", 1, 1, 2)]
    naive = run_cli("loop", "tick", "--at", "2026-03-02T09:00:00", env=env)
    assert naive.returncode == 2
    assert "give a time zone" in naive.stderr
