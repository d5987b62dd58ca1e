"""The outbox relay and its reconciler: PostgreSQL's outbox onto the loop's streams (Redis
streams, or JetStream's with ``GEO_ENGINE_BROKER=nats``: consumers/jetstream.py), at least once.

PostgreSQL is the record. :func:`publish` takes the oldest unpublished outbox rows (locked,
``SKIP LOCKED``, so relays may run side by side), adds each to its stream in one pipeline,
and marks them published in the same transaction, committed only after Redis accepted them:
a crash in between publishes them again, which consumers, idempotent by event id, absorb.

:class:`Reconciler` publishes again what Redis lost: events a consumer group has not recorded
in ``consumed_event`` a grace period after publication (a trimmed or lost entry), and, at
once, everything not consumed after Redis came back empty (its epoch key had vanished).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
import redis

from consumers.jetstream import JetStreamSink
from consumers.settings import StreamSettings
from consumers.streams import STREAMS, trim
from consumers.worker import Worker, stream_of
from geo_engine import db
from geo_engine.db import load_sql
from geo_engine.settings import DatabaseSettings

log = logging.getLogger(__name__)

_PICK = load_sql("consumers", "relay_pick.sql")
_LOST = load_sql("consumers", "relay_lost.sql")
_MARK = "UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY(%s::uuid[])"
# How far back the reconciler looks. A consumer group down longer than this is not caught up
# by it: the events it missed are still in the outbox (UPDATE outbox SET published_at = NULL
# for them, and the relay publishes them again).
HORIZON = timedelta(days=7)

Row = tuple[Any, ...]
# Where the relay publishes: a Redis client, or JetStream through its sink.
Target = redis.Redis | JetStreamSink


def entry(row: Row) -> dict[str, bytes]:
    """The stream entry of an outbox row ``(id, type, version, payload, created_at, ...)``:
    ``{"event": JSON}``, the payload's ids with the event's own fields (which win)."""
    event_id, type_, version, payload, created_at = row[:5]
    body = {
        **payload,
        "event_id": str(event_id),
        "type": type_,
        "version": version,
        "occurred_at": created_at.isoformat(),
    }
    return {"event": json.dumps(body, separators=(",", ":")).encode()}


def _add(
    client: Target, settings: StreamSettings, rows: Sequence[Row], *, again: bool = False
) -> set[str]:
    if isinstance(client, JetStreamSink):
        return client.add(rows, [entry(row)["event"] for row in rows], again=again)
    keys = set()
    pipe = client.pipeline(transaction=False)
    for row in rows:
        key = f"{settings.stream_prefix}.{stream_of(row[1])}"
        keys.add(key)
        pipe.xadd(key, entry(row))  # type: ignore[arg-type]
    pipe.execute()
    return keys


def trim_streams(client: Target, settings: StreamSettings, keys: Iterable[str]) -> None:
    """Trim each stream in ``keys`` to about ``max_len``, never below a pending entry."""
    if isinstance(client, JetStreamSink):
        client.trim(keys)
        return
    for key in keys:
        trim(client, key, settings.max_len)


def publish(conn: psycopg.Connection, client: Target, settings: StreamSettings) -> int:
    """Publish one batch (``relay_batch`` rows at most) of the oldest unpublished outbox rows;
    return how many. Commits ``conn``'s transaction; raises redis, NATS or psycopg errors
    (nothing is then marked published)."""
    with conn.transaction():
        rows = conn.execute(_PICK, {"limit": settings.relay_batch}).fetchall()
        if not rows:
            return 0
        keys = _add(client, settings, rows)
        conn.execute(_MARK, ([row[0] for row in rows],))
    trim_streams(client, settings, keys)
    return len(rows)


def drain(conn: psycopg.Connection, client: Target, settings: StreamSettings) -> int:
    """Publish until no unpublished row is left; return how many were published."""
    total = 0
    while published := publish(conn, client, settings):
        total += published
    return total


@dataclass
class Reconciler:
    """Publishes again what the consumer groups of ``workers`` did not consume.

    It remembers the epoch it saw in ``<prefix>.epoch`` (a random value set when missing):
    a missing or changed epoch means Redis lost its data, and every event published in the
    last :data:`HORIZON` and not consumed goes out again at once; otherwise only those
    published more than ``reconcile_grace_s`` ago. A cursor per group skips what it
    already found consumed.
    """

    settings: StreamSettings
    workers: Sequence[Worker]
    epoch: str | None = None
    cursors: dict[str, datetime] = field(default_factory=dict)

    def _emptied(self, client: Target) -> bool:
        if isinstance(client, JetStreamSink):
            return client.emptied()
        key = f"{self.settings.stream_prefix}.epoch"
        seen = client.get(key)
        if seen is None:
            # Redis lost its data since the last pass. On a first pass, only when no stream
            # is there either (else this is a first run beside streams that were kept).
            lost = self.epoch is not None or not any(
                client.exists(f"{self.settings.stream_prefix}.{s}") for s in STREAMS
            )
            client.set(key, uuid.uuid4().hex, nx=True)
            seen = client.get(key)
        else:
            lost = self.epoch is not None and seen != self.epoch.encode()
        self.epoch = seen.decode() if isinstance(seen, bytes) else str(seen)
        return lost

    def run(self, conn: psycopg.Connection, client: Target) -> int:
        """One pass over every group; returns how many events were published again."""
        now = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
        conn.commit()
        emptied = self._emptied(client)
        before = now if emptied else now - timedelta(seconds=self.settings.reconcile_grace_s)
        total = 0
        for worker in self.workers:
            after = now - HORIZON if emptied else self.cursors.get(worker.name, now - HORIZON)
            total += self._republish(conn, client, worker, before, after)
        return total

    def _republish(
        self,
        conn: psycopg.Connection,
        client: Target,
        worker: Worker,
        before: datetime,
        after: datetime,
    ) -> int:
        total = 0
        cursor = before
        while True:
            with conn.transaction():
                rows = conn.execute(
                    _LOST,
                    {
                        "consumer": worker.name,
                        "types": sorted(worker.types),
                        "before": before,
                        "after": after,
                        "limit": self.settings.relay_batch,
                    },
                ).fetchall()
                if rows:
                    cursor = min(cursor, rows[0][5])
                    keys = _add(client, self.settings, rows, again=True)
                    # Published again now: looked at once more a grace period later.
                    conn.execute(_MARK, ([row[0] for row in rows],))
            if rows:
                trim_streams(client, self.settings, keys)
            total += len(rows)
            if len(rows) < self.settings.relay_batch:
                break
        self.cursors[worker.name] = cursor
        return total


def _lost(error: Exception) -> bool:
    return isinstance(
        error,
        redis.ConnectionError | redis.TimeoutError | psycopg.OperationalError | TimeoutError,
    )


def run_forever(
    database: DatabaseSettings,
    redis_url: str,
    settings: StreamSettings,
    workers: Sequence[Worker],
    stop: threading.Event,
) -> None:
    """Relay and reconcile until ``stop``: publish while there is something to publish, else
    wait ``polling_ms``; reconcile every half grace period (at least every second). A lost
    database, Redis or NATS is waited for, a second at a time. ``settings.broker`` says where
    to publish (``redis_url`` unused on NATS)."""
    reconciler = Reconciler(settings, workers)
    every = max(settings.reconcile_grace_s / 2, 1.0)
    last = 0.0
    conn: psycopg.Connection | None = None
    client: Target = (
        JetStreamSink(settings, workers)
        if settings.broker == "nats"
        else redis.Redis.from_url(redis_url)
    )
    try:
        while not stop.is_set():
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = db.connect(database)
                published = publish(conn, client, settings)
                if time.monotonic() - last >= every:
                    reconciler.run(conn, client)
                    last = time.monotonic()
            except Exception as error:  # noqa: BLE001  the relay thread must outlive any round
                # A lost service, mostly; anything else is logged and the round tried again.
                log.warning("relay waits: %s", error, exc_info=not _lost(error))
                if conn is not None:
                    conn.close()
                conn = None
                stop.wait(1.0)
                continue
            if not published:
                stop.wait(settings.polling_ms / 1000)
    finally:
        if conn is not None:
            conn.close()
        client.close()
