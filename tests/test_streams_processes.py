"""Real ``geo-engine consume`` processes on a broker of the test's own, Redis or a three-node
NATS JetStream cluster: N processes in one consumer group share the work with no duplicate
effect, and processes killed with SIGKILL in the middle of their batches, again and again, lose
and duplicate nothing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from consumers import relay
from geo_engine import db
from geo_engine.settings import DatabaseSettings
from tests import streams_data
from tests.brokers import KINDS, Broker, Kind, serving
from tests.cli import CLI, REPO

pytestmark = pytest.mark.slow


@pytest.fixture(params=KINDS)
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    kind: Kind = request.param
    yield from serving(kind, tmp_path / kind)


@pytest.fixture
def database(make_database: Callable[..., DatabaseSettings]) -> DatabaseSettings:
    return streams_data.ground(make_database)


def _start(
    database: DatabaseSettings, broker: Broker, consumer: str, log: Path, *more: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **broker.env(),
        "GEO_ENGINE_DATABASE_URL": database.database_url,
        "GEO_ENGINE_STREAM_PREFIX": "p",
        "GEO_ENGINE_CLAIM_IDLE_MS": "1000",
        "GEO_ENGINE_BATCH_SIZE": "200",
        "GEO_ENGINE_RELAY_BATCH": "500",
        "GEO_ENGINE_POLLING_MS": "20",
        "GEO_ENGINE_RECONCILE_GRACE_S": "5",
    }
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603  our own CLI
            [str(CLI), "consume", "--consumer", consumer, *more],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=out,
        )


def _recorded(database: DatabaseSettings) -> int:
    return streams_data.count(database, "SELECT count(*) FROM engagement_event")


def _wait(done: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        time.sleep(0.2)


def _settled(database: DatabaseSettings, broker: Broker, expected: int) -> None:
    """Exactly ``expected`` clicks, each counted once, nothing pending, nothing dead."""
    _wait(lambda: broker.unacknowledged("engagement", "engagement") == 0, 30)
    assert _recorded(database) == expected
    assert streams_data.count(database, "SELECT sum(count) FROM engagement") == expected
    assert streams_data.count(database, "SELECT count(*) FROM consumed_event") == expected
    assert (
        streams_data.count(database, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
    )
    assert broker.dead() == []


def test_processes_in_one_group_share_the_work_once(
    database: DatabaseSettings, broker: Broker, tmp_path: Path
) -> None:
    log = tmp_path / "consume.log"
    processes = [_start(database, broker, f"p{i}", log, "--no-relay") for i in range(3)]
    try:
        # All three are reading the group before the first event arrives (a start takes
        # half a minute on two cores shared with other runs).
        _wait(lambda: log.read_text().count("consuming as") == 3, 180)
        time.sleep(2)
        with db.connect(database) as conn:
            streams_data.many_clicks(conn, 6_000)
            conn.commit()
            target = broker.target(relay_batch=100)
            relay.drain(conn, target, broker.settings(relay_batch=100))
            target.close()
        _wait(lambda: _recorded(database) == 6_000, 90)
        _settled(database, broker, 6_000)
        if broker.kind == "redis":
            # Each of the three had a share (a consumer appears in the group when it gets one;
            # JetStream keeps no such list: its pull consumer serves whoever fetches).
            client = redis.Redis.from_url(broker.server.url)
            consumers = client.xinfo_consumers("p.engagement", "engagement")
            assert {c["name"] for c in consumers} == {b"p0", b"p1", b"p2"}
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            assert process.wait(timeout=30) == 0, log.read_text()


def test_workers_killed_mid_batch_lose_and_duplicate_nothing(
    database: DatabaseSettings, broker: Broker, tmp_path: Path
) -> None:
    total = 20_000
    with db.connect(database) as conn:
        streams_data.many_clicks(conn, total)
        conn.commit()
    log = tmp_path / "consume.log"
    chance = random.Random(9)  # noqa: S311  not cryptography
    kills = 0
    for round_ in range(20):
        process = _start(database, broker, f"k{round_}", log)
        _wait(lambda r=round_: log.read_text().count("consuming as") == r + 1, 60)
        time.sleep(chance.uniform(0.3, 1.2))  # some batches, then one in flight
        process.kill()  # SIGKILL: no clean-up, batches in flight
        process.wait()
        kills += 1
    mid = _recorded(database)
    assert 0 < mid <= total
    survivor = _start(database, broker, "survivor", log)
    try:
        try:
            _wait(lambda: _recorded(database) == total, 120)
        except AssertionError:
            raise AssertionError(
                f"{_recorded(database)} of {total} recorded; "
                f"unacknowledged {broker.unacknowledged('engagement', 'engagement')}; "
                f"dead {broker.dead()[:3]}; "
                f"log {log.read_text()[-3000:]}"
            ) from None
        _settled(database, broker, total)
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(timeout=30)
    assert kills == 20
