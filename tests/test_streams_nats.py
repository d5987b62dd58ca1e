"""The loop on a three-node NATS JetStream cluster of the test's own (tests/natscluster.py) and a
real PostgreSQL: the relay's deduplication and trimming, the runtime's dead letters and
redeliveries on JetStream, erasure of messages, and a stream leader killed during a run."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import psycopg
import pytest
from nats.aio.msg import Msg

from consumers import engagement, erasure, relay
from consumers.jetstream import JetGroup, JetStreamSink, connect, ensure, stream_name
from consumers.settings import StreamSettings
from consumers.streams import decode_event
from consumers.worker import Worker
from contracts.events import Event
from geo_engine import db
from geo_engine.settings import DatabaseSettings
from tests import streams_data
from tests.brokers import Broker, serving
from tests.cli import CLI, REPO


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    yield from serving("nats", tmp_path / "nats")


@pytest.fixture(scope="module")
def ground_template(make_database: Callable[..., DatabaseSettings]) -> DatabaseSettings:
    return streams_data.ground(make_database)


@pytest.fixture
def database(
    make_database: Callable[..., DatabaseSettings], ground_template: DatabaseSettings
) -> DatabaseSettings:
    return make_database(template=ground_template)


def _click(user: int = 1, project: int = streams_data.PROJECTS[0]) -> bytes:
    return streams_data.event_json("notification.clicked", user_id=user, project_id=project)


def _clicks_recorded(database: DatabaseSettings) -> int:
    return streams_data.count(
        database, "SELECT count(*) FROM engagement_event WHERE kind = 'clicked'"
    )


def _failing_for(user: int) -> Worker:
    def handle(conn: psycopg.Connection, events: Sequence[Event]) -> None:
        if any(getattr(e, "user_id", None) == user for e in events):
            raise RuntimeError(f"cannot handle user {user} today")
        engagement.handle(conn, events)

    return Worker("engagement", "engagement", engagement.WORKER.types, handle)


async def _deliveries(
    settings: StreamSettings,
    database: DatabaseSettings,
    bodies: Sequence[bytes],
    rounds: int,
    worker: Worker = engagement.WORKER,
) -> list[tuple[int, int, int, int]]:
    """Publish ``bodies`` to the engagement subject, then fetch and process ``rounds`` times
    with a :class:`JetGroup` of ``worker``: each round's (handled, dead, pending, fetched)."""
    client = await connect(settings)
    js = client.jetstream()
    await ensure(js, settings, [worker])
    for body in bodies:
        await js.publish(f"{settings.stream_prefix}.engagement", body)
    group = JetGroup(worker, settings, database, js=js)
    subscription = await js.pull_subscribe(
        f"{settings.stream_prefix}.engagement",
        durable=worker.name,
        stream=stream_name(settings, "engagement"),
    )
    seen = []
    for _ in range(rounds):
        try:
            messages: list[Msg] = await subscription.fetch(
                100, timeout=min(settings.claim_idle_ms / 500, 1.0)
            )
        except TimeoutError:
            messages = []
        outcome = await group.process(messages) if messages else None
        seen.append(
            (outcome.handled, outcome.dead, outcome.pending, len(messages))
            if outcome
            else (0, 0, 0, 0)
        )
    group.close()
    await client.close()
    return seen


def test_poison_and_malformed_messages_reach_the_dead_letters_and_the_rest_goes_on(
    database: DatabaseSettings, broker: Broker
) -> None:
    settings = broker.settings()
    bodies = [
        _click(1),
        b"{not json",
        streams_data.event_json("notification.clicked", user_id=1),
        streams_data.event_json("project.exploded", project_id=1),
        b"x" * 70_000,
        _click(2, project=999_999),  # unknown project
        _click(3),
    ]
    seen = asyncio.run(_deliveries(settings, database, bodies, rounds=1))
    assert seen == [(2, 5, 0, 7)]
    reasons = [d["error"] for d in broker.dead()]
    assert reasons[0].startswith("not an event of the contracts: ")
    assert "project_id" in reasons[1] and "Field required" in reasons[1]
    assert "project.exploded" in reasons[2] or "does not match any" in reasons[2]
    assert reasons[3] == "oversized event: 70000 bytes, at most 65536 (GEO_ENGINE_MAX_EVENT_BYTES)"
    assert "NotFound: no project 999999" in reasons[4]
    assert all(d["group"] == "engagement" and d["stream"] == "p.engagement" for d in broker.dead())
    assert broker.unacknowledged("engagement", "engagement") == 0
    assert _clicks_recorded(database) == 2


def test_an_event_that_keeps_failing_is_redelivered_then_dead_lettered_with_its_error(
    database: DatabaseSettings, broker: Broker
) -> None:
    settings = broker.settings(claim_idle_ms=200, max_deliveries=3)
    bodies = [_click(1), _click(13), _click(2)]
    seen = asyncio.run(_deliveries(settings, database, bodies, 4, _failing_for(13)))
    # Delivered three times in all (redelivered after claim_idle_ms), then given up on.
    assert seen == [(2, 0, 1, 3), (0, 0, 1, 1), (0, 1, 0, 1), (0, 0, 0, 0)]
    (dead,) = broker.dead()
    assert dead["deliveries"] == "3"
    assert dead["error"] == (
        "gave up after 3 deliveries; last error: RuntimeError: cannot handle user 13 today"
    )
    assert json.loads(dead["event"])["user_id"] == 13
    assert _clicks_recorded(database) == 2
    assert broker.unacknowledged("engagement", "engagement") == 0


