"""``geo-engine consume`` and ``geo-engine outbox relay`` as a person runs them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from contracts.errors import POLICIES, InvalidInput
from geo_engine import db
from geo_engine.settings import DatabaseSettings
from tests import streams_data
from tests.cli import run_cli
from tests.redisserver import RedisServer, serving


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    yield from serving(tmp_path)


def test_an_unknown_worker_is_refused_by_name() -> None:
    done = run_cli("consume", "--workers", "engagement,fanout-typo", env={})
    assert done.returncode == POLICIES[InvalidInput].exit_code
    assert "unknown worker fanout-typo; choose among: engagement" in done.stderr


def test_outbox_relay_once_publishes_and_says_how_many(
    make_database: Callable[..., DatabaseSettings], redis_server: RedisServer
) -> None:
    database = streams_data.ground(make_database)
    with db.connect(database) as conn:
        streams_data.many_clicks(conn, 42)
        conn.commit()
    env = {
        "GEO_ENGINE_DATABASE_URL": database.database_url,
        "GEO_ENGINE_REDIS_URL": redis_server.url,
        "GEO_ENGINE_STREAM_PREFIX": "cli",
    }
    done = run_cli("outbox", "relay", "--once", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"published": 42, "republished": 0}
    assert redis.Redis.from_url(redis_server.url).xlen("cli.engagement") == 42
    again = run_cli("outbox", "relay", "--once", env=env)
    assert json.loads(again.stdout) == {"published": 0, "republished": 0}
