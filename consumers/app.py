"""The consumers' process (``geo-engine consume``): the outbox relay and reconciler, and the
workers of :func:`workers`, on one FastStream broker: ``RedisBroker`` (consumers/runtime.py)
or, with ``GEO_ENGINE_BROKER=nats``, ``NatsBroker`` on JetStream (consumers/jetstream.py), the
same workers on either; and its AsyncAPI document.

Every process runs under a unique consumer name (``--consumer``, default host and pid): N
processes in one consumer group share its entries, each entry delivered to one of them, and
a crashed one's pending entries are claimed by the others after ``claim_idle_ms``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

import redis
from faststream.specification import AsyncAPI
from pydantic import BaseModel, Field

from consumers import engagement, erasure, fanout, relay, tiles
from consumers.jetstream import JetStreamSink, NatsRuntime
from consumers.runtime import Runtime
from consumers.settings import LoopSettings, StreamSettings
from consumers.streams import STREAMS, stream_key
from consumers.worker import Worker
from contracts.errors import InvalidInput
from contracts.events import AnyEvent
from geo_engine.settings import DatabaseSettings, RedisSettings, TileCacheSettings


def workers(
    redis_url: str,
    streams: StreamSettings,
    loop: LoopSettings,
    tile_cache: TileCacheSettings | None = None,
) -> tuple[Worker, ...]:
    """Every consumer group the engine runs (``--workers`` chooses among them): the engagement
    that comes back, the fan-out of projects and meetings into inboxes, erasure (which
    scrubs the streams too: at ``redis_url``, or JetStream's when ``streams.broker`` is nats) and
    the public tiles' invalidation (published at ``redis_url`` whatever the broker)."""
    client = redis.Redis.from_url(redis_url)
    scrubbed = JetStreamSink(streams) if streams.broker == "nats" else client
    return (
        engagement.WORKER,
        fanout.worker(loop),
        erasure.worker(scrubbed, streams),
        tiles.worker(client, tile_cache or TileCacheSettings()),
    )


def default_consumer() -> str:
    """``<host>-<pid>``: unique per process, the default consumer name."""
    return f"{socket.gethostname()}-{os.getpid()}"


def choose(available: Sequence[Worker], names: Sequence[str] | None) -> list[Worker]:
    """The workers named among ``available`` (all when ``names`` is empty); InvalidInput
    naming an unknown one."""
    known = {worker.name: worker for worker in available}
    if not names:
        return list(available)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InvalidInput(f"unknown worker {', '.join(unknown)}; choose among: {', '.join(known)}")
    return [known[name] for name in names]


async def consume(
    workers: Sequence[Worker],
    *,
    database: DatabaseSettings,
    redis: RedisSettings,
    settings: StreamSettings,
    consumer: str,
    with_relay: bool = True,
    clock: Callable[[threading.Event], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the relay and ``clock`` (the loop's scheduled passes, consumers/scheduler.py), each
    in a thread, and the workers until SIGINT or SIGTERM (or ``stop``)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    background_stop = threading.Event()
    background: list[threading.Thread] = []
    if with_relay:
        background.append(
            threading.Thread(
                target=relay.run_forever,
                args=(database, redis.redis_url, settings, workers, background_stop),
                name="relay",
                daemon=True,
            )
        )
    if clock is not None:
        background.append(
            threading.Thread(target=clock, args=(background_stop,), name="clock", daemon=True)
        )
    for thread in background:
        thread.start()
    runtime: Runtime | NatsRuntime = (
        NatsRuntime(workers, database=database, settings=settings, consumer=consumer)
        if settings.broker == "nats"
        else Runtime(
            workers,
            database=database,
            redis_url=redis.redis_url,
            settings=settings,
            consumer=consumer,
        )
    )
    try:
        await runtime.run(stop)
    finally:
        background_stop.set()
        for thread in background:
            await asyncio.to_thread(thread.join)


class DeadLetterEntry(BaseModel):
    """An entry of ``<prefix>.dead`` (consumers/deadletter.py)."""

    stream: str = Field(description="the stream the entry came from")
    entry_id: str = Field(description="its id in that stream")
    group: str = Field(description="the consumer group that gave up")
    deliveries: int = Field(description="how many times it was delivered")
    error: str = Field(description="why, in one line")
    event: str = Field(description="the entry's event field, cut to 4,096 bytes")


def asyncapi(settings: StreamSettings | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document FastStream generates for the consumers' broker: the relay's
    streams (publishers, with the events' schema), the dead letters, and each consumer
    group (subscribers)."""
    settings = settings or StreamSettings(stream_prefix="events")
    documentation = "redis://localhost:6379/0"  # never connected to
    runtime = Runtime(
        workers(documentation, settings, LoopSettings()),
        database=DatabaseSettings(database_url="postgresql://documentation/only"),
        redis_url=documentation,
        settings=settings,
        consumer="documentation",
    )
    for stream in STREAMS:
        key = stream_key(settings, stream)
        runtime.broker.publisher(
            stream=key,
            schema=AnyEvent,
            title=f"relay:{key}",
            description=f"The outbox relay adds each {stream} event (field 'event', JSON).",
        )
    dead = stream_key(settings, "dead")
    runtime.broker.publisher(
        stream=dead,
        schema=DeadLetterEntry,
        title=f"runtime:{dead}",
        description="What a consumer group gave up on, with the reason.",
    )
    document = AsyncAPI(
        runtime.broker,
        title="geo-engine retention loop",
        version="1",
        description="Outbox events on Redis streams and the consumer groups that read them.",
    )
    return dict(json.loads(document.to_specification().to_json()))
