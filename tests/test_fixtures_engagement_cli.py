"""``geo-engine fixtures load`` simulates engagement by default (``--no-engagement`` not), and
``geo-engine fixtures engagement`` runs it again on what is there: real subprocesses on a
database of their own (four real Marne communes), bulk rows and no outbox event."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from geo_engine import db
from geo_engine.settings import DatabaseSettings, GeoSettings
from geo_engine.territories import geodata
from geo_engine.territories.load import load
from tests import minidata
from tests.cli import Run, run_cli

pytestmark = [pytest.mark.geodata, pytest.mark.slow]

MARNE = ["51454", "51573", "51058", "51108"]  # Reims, Tinqueux, Bezannes, Châlons


@pytest.fixture(scope="module")
def mini(
    make_database: Callable[..., DatabaseSettings],
    geodata_dir: Path,
    geo_settings: GeoSettings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[], DatabaseSettings]:
    root = minidata.cut(geodata_dir, MARNE).write(tmp_path_factory.mktemp("mini-marne"))
    template = make_database()
    with db.connect(template) as conn:
        load(conn, geodata.read(root), geo_settings)
        conn.commit()
    return lambda: make_database(template=template)


def _cli(settings: DatabaseSettings, *args: str) -> Run:
    return run_cli(*args, env={"GEO_ENGINE_DATABASE_URL": settings.database_url})


def _one(settings: DatabaseSettings, query: str) -> Any:
    with db.connect(settings) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else row


COUNTS = """SELECT (SELECT count(*) FROM engagement WHERE kind = 'click'),
                   (SELECT count(*) FROM engagement WHERE kind = 'participation'),
                   (SELECT count(*) FROM follow)"""


def test_fixtures_load_simulates_engagement_without_events(
    mini: Callable[[], DatabaseSettings],
) -> None:
    settings = mini()
    args = ("fixtures", "load", "--users", "2000", "--projects", "60", "--seed", "3")
    loaded = _cli(settings, *args)
    assert loaded.returncode == 0, loaded.stderr
    clicks, participations, follows = _one(settings, COUNTS)
    assert clicks > participations > 0 and follows > 0, (clicks, participations, follows)
    assert "participations" in loaded.stderr
    assert (
        _one(
            settings,
            """SELECT count(*) FROM outbox
               WHERE type IN ('user.engagement_recorded', 'organisation.followed')""",
        )
        == 0
    )
    # Without --announce the generated network is history: nothing for the loop to announce.
    assert _one(settings, "SELECT count(*) FROM outbox") == 0
    assert "events of the generated history left out" in loaded.stderr
    # Again on what is there: the same seed gives the same rows, replaced.
    again = _cli(settings, "fixtures", "engagement", "--seed", "3")
    assert again.returncode == 0, again.stderr
    assert _one(settings, COUNTS) == (clicks, participations, follows)

    bare = mini()
    loaded = _cli(bare, *args, "--no-engagement")
    assert loaded.returncode == 0, loaded.stderr
    assert _one(bare, COUNTS) == (0, 0, 0)
    # Nothing to engage with is a clear error of the engagement command.
    empty = mini()
    refused = _cli(empty, "fixtures", "engagement")
    assert refused.returncode == 1
    assert "no users placed in a commune" in refused.stderr