def test_a_message_published_twice_is_kept_once_and_consumed_once(
    database: DatabaseSettings, broker: Broker
) -> None:
    settings = broker.settings()
    with db.connect(database) as conn:
        streams_data.clicks(conn, 30)
        conn.commit()
        rows = conn.execute(
            "SELECT id, type, version, payload, created_at FROM outbox ORDER BY created_at"
        ).fetchall()
        sink = JetStreamSink(settings, [engagement.WORKER])
        try:
            # A relay that crashed after publishing and before marking them published.
            sink.add(rows, [relay.entry(row)["event"] for row in rows])
            assert relay.drain(conn, sink, settings) == 30
        finally:
            sink.close()

    async def kept() -> int:
        client = await connect(settings)
        info = await client.jetstream().stream_info(stream_name(settings, "engagement"))
        await client.close()
        return int(info.state.messages)

    assert asyncio.run(kept()) == 30
    assert asyncio.run(_deliveries(settings, database, [], rounds=1)) == [(30, 0, 0, 30)]
    assert _clicks_recorded(database) == 30


def test_trimming_never_deletes_an_unacknowledged_message(
    database: DatabaseSettings, broker: Broker
) -> None:
    settings = broker.settings(max_len=1_000)
    with db.connect(database) as conn:
        streams_data.many_clicks(conn, 3_000)
        conn.commit()
        sink = JetStreamSink(settings, [engagement.WORKER])
        try:
            relay.drain(conn, sink, settings)
            # Nothing consumed: all 3,000 kept although max_len is 1,000.
            assert broker.unacknowledged("engagement", "engagement") == 3_000
            asyncio.run(_deliveries(settings, database, [], rounds=20))
            assert broker.unacknowledged("engagement", "engagement") == 1_000
            # The 2,000 acknowledged go; the 1,000 left stay, every one.
            assert sink.trim(["p.engagement"]) == 2_000
        finally:
            sink.close()
    assert broker.unacknowledged("engagement", "engagement") == 1_000
    asyncio.run(_deliveries(settings, database, [], rounds=12))
    assert _clicks_recorded(database) == 3_000


def test_erasure_deletes_the_messages_naming_the_user(
    database: DatabaseSettings, broker: Broker
) -> None:
    settings = broker.settings()
    sink = JetStreamSink(settings, [engagement.WORKER])
    try:
        with db.connect(database) as conn:
            streams_data.clicks(conn, 40)  # users 1-20 in turn: two each
            conn.commit()
            relay.drain(conn, sink, settings)
        worker = erasure.worker(sink, settings)
        with db.connect(database) as conn, conn.transaction():
            worker.handle(conn, [decode_event(_erased(7))])
        assert broker.unacknowledged("engagement", "engagement") == 38
    finally:
        sink.close()


def _erased(user: int) -> bytes:
    return streams_data.event_json("user.erased", user_id=user)


# --------------------------------------------------------------------------------------------
# A real process, and the stream's leader killed


def _start(database: DatabaseSettings, broker: Broker, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **broker.env(),
        "GEO_ENGINE_DATABASE_URL": database.database_url,
        "GEO_ENGINE_STREAM_PREFIX": "p",
        "GEO_ENGINE_CLAIM_IDLE_MS": "2000",
        "GEO_ENGINE_BATCH_SIZE": "200",
        "GEO_ENGINE_RELAY_BATCH": "500",
        "GEO_ENGINE_POLLING_MS": "20",
        "GEO_ENGINE_RECONCILE_GRACE_S": "5",
    }
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603  our own CLI
            [str(CLI), "consume", "--consumer", "leader-test", "--no-clock"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=out,
        )


def _wait(done: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        time.sleep(0.2)


@pytest.mark.slow
def test_the_stream_leader_killed_during_a_run_loses_and_duplicates_nothing(
    database: DatabaseSettings, broker: Broker, tmp_path: Path
) -> None:
    total = 20_000
    with db.connect(database) as conn:
        streams_data.many_clicks(conn, total)
        conn.commit()
    log = tmp_path / "consume.log"
    process = _start(database, broker, log)
    try:
        _wait(lambda: _clicks_recorded(database) > 1_000, 60)
        leader = broker.leader("engagement")
        assert leader is not None
        broker.server.kill(broker.server.node_of(leader))  # SIGKILL, batches in flight
        recorded_at_kill = _clicks_recorded(database)
        _wait(lambda: broker.leader("engagement") not in (None, leader), 30)
        try:
            _wait(lambda: _clicks_recorded(database) == total, 180)
        except AssertionError:
            raise AssertionError(
                f"{_clicks_recorded(database)} of {total} recorded; log {log.read_text()[-3000:]}"
            ) from None
        broker.server.start_node(broker.server.node_of(leader))
        _wait(lambda: broker.unacknowledged("engagement", "engagement") == 0, 60)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
    assert recorded_at_kill < total  # the leader went down in the middle of the run
    assert _clicks_recorded(database) == total
    assert streams_data.count(database, "SELECT sum(count) FROM engagement") == total
    assert streams_data.count(database, "SELECT count(*) FROM consumed_event") == total
    assert (
        streams_data.count(database, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
    )
    assert broker.dead() == []
