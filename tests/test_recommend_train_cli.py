"""``geo-engine recommend train`` on simulated engagement, then the learned ranker serving:
real subprocesses on a database of its own (four real Marne communes, fixture users and
projects with their seeded engagement)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from geo_engine import db
from geo_engine.settings import DatabaseSettings, GeoSettings
from geo_engine.territories import geodata
from geo_engine.territories.load import load
from tests import minidata
from tests.cli import run_cli

pytestmark = [pytest.mark.geodata, pytest.mark.slow]

MARNE = ["51454", "51573", "51058", "51108"]  # Reims, Tinqueux, Bezannes, Châlons


@pytest.fixture(scope="module")
def marne(
    make_database: Callable[..., DatabaseSettings],
    geodata_dir: Path,
    geo_settings: GeoSettings,
    tmp_path_factory: pytest.TempPathFactory,
) -> DatabaseSettings:
    root = minidata.cut(geodata_dir, MARNE).write(tmp_path_factory.mktemp("mini-marne"))
    settings = make_database()
    with db.connect(settings) as conn:
        load(conn, geodata.read(root), geo_settings)
        conn.commit()
    return settings


def test_train_then_serve_the_learned_ranker(marne: DatabaseSettings, tmp_path: Path) -> None:
    env = {
        "GEO_ENGINE_DATABASE_URL": marne.database_url,
        "GEO_ENGINE_RECOMMENDER_MODEL_DIR": str(tmp_path),
    }
    loaded = run_cli(
        "fixtures", "load", "--users", "3000", "--projects", "120", "--seed", "5", env=env
    )
    assert loaded.returncode == 0, loaded.stderr
    trained = run_cli("recommend", "train", "--users", "2000", "--seed", "1", env=env)
    assert trained.returncode == 0, trained.stderr
    report = json.loads(trained.stdout)
    assert (tmp_path / "ranker.skops").is_file() and (tmp_path / "coparticipation.npz").is_file()
    metrics = report["metrics"]
    assert report["examples"] > 0 and metrics["held_out_users"] > 0
    # Learned on the behaviour model's preferences, it ranks held-out users' participations at
    # least as well as the hand weights (behaviour that could fail: a broken label would not).
    assert metrics["roc_auc"] > 0.6
    assert metrics["hit@10_learned"] >= metrics["hit@10_weighted"]

    with db.connect(marne) as conn:
        row = conn.execute(
            "SELECT user_id FROM user_place WHERE commune_code IS NOT NULL ORDER BY user_id LIMIT 1"
        ).fetchone()
    assert row is not None
    served = run_cli(
        "recommend",
        "for-user",
        str(row[0]),
        env={**env, "GEO_ENGINE_RECOMMENDER_SCORER": "learned"},
    )
    assert served.returncode == 0, served.stderr
    assert json.loads(served.stdout), "the learned ranker recommends something"

    # A tampered model is refused at load, with its reason.
    model = tmp_path / "ranker.skops"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    refused = run_cli(
        "recommend",
        "for-user",
        str(row[0]),
        env={**env, "GEO_ENGINE_RECOMMENDER_SCORER": "learned"},
    )
    assert refused.returncode == 2 and "sha256" in refused.stderr
