"""The consumers bench (bench/consumers.py) on NATS JetStream beside Redis, in one run: the same
engagement events through one consumer process on each broker.

On ``<database>_bench_consumers`` (as ``bench consumers``; its loop tables emptied before each
broker's turn), the configured Redis and the NATS cluster of ``GEO_ENGINE_NATS_URL``
(``GEO_ENGINE_BROKER=nats make services``), under stream names of its own, deleted afterwards:

- ``nats_events_per_s``: ``size`` events published to an R3 stream beforehand (not timed), then
  consumed by one :class:`~consumers.jetstream.NatsRuntime` (``BATCH`` messages per pull) until
  the durable consumer has nothing pending or unacknowledged;
- ``nats_raw_per_s``: FastStream's pull batch subscriber on the same messages, with a handler
  that only acknowledges each one: the ceiling without any work;
- ``redis_events_per_s``: ``bench consumers``'s ``events_per_s`` on the same events.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import redis
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from nats.js import JetStreamContext, api

from bench.consumers import BATCH, _entries, _fill, _runtime_rate, consumers_database
from consumers import engagement
from consumers.jetstream import NatsRuntime, connect, ensure, servers, stream_name
from consumers.settings import StreamSettings
from consumers.streams import STREAMS, stream_key
from geo_engine import db
from geo_engine.settings import DatabaseSettings, GeoSettings, RedisSettings

PUBLISH_CHUNK = 1_000


async def _settled(js: JetStreamContext, stream: str, durable: str, size: int) -> None:
    while True:
        info = await js.consumer_info(stream, durable)
        if (
            info.num_pending == 0
            and info.num_ack_pending == 0
            and info.delivered.stream_seq >= size
        ):
            return
        await asyncio.sleep(0.01)


async def _nats_rates(
    database: DatabaseSettings, settings: StreamSettings, bodies: list[bytes]
) -> tuple[float, float]:
    client = await connect(settings)
    js = client.jetstream()
    name = stream_name(settings, "engagement")
    subject = stream_key(settings, "engagement")
    try:
        await ensure(js, settings, [engagement.WORKER])
        for start in range(0, len(bodies), PUBLISH_CHUNK):
            await asyncio.gather(
                *(js.publish(subject, b) for b in bodies[start : start + PUBLISH_CHUNK])
            )
        await js.add_consumer(
            name,
            config=api.ConsumerConfig(
                durable_name="raw", ack_policy=api.AckPolicy.EXPLICIT, max_ack_pending=BATCH * 8
            ),
        )

        runtime = NatsRuntime(
            [engagement.WORKER], database=database, settings=settings, consumer="bench"
        )
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(runtime.run(stop))
        await _settled(js, name, engagement.WORKER.name, len(bodies))
        rate = len(bodies) / (time.perf_counter() - started)
        stop.set()
        await task

        broker = NatsBroker(servers(settings), logger=logging.getLogger(__name__))

        @broker.subscriber(
            subject,
            stream=JStream(name, declare=False),
            durable="raw",
            pull_sub=PullSub(batch_size=BATCH, timeout=0.25, batch=True),
            ack_policy=AckPolicy.MANUAL,
        )
        async def only_ack(message: NatsMessage) -> None:
            await message.ack()  # a batch message acknowledges each of its messages

        started = time.perf_counter()
        async with broker:
            await broker.start()
            await _settled(js, name, "raw", len(bodies))
        raw = len(bodies) / (time.perf_counter() - started)
    finally:
        for stream in (*STREAMS, "dead"):
            try:
                await js.delete_stream(stream_name(settings, stream))
            except Exception:  # noqa: BLE001, S112  not created: nothing to delete
                continue
        await client.close()
    return rate, raw


def _recorded_then_emptied(database: DatabaseSettings) -> int:
    with db.connect(database) as conn:
        row = conn.execute("SELECT count(*) FROM engagement_event").fetchone()
        conn.execute(
            "TRUNCATE consumed_event, engagement_event, engagement, recommendation_feedback"
        )
        conn.commit()
    return int(row[0]) if row else 0


def run_nats(settings: DatabaseSettings, geo: GeoSettings, size: int, seed: int) -> dict[str, Any]:
    """The figures of the module's docstring, with the events each broker's run recorded."""
    database = consumers_database(settings, geo)
    entries = _entries(size, seed)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    nats_settings = StreamSettings(
        stream_prefix=prefix, broker="nats", batch_size=BATCH, polling_ms=5
    )
    nats_rate, nats_raw = asyncio.run(
        _nats_rates(database, nats_settings, [e["event"] for e in entries])
    )
    nats_recorded = _recorded_then_emptied(database)

    url = RedisSettings().redis_url
    redis_settings = StreamSettings(stream_prefix=prefix, batch_size=BATCH, polling_ms=5)
    key = f"{prefix}.engagement"
    client = redis.Redis.from_url(url)
    try:
        _fill(client, key, entries)
        redis_rate = asyncio.run(_runtime_rate(database, url, redis_settings, size))
    finally:
        client.delete(key, f"{prefix}.dead", f"{prefix}.errors")
    redis_recorded = _recorded_then_emptied(database)
    return {
        "events": size,
        "nats_recorded": nats_recorded,
        "redis_recorded": redis_recorded,
        "nats_events_per_s": round(nats_rate),
        "nats_raw_per_s": round(nats_raw),
        "redis_events_per_s": round(redis_rate),
        "nats_replicas": nats_settings.nats_replicas,
        "batch": BATCH,
    }
