"""Engagement events through one consumer process, end to end: stream → FastStream batch
subscriber → parse → ``consumed_event`` + the engagement worker's statement → commit → XACK.

On ``<database>_bench_consumers`` (France, ``USERS`` users and ``PROJECTS`` national projects,
its loop tables emptied first) and on the configured Redis under a stream prefix of its own
(deleted afterwards):

- ``events_per_s``: ``size`` engagement events (half opens, four in ten clicks, one in ten
  participations) added to the stream beforehand, then consumed by one :class:`Runtime`
  (``BATCH`` entries per read); the clock runs from the runtime's start until the last one
  is acknowledged and nothing is pending;
- ``faststream_raw_per_s``: FastStream's own batch subscriber on the same entries, with a
  handler that only acknowledges (one XACK per batch): the ceiling without any work.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import redis
from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisBatchStreamMessage

from consumers import engagement
from consumers.runtime import Runtime
from consumers.settings import StreamSettings
from contracts.catalog import OrganisationRecord, ProjectRecord
from geo_engine import db
from geo_engine.catalog import load as catalog_load
from geo_engine.jsonl import Line
from geo_engine.settings import DatabaseSettings, GeoSettings, RedisSettings

USERS = 10_000
PROJECTS = 100
ORG = 1
BATCH = 2_000


def consumers_database(settings: DatabaseSettings, geo: GeoSettings) -> DatabaseSettings:
    from bench.runner import bench_database

    database = bench_database(settings, geo, "_bench_consumers")
    with db.connect(database) as conn:
        conn.execute(
            "INSERT INTO app_user (id) SELECT generate_series(1, %s) ON CONFLICT DO NOTHING",
            (USERS,),
        )
        catalog_load.store_organisations(
            conn,
            [
                Line(
                    1,
                    OrganisationRecord.model_validate(
                        {"id": ORG, "kind": "association", "name": "Banc d'essai"}
                    ),
                )
            ],
            "bench",
        )
        projects = [
            ProjectRecord.model_validate(
                {
                    "id": p,
                    "organisation_id": ORG,
                    "space": "territoires",
                    "tool": "consultation",
                    "title": f"Projet {p}",
                    "visibility": "public",
                    "scope": {"kind": "national"},
                }
            )
            for p in range(1, PROJECTS + 1)
        ]
        catalog_load.store_projects(conn, [Line(i, p) for i, p in enumerate(projects, 1)], "bench")
        conn.execute(
            "TRUNCATE consumed_event, engagement_event, engagement, recommendation_feedback, outbox"
        )
        conn.commit()
    return database


def _entries(size: int, seed: int) -> list[dict[str, bytes]]:
    at = datetime.now(UTC).isoformat()
    entries = []
    for i in range(size):
        user = (i * 7 + seed) % USERS + 1
        project = (i * 13 + seed) % PROJECTS + 1
        body: dict[str, Any] = {"event_id": str(uuid.uuid4()), "version": 1, "occurred_at": at}
        if i % 10 < 5:
            body |= {"type": "notification.opened", "user_id": user, "notification": f"n{i}"}
        elif i % 10 < 9:
            body |= {"type": "notification.clicked", "user_id": user, "project_id": project}
        else:
            body |= {"type": "project.participated", "user_id": user, "project_id": project}
        entries.append({"event": json.dumps(body).encode()})
    return entries


def _fill(client: redis.Redis, key: str, entries: list[dict[str, bytes]]) -> None:
    for start in range(0, len(entries), 10_000):
        pipe = client.pipeline(transaction=False)
        for fields in entries[start : start + 10_000]:
            pipe.xadd(key, fields)  # type: ignore[arg-type]
        pipe.execute()


async def _until_settled(client: redis.Redis, key: str, group: str, size: int) -> float:
    started = time.perf_counter()
    while True:
        info = {g["name"]: g for g in client.xinfo_groups(key)}.get(group.encode())
        if info is not None and info["pending"] == 0 and info.get("entries-read") == size:
            return time.perf_counter() - started
        await asyncio.sleep(0.01)


async def _runtime_rate(
    database: DatabaseSettings, url: str, settings: StreamSettings, size: int
) -> float:
    runtime = Runtime(
        [engagement.WORKER],
        database=database,
        redis_url=url,
        settings=settings,
        consumer="bench",
    )
    client = redis.Redis.from_url(url)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    elapsed = await _until_settled(
        client, f"{settings.stream_prefix}.engagement", "engagement", size
    )
    stop.set()
    await task
    return size / elapsed


async def _raw_rate(url: str, key: str, size: int) -> float:
    broker = RedisBroker(url, logger=logging.getLogger(__name__))
    client = redis.Redis.from_url(url)
    client.xgroup_create(key, "raw", id="0")

    @broker.subscriber(
        stream=StreamSub(
            key, group="raw", consumer="c", batch=True, max_records=BATCH, polling_interval=5
        ),
        ack_policy=AckPolicy.MANUAL,
    )
    async def only_ack(message: RedisBatchStreamMessage) -> None:
        await message.ack()

    async with broker:
        await broker.start()
        elapsed = await _until_settled(client, key, "raw", size)
    return size / elapsed


def run_consumers(
    settings: DatabaseSettings, geo: GeoSettings, size: int, seed: int
) -> dict[str, Any]:
    database = consumers_database(settings, geo)
    url = RedisSettings().redis_url
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    stream = StreamSettings(stream_prefix=prefix, batch_size=BATCH, polling_ms=5)
    key = f"{prefix}.engagement"
    client = redis.Redis.from_url(url)
    try:
        _fill(client, key, _entries(size, seed))
        rate = asyncio.run(_runtime_rate(database, url, stream, size))
        raw = asyncio.run(_raw_rate(url, key, size))
        with db.connect(database) as conn:
            row = conn.execute("SELECT count(*) FROM engagement_event").fetchone()
        recorded = int(row[0]) if row else 0
    finally:
        client.delete(key, f"{prefix}.dead", f"{prefix}.errors")
    return {
        "events": size,
        "recorded": recorded,
        "events_per_s": round(rate),
        "faststream_raw_per_s": round(raw),
        "batch": BATCH,
    }
