"""The consumer runtime against a real Redis (of the test's own) and PostgreSQL: FastStream's
gaps on Redis streams and how the runtime covers them (pending entries, claims, NOGROUP,
dead letters)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import psycopg
import pytest
import redis
import redis.asyncio
from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage

from consumers import engagement
from consumers.app import consume
from consumers.runtime import Group
from consumers.settings import StreamSettings
from consumers.worker import Worker
from contracts.events import Event
from geo_engine import db
from geo_engine.settings import DatabaseSettings, RedisSettings
from tests import streams_data
from tests.redisserver import RedisServer, serving


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    yield from serving(tmp_path)


@pytest.fixture(scope="module")
def ground_template(make_database: Callable[..., DatabaseSettings]) -> DatabaseSettings:
    return streams_data.ground(make_database)


@pytest.fixture
def database(
    make_database: Callable[..., DatabaseSettings], ground_template: DatabaseSettings
) -> DatabaseSettings:
    return make_database(template=ground_template)


KEY = "t.engagement"


def _click(user: int = 1, project: int = streams_data.PROJECTS[0]) -> dict[str, bytes]:
    return {
        "event": streams_data.event_json("notification.clicked", user_id=user, project_id=project)
    }


def _read(
    client: redis.Redis, group: str, consumer: str, count: int = 100
) -> tuple[list[bytes], list[dict[bytes, bytes]]]:
    reply = client.xreadgroup(group, consumer, {KEY: ">"}, count=count)
    entries = reply[0][1] if reply else []
    return [i for i, _ in entries], [f for _, f in entries]


def _clicks_recorded(database: DatabaseSettings) -> int:
    return streams_data.count(
        database, "SELECT count(*) FROM engagement_event WHERE kind = 'clicked'"
    )


# --------------------------------------------------------------------------------------------
# FastStream's gaps, shown


def test_nack_and_reject_leave_the_entry_pending_and_unredelivered(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.xgroup_create(KEY, "g", id="0", mkstream=True)
    seen: list[str] = []

    async def scenario() -> None:
        broker = RedisBroker(redis_server.url)

        @broker.subscriber(
            stream=StreamSub(KEY, group="g", consumer="c1", polling_interval=20),
            ack_policy=AckPolicy.MANUAL,
        )
        async def refuse(body: dict[str, str], message: RedisStreamMessage) -> None:
            seen.append(body["n"])
            if body["n"] == "0":
                await message.nack()
            else:
                await message.reject()

        async with broker:
            await broker.start()
            client.xadd(KEY, {"n": "0"})
            client.xadd(KEY, {"n": "1"})
            for _ in range(100):
                if len(seen) == 2:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # time for a redelivery, which does not come

    asyncio.run(scenario())
    assert seen == ["0", "1"]
    assert client.xpending(KEY, "g")["pending"] == 2


def test_a_restarted_consumer_reads_only_new_entries_and_the_claimer_takes_its_pending_ones(
    database: DatabaseSettings, redis_server: RedisServer
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.xgroup_create(KEY, "engagement", id="0", mkstream=True)
    for user in streams_data.USERS[:5]:
        client.xadd(KEY, _click(user))
    # Consumer c1 read five entries and crashed before acknowledging them.
    ids, _ = _read(client, "engagement", "c1")
    assert len(ids) == 5
    client.xadd(KEY, _click(6))
    settings = StreamSettings(stream_prefix="t", claim_idle_ms=800, polling_ms=20)

    async def scenario() -> tuple[int, int]:
        stop = asyncio.Event()
        task = asyncio.create_task(
            consume(
                [engagement.WORKER],
                database=database,
                redis=RedisSettings(redis_url=redis_server.url),
                settings=settings,
                consumer="c1",
                with_relay=False,
                stop=stop,
            )
        )
        await asyncio.sleep(0.5)
        before_claim = _clicks_recorded(database)
        for _ in range(100):
            await asyncio.sleep(0.1)
            if _clicks_recorded(database) == 6:
                break
        after = _clicks_recorded(database)
        stop.set()
        await task
        return before_claim, after

    before_claim, after = asyncio.run(scenario())
    # Restarted as c1, it read the new entry only; its five pending ones waited for the claim.
    assert before_claim == 1
    assert after == 6
    assert client.xpending(KEY, "engagement")["pending"] == 0


def test_after_an_empty_redis_restart_the_group_is_recreated_and_nothing_is_lost(
    database: DatabaseSettings, redis_server: RedisServer
) -> None:
    settings = StreamSettings(
        stream_prefix="t", claim_idle_ms=500, polling_ms=20, reconcile_grace_s=2
    )
    with db.connect(database) as conn:
        streams_data.clicks(conn, 50)
        conn.commit()

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(
            consume(
                [engagement.WORKER],
                database=database,
                redis=RedisSettings(redis_url=redis_server.url),
                settings=settings,
                consumer="c1",
                stop=stop,
            )
        )
        await _until(lambda: _clicks_recorded(database) == 50)
        # Redis dies and comes back empty: streams, groups and pending entries are gone.
        with db.connect(database) as conn:
            streams_data.clicks(conn, 30)
            conn.commit()
        redis_server.restart()
        with db.connect(database) as conn:
            streams_data.clicks(conn, 20)
            conn.commit()
        await _until(lambda: _clicks_recorded(database) == 100, seconds=30)
        stop.set()
        await task

    asyncio.run(scenario())
    client = redis.Redis.from_url(redis_server.url)
    groups = {g["name"] for g in client.xinfo_groups(KEY)}
    assert groups == {b"engagement"}
    assert client.xpending(KEY, "engagement")["pending"] == 0
    # Each click counted once: the engagement counts add up to the events.
    assert streams_data.count(database, "SELECT sum(count) FROM engagement") == 100


def test_a_subscriber_faststream_stopped_on_nogroup_is_started_again(
    database: DatabaseSettings, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The claimer is slow here (claim_idle_ms 60 s), so the subscriber meets NOGROUP first.
    settings = StreamSettings(stream_prefix="t", claim_idle_ms=60_000, polling_ms=20)
    client = redis.Redis.from_url(redis_server.url)
    with db.connect(database) as conn:
        streams_data.clicks(conn, 10)
        conn.commit()

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(
            consume(
                [engagement.WORKER],
                database=database,
                redis=RedisSettings(redis_url=redis_server.url),
                settings=settings,
                consumer="c1",
                stop=stop,
            )
        )
        await _until(lambda: _clicks_recorded(database) == 10)
        client.delete(KEY)  # the stream and its group vanish, as in a flushed Redis
        with db.connect(database) as conn:
            streams_data.clicks(conn, 10)
            conn.commit()
        await _until(lambda: _clicks_recorded(database) == 20)
        stop.set()
        await task

    with caplog.at_level("WARNING", logger="consumers.runtime"):
        asyncio.run(scenario())
    assert "t.engagement: consumer group recreated, reading again" in caplog.text
    assert client.xpending(KEY, "engagement")["pending"] == 0


async def _until(done: Callable[[], bool], seconds: float = 20) -> None:
    for _ in range(int(seconds / 0.1)):
        if done():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not reached in time")


# --------------------------------------------------------------------------------------------
# Poison, retries and dead letters


def _group(
    client: redis.asyncio.Redis,
    database: DatabaseSettings,
    worker: Worker = engagement.WORKER,
    **settings: int,
) -> Group:
    return Group(worker, StreamSettings(stream_prefix="t", **settings), database, client, "c1")


def _dead(client: redis.Redis) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()} for _, fields in client.xrange("t.dead")
    ]


def test_poison_and_malformed_entries_reach_the_dead_letters_and_the_rest_goes_on(
    database: DatabaseSettings, redis_server: RedisServer
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.xgroup_create(KEY, "engagement", id="0", mkstream=True)
    client.xadd(KEY, _click(1))
    client.xadd(KEY, {"other": b"x"})  # no event field
    client.xadd(KEY, {"event": b"{not json"})
    client.xadd(KEY, {"event": streams_data.event_json("notification.clicked", user_id=1)})
    client.xadd(KEY, {"event": streams_data.event_json("project.exploded", project_id=1)})
    client.xadd(KEY, {"event": b"x" * 70_000})
    client.xadd(KEY, _click(2, project=999_999))  # unknown project
    client.xadd(KEY, _click(3))
    ids, entries = _read(client, "engagement", "c1")

    async def scenario() -> None:
        aclient = redis.asyncio.Redis.from_url(redis_server.url)
        group = _group(aclient, database)
        outcome = await group.process(ids, entries)
        group.close()
        await aclient.aclose()
        assert (outcome.handled, outcome.dead, outcome.pending) == (2, 6, 0)

    asyncio.run(scenario())
    reasons = [d["error"] for d in _dead(client)]
    assert reasons[0] == "no 'event' field in the entry"
    assert reasons[1].startswith("not an event of the contracts: ")
    assert "project_id" in reasons[2] and "Field required" in reasons[2]
    assert "project.exploded" in reasons[3] or "does not match any" in reasons[3]
    assert reasons[4] == (
        "oversized event: 70000 bytes, at most 65536 (GEO_ENGINE_MAX_EVENT_BYTES)"
    )
    assert any("NotFound: no project 999999" in r for r in reasons)
    assert all(d["group"] == "engagement" and d["stream"] == KEY for d in _dead(client))
    assert client.xpending(KEY, "engagement")["pending"] == 0
    assert _clicks_recorded(database) == 2


def _failing_for(user: int) -> Worker:
    def handle(conn: psycopg.Connection, events: Sequence[Event]) -> None:
        if any(getattr(e, "user_id", None) == user for e in events):
            raise RuntimeError(f"cannot handle user {user} today")
        engagement.handle(conn, events)

    return Worker("engagement", "engagement", engagement.WORKER.types, handle)


def test_an_event_that_keeps_failing_is_dead_lettered_after_max_deliveries(
    database: DatabaseSettings, redis_server: RedisServer
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.xgroup_create(KEY, "engagement", id="0", mkstream=True)
    for user in (1, 13, 2):
        client.xadd(KEY, _click(user))
    ids, entries = _read(client, "engagement", "c1")

    async def scenario() -> list[int]:
        aclient = redis.asyncio.Redis.from_url(redis_server.url)
        group = _group(aclient, database, _failing_for(13), claim_idle_ms=100, max_deliveries=3)
        first = await group.process(ids, entries)
        assert (first.handled, first.pending) == (2, 1)
        pending = []
        for _ in range(4):
            await asyncio.sleep(0.15)
            await group.claim()
            pending.append(int((await aclient.xpending(KEY, "engagement"))["pending"]))
        group.close()
        await aclient.aclose()
        return pending

    pending = asyncio.run(scenario())
    # Delivered three times in all (one read, two claims), then given up on.
    assert pending == [1, 1, 0, 0]
    (dead,) = _dead(client)
    assert dead["deliveries"] == "3"
    assert dead["error"] == (
        "gave up after 3 deliveries; last error: RuntimeError: cannot handle user 13 today"
    )
    assert json.loads(dead["event"])["user_id"] == 13
    assert _clicks_recorded(database) == 2
    assert client.hlen("t.errors") == 0


def test_an_event_already_consumed_is_acknowledged_without_effect(
    database: DatabaseSettings, redis_server: RedisServer
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.xgroup_create(KEY, "engagement", id="0", mkstream=True)
    entry = _click(4)
    for _ in range(3):  # the relay published it three times (crashes, reconciler)
        client.xadd(KEY, entry)
    first, first_entries = _read(client, "engagement", "c1", count=2)
    second, second_entries = _read(client, "engagement", "c2")

    async def scenario() -> None:
        aclient = redis.asyncio.Redis.from_url(redis_server.url)
        group = _group(aclient, database)
        one = await group.process(first, first_entries)
        two = await group.process(second, second_entries)
        assert (one.handled, one.skipped, two.handled, two.skipped) == (1, 1, 0, 1)
        group.close()
        await aclient.aclose()

    asyncio.run(scenario())
    assert _clicks_recorded(database) == 1
    assert client.xpending(KEY, "engagement")["pending"] == 0
    event_id = uuid.UUID(json.loads(entry["event"])["event_id"])
    assert (
        streams_data.count(
            database, "SELECT count(*) FROM consumed_event WHERE event_id = %s", (event_id,)
        )
        == 1
    )


def test_deliveries_through_crashes_only_get_a_larger_allowance(
    database: DatabaseSettings, redis_server: RedisServer
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.xgroup_create(KEY, "engagement", id="0", mkstream=True)
    survivor = client.xadd(KEY, _click(5))
    crasher = client.xadd(KEY, _click(6))
    _read(client, "engagement", "gone")
    # Consumers kept crashing with them: 7 and 25 deliveries, no error ever recorded.
    for _ in range(6):
        client.xclaim(KEY, "engagement", "gone", 0, [survivor, crasher])
    for _ in range(18):
        client.xclaim(KEY, "engagement", "gone", 0, [crasher])

    async def scenario() -> None:
        aclient = redis.asyncio.Redis.from_url(redis_server.url)
        group = _group(aclient, database, claim_idle_ms=100, max_deliveries=5)
        await asyncio.sleep(0.15)
        _, outcome = await group.claim()
        assert (outcome.handled, outcome.dead) == (1, 1)
        group.close()
        await aclient.aclose()

    asyncio.run(scenario())
    (dead,) = _dead(client)
    assert dead["entry_id"] == crasher.decode()
    assert dead["error"] == "gave up after 25 deliveries; last error: no error recorded"
    assert client.xpending(KEY, "engagement")["pending"] == 0
