"""The consumers across a PostgreSQL crash and restart (a server of the test's own), on Redis
and on a NATS JetStream cluster: what was in flight stays pending, nothing is dead-lettered for
it, and once the server is back every event is counted exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers import engagement
from consumers.app import consume
from geo_engine import db
from geo_engine.settings import DatabaseSettings, RedisSettings
from tests import streams_data
from tests.brokers import KINDS, Broker, Kind, serving
from tests.pgcluster import Cluster, throwaway_cluster

pytestmark = pytest.mark.slow


@pytest.fixture(params=KINDS)
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    kind: Kind = request.param
    yield from serving(kind, tmp_path / kind)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster() as running:
        db.upgrade(running.settings())
        yield running


def _recorded(database: DatabaseSettings) -> int:
    try:
        return streams_data.count(database, "SELECT count(*) FROM engagement_event")
    except Exception:  # noqa: BLE001  the server is down: nothing to count yet
        return -1


async def _until(check: object, seconds: float) -> None:
    assert callable(check)
    for _ in range(int(seconds / 0.1)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not reached in time")


def test_a_postgresql_crash_loses_and_duplicates_nothing(cluster: Cluster, broker: Broker) -> None:
    database = streams_data.ground(lambda: cluster.settings())
    with db.connect(database) as conn:
        streams_data.many_clicks(conn, 20_000)
        conn.commit()
    settings = broker.settings(claim_idle_ms=500, polling_ms=20, batch_size=200, relay_batch=500)
    redis_url = broker.server.url if broker.kind == "redis" else RedisSettings().redis_url

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(
            consume(
                [engagement.WORKER],
                database=database,
                redis=RedisSettings(redis_url=redis_url),
                settings=settings,
                consumer="c1",
                stop=stop,
            )
        )
        await _until(lambda: _recorded(database) > 0, 60)
        await asyncio.to_thread(cluster.stop, "immediate")  # a crash, batches in flight
        await asyncio.sleep(2)
        await asyncio.to_thread(cluster.start)
        with db.connect(database) as conn:
            streams_data.many_clicks(conn, 1_000)
            conn.commit()
        await _until(lambda: _recorded(database) == 21_000, 120)
        stop.set()
        await task

    asyncio.run(scenario())
    assert broker.unacknowledged("engagement", "engagement") == 0
    assert broker.dead() == []
    assert streams_data.count(database, "SELECT sum(count) FROM engagement") == 21_000
    assert streams_data.count(database, "SELECT count(*) FROM consumed_event") == 21_000
