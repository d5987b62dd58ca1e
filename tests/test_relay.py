"""The outbox relay and its reconciler, against a real PostgreSQL and a Redis of the test's own:
each row published once per round, at least once across failures, never trimmed while
pending, and republished after Redis came back empty."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from consumers import engagement, relay
from consumers.settings import StreamSettings
from consumers.streams import decode_event, trim
from geo_engine import db
from geo_engine.outbox import read_events
from geo_engine.settings import DatabaseSettings
from tests import streams_data
from tests.redisserver import RedisServer, serving


@pytest.fixture(scope="module")
def ground_template(make_database: Callable[..., DatabaseSettings]) -> DatabaseSettings:
    return streams_data.ground(make_database)


@pytest.fixture
def database(
    make_database: Callable[..., DatabaseSettings], ground_template: DatabaseSettings
) -> DatabaseSettings:
    return make_database(template=ground_template)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    yield from serving(tmp_path)


SETTINGS = StreamSettings(stream_prefix="t", relay_batch=7, max_len=1_000)


def test_the_relay_publishes_each_outbox_row_once_as_its_event(
    database: DatabaseSettings, redis_server: RedisServer
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    with db.connect(database) as conn:
        streams_data.clicks(conn, 20)
        streams_data.append_follow(conn)
        conn.commit()
        expected = {e.event_id: e for e in read_events(conn)}
        assert relay.drain(conn, client, SETTINGS) == 21
        # Everything is marked published; a second round has nothing to do.
        assert relay.drain(conn, client, SETTINGS) == 0
        unpublished = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        assert unpublished.fetchone() == (0,)
    engagement = client.xrange("t.engagement")
    user = client.xrange("t.user")
    assert len(engagement) == 20 and len(user) == 1
    seen = [decode_event(fields[b"event"]) for _, fields in engagement + user]
    assert {e.event_id for e in seen} == set(expected)
    for event in seen:
        assert event == expected[event.event_id]
    # Oldest first, within a stream.
    times = [e.occurred_at for e in seen[:20]]
    assert times == sorted(times)


def test_nothing_is_marked_published_when_redis_refuses(
    database: DatabaseSettings, redis_server: RedisServer
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    with db.connect(database) as conn:
        streams_data.clicks(conn, 5)
        conn.commit()
        redis_server.stop()
        with pytest.raises(redis.ConnectionError):
            relay.publish(conn, client, SETTINGS)
        unpublished = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        assert unpublished.fetchone() == (5,)
        redis_server.start()
        assert relay.drain(conn, client, SETTINGS) == 5
    assert client.xlen("t.engagement") == 5


def test_trimming_never_deletes_a_pending_or_unread_entry(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    key = "t.engagement"
    client.xgroup_create(key, "g", id="0", mkstream=True)
    client.xgroup_create(key, "slow", id="0", mkstream=True)
    ids = [client.xadd(key, {"n": i}) for i in range(5_000)]
    # Group g read 4,000 and acknowledged 3,000; group "slow" read 2,500, acknowledged 2,000.
    client.xreadgroup("g", "c1", {key: ">"}, count=4_000)
    client.xack(key, "g", *ids[:3_000])
    client.xreadgroup("slow", "c2", {key: ">"}, count=2_500)
    client.xack(key, "slow", *ids[:2_000])
    deleted = trim(client, key, max_len=1_000)
    assert deleted > 0
    remaining = {entry_id for entry_id, _ in client.xrange(key)}
    # Every entry some group still needs is there: slow's pending from ids[2000] on.
    assert set(ids[2_000:]) <= remaining
    assert client.xpending(key, "slow")["pending"] == 500
    assert len(client.xrange(key, min=ids[2_000], max=ids[2_499])) == 500
    # MAXLEN alone would have deleted pending entries: what the trim policy prevents.
    client.xtrim(key, maxlen=1_000, approximate=False)
    assert len(client.xrange(key, min=ids[2_000], max=ids[2_499])) == 0


def test_without_a_group_the_stream_is_trimmed_to_about_max_len(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    for i in range(3_000):
        client.xadd("t.user", {"n": i})
    trim(client, "t.user", max_len=1_000)
    assert 1_000 <= client.xlen("t.user") < 1_500


def test_the_reconciler_republishes_what_an_empty_redis_lost(
    database: DatabaseSettings, redis_server: RedisServer
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    settings = StreamSettings(stream_prefix="t", relay_batch=4, reconcile_grace_s=3_600)
    reconciler = relay.Reconciler(settings, [engagement.WORKER])
    with db.connect(database) as conn:
        streams_data.clicks(conn, 10)
        conn.commit()
        relay.drain(conn, client, settings)
        reconciler.run(conn, client)  # first run: learns the epoch
        # Three events were consumed by the engagement group before Redis was lost.
        consumed = [decode_event(f[b"event"]).event_id for _, f in client.xrange("t.engagement")]
        assert len(set(consumed)) == 10  # the first pass found the streams: nothing again
        conn.execute(
            "INSERT INTO consumed_event (consumer, event_id)"
            " SELECT 'engagement', unnest(%s::uuid[])",
            (consumed[:3],),
        )
        conn.commit()
        # Within the grace period, with Redis intact, nothing is published again.
        assert reconciler.run(conn, client) == 0
        redis_server.restart()
        assert client.xlen("t.engagement") == 0
        # Redis came back empty: the seven not consumed go out again at once.
        assert reconciler.run(conn, client) == 7
        again = {decode_event(f[b"event"]).event_id for _, f in client.xrange("t.engagement")}
        assert again == set(consumed[3:])
        # And not a second time within the grace period.
        assert reconciler.run(conn, client) == 0


def test_after_the_grace_period_what_no_group_consumed_is_published_again(
    database: DatabaseSettings, redis_server: RedisServer
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    settings = StreamSettings(stream_prefix="t", reconcile_grace_s=1)
    reconciler = relay.Reconciler(settings, [engagement.WORKER])
    with db.connect(database) as conn:
        streams_data.clicks(conn, 3)
        streams_data.append_follow(conn)  # the engagement group does not consume user events
        conn.commit()
        relay.drain(conn, client, settings)
        reconciler.run(conn, client)
        time.sleep(1.2)
        assert reconciler.run(conn, client) == 3
    entries = [json.loads(f[b"event"]) for _, f in client.xrange("t.engagement")]
    assert len(entries) == 6 and len({e["event_id"] for e in entries}) == 3


def test_relays_side_by_side_publish_each_row_once(
    database: DatabaseSettings, redis_server: RedisServer
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    with db.connect(database) as first, db.connect(database) as second:
        streams_data.clicks(first, 30)
        first.commit()
        # The first relay holds its batch (locked) while the second takes the next one.
        with first.transaction():
            held = first.execute(relay._PICK, {"limit": 10}).fetchall()
            assert relay.publish(second, client, StreamSettings(stream_prefix="t")) == 20
            ids = [row[0] for row in held]
            first.execute(relay._MARK, (ids,))
        row = second.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
        assert row == (0,) and isinstance(second, psycopg.Connection)
