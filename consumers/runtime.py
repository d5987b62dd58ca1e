"""The runtime of the loop's consumers on FastStream and Redis streams.

Each :class:`~consumers.worker.Worker` is one consumer group read by a FastStream batch
subscriber (``XREADGROUP … COUNT batch_size``). For each batch, :meth:`Group.process`:

1. parses the entries; one without an ``event`` field, larger than ``max_event_bytes`` or
   that is no event of the contracts (bad JSON, wrong schema, unknown type) is dead-lettered
   with its reason, unread by the worker;
2. in one transaction, records the fresh event ids in ``consumed_event``
   (``ON CONFLICT DO NOTHING RETURNING``: an id already consumed by this group is skipped),
   calls ``worker.handle`` with the fresh events, and commits;
3. acknowledges the batch with one ``XACK``.

When the batch transaction fails, its events are tried one at a time, so one poison event
does not hold back the others; each failure follows its kind's ``consumer`` column in
``contracts.errors.POLICIES``: ``dead-letter`` now, ``drop`` (acknowledged), or ``retry``
(left pending; the error is kept in ``<prefix>.errors`` for the dead letter to come).
FastStream's ``nack()`` and ``reject()`` do nothing on streams, so "retry" means "left in
the pending entries list".

The **claimer** (:meth:`Group.claim`) is what re-delivers: a restarted consumer reads only
new entries (``>``), never its own pending ones, so every ``claim_idle_ms`` it takes over
entries idle that long (``XAUTOCLAIM``, its own or a crashed consumer's), and those
delivered more than ``max_deliveries`` times go to ``<prefix>.dead`` with their last error.

After an empty Redis restart the group is gone and FastStream stops the subscriber on
``NOGROUP``: the **supervisor** (:meth:`Runtime.supervise`) recreates the group from id 0 and
starts the subscriber again; the reconciler (consumers/relay.py) refills the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis
import redis.asyncio
from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisBatchStreamMessage as BatchMessage
from faststream.redis.message import RedisBatchStreamMessage
from pydantic import ValidationError

from consumers.deadletter import DeadLetter, bury
from consumers.settings import StreamSettings
from consumers.streams import FIELD, decode_event, ensure_group_async, stream_key
from consumers.worker import Worker
from contracts.errors import EngineError, policy_of
from contracts.events import Event
from geo_engine import db
from geo_engine.pools import connection_lost
from geo_engine.settings import DatabaseSettings

log = logging.getLogger(__name__)

# Deliveries an entry may have, in multiples of max_deliveries, when none of them failed with
# an error (the consumers holding it crashed): a poison entry that kills its consumer still
# reaches the dead letters.
CRASH_ALLOWANCE = 4

_RECORD = (
    "INSERT INTO consumed_event (consumer, event_id) "
    "SELECT %s, unnest(%s::uuid[]) ON CONFLICT DO NOTHING RETURNING event_id"
)


@dataclass
class Outcome:
    """What one call of :meth:`Group.process` did, in entries."""

    handled: int = 0  # fresh events the worker handled (committed)
    skipped: int = 0  # already consumed, repeated in the batch, or of a type not handled
    dead: int = 0  # moved to the dead-letter stream
    dropped: int = 0  # refused with a "drop" policy, acknowledged
    pending: int = 0  # left pending, to be claimed again


def _reason(error: BaseException) -> str:
    if isinstance(error, EngineError):
        return f"{type(error).__name__}: {error.detail}"
    if isinstance(error, ValidationError):
        first = error.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "event"
        return f"not an event of the contracts: {where}: {first['msg']}"
    return f"{type(error).__name__}: {error}"


@dataclass
class Verdict:
    """What a batch comes to, before the broker is told: the entries ``done`` (to acknowledge),
    the ``dead`` letters, and the ``errors`` (entry id → reason) of those left pending after
    a failure, with the counts in ``outcome``."""

    outcome: Outcome = field(default_factory=Outcome)
    done: list[bytes] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    errors: dict[bytes, str] = field(default_factory=dict)


@dataclass
class Batches:
    """The broker-free half of a consumer group: a batch of entries (ids and fields) to a
    :class:`Verdict`, through one transaction recording and handling the fresh events. The
    transports (:class:`Group` on Redis, ``consumers.jetstream.JetGroup`` on NATS) read the
    entries and carry the verdict out."""

    worker: Worker
    settings: StreamSettings
    database: DatabaseSettings
    _conn: psycopg.Connection | None = field(default=None, init=False, repr=False)
    # The subscriber and the claimer share the connection: one batch at a time.
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    @property
    def key(self) -> str:
        return stream_key(self.settings, self.worker.stream)

    @property
    def dead_key(self) -> str:
        return stream_key(self.settings, "dead")

    # -- the database side, in a thread ----------------------------------------------------

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = db.connect(self.database)
        return self._conn

    def _reachable(self) -> bool:
        try:
            self._connection().execute("SELECT 1")
            self._connection().rollback()
        except psycopg.OperationalError as error:
            log.warning("%s: claimer waits for the database: %s", self.worker.name, error)
            self.close()
            return False
        return True

    def close(self) -> None:
        """Close this group's database connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _commit(self, events: Sequence[Event]) -> int:
        """Record and handle ``events`` in one transaction; return how many were fresh."""
        conn = self._connection()
        try:
            with conn.transaction():
                rows = conn.execute(
                    _RECORD, (self.worker.name, [e.event_id for e in events])
                ).fetchall()
                fresh_ids = {row[0] for row in rows}
                fresh = [e for e in events if e.event_id in fresh_ids]
                if fresh:
                    self.worker.handle(conn, fresh)
        except BaseException:
            if conn.broken:
                self.close()
            raise
        return len(fresh)

    # -- one batch ---------------------------------------------------------------------------

    async def decide(
        self,
        ids: Sequence[bytes],
        entries: Sequence[Mapping[bytes, bytes]],
        deliveries: Mapping[bytes, int] | None = None,
    ) -> Verdict:
        """Parse, record and handle the entries ``ids`` (with their fields ``entries``), and
        say what becomes of each: done (handled, skipped or dropped), dead (with its reason)
        or left pending (``errors`` holds why, when it failed). ``deliveries`` gives each
        entry's delivery count for its dead letter. The caller holds ``_lock``."""
        verdict = Verdict()
        outcome, done, dead = verdict.outcome, verdict.done, verdict.dead
        events: list[Event] = []
        entry_of: dict[Any, bytes] = {}
        counts = deliveries or {}

        def letter(entry_id: bytes, raw: bytes, error: str) -> DeadLetter:
            return DeadLetter(
                self.key, self.worker.name, entry_id, raw, error, counts.get(entry_id, 1)
            )

        for entry_id, fields in zip(ids, entries, strict=True):
            raw = fields.get(FIELD)
            if raw is None:
                dead.append(letter(entry_id, b"", "no 'event' field in the entry"))
                continue
            if len(raw) > self.settings.max_event_bytes:
                dead.append(
                    letter(
                        entry_id,
                        raw,
                        f"oversized event: {len(raw)} bytes, at most "
                        f"{self.settings.max_event_bytes} (GEO_ENGINE_MAX_EVENT_BYTES)",
                    )
                )
                continue
            try:
                event = decode_event(raw)
            except ValidationError as error:
                dead.append(letter(entry_id, raw, _reason(error)))
                continue
            if event.type not in self.worker.types or event.event_id in entry_of:
                outcome.skipped += 1
                done.append(entry_id)
                continue
            entry_of[event.event_id] = entry_id
            events.append(event)

        if events:
            try:
                fresh = await asyncio.to_thread(self._commit, events)
            except Exception as error:
                if connection_lost(error):
                    # Everything stays pending, to be delivered again later.
                    log.warning("%s: database unreachable: %s", self.worker.name, error)
                    outcome.pending += len(events)
                else:
                    await self._one_by_one(events, entry_of, verdict, letter)
            else:
                outcome.handled += fresh
                outcome.skipped += len(events) - fresh
                done.extend(entry_of[e.event_id] for e in events)
        outcome.dead += len(dead)
        return verdict

    async def _one_by_one(
        self,
        events: Sequence[Event],
        entry_of: Mapping[Any, bytes],
        verdict: Verdict,
        letter: Any,
    ) -> None:
        outcome = verdict.outcome
        for position, event in enumerate(events):
            entry_id = entry_of[event.event_id]
            try:
                fresh = await asyncio.to_thread(self._commit, [event])
            except Exception as error:
                if connection_lost(error):
                    # Not the events' fault: they all stay pending, with no error against them.
                    log.warning("%s: database unreachable: %s", self.worker.name, error)
                    outcome.pending += len(events) - position
                    break
                kind = policy_of(error).consumer if isinstance(error, EngineError) else "retry"
                reason = _reason(error)
                if kind == "dead-letter":
                    raw = event.model_dump_json().encode()
                    verdict.dead.append(letter(entry_id, raw, reason))
                elif kind == "drop":
                    outcome.dropped += 1
                    verdict.done.append(entry_id)
                else:
                    outcome.pending += 1
                    verdict.errors[entry_id] = reason
            else:
                outcome.handled += fresh
                outcome.skipped += 1 - fresh
                verdict.done.append(entry_id)


@dataclass
class Group(Batches):
    """One worker's consumer group on Redis, as consumer ``consumer`` of this process."""

    client: redis.asyncio.Redis
    consumer: str

    @property
    def errors_key(self) -> str:
        return stream_key(self.settings, "errors")

    async def process(
        self,
        ids: Sequence[bytes],
        entries: Sequence[Mapping[bytes, bytes]],
        deliveries: Mapping[bytes, int] | None = None,
    ) -> Outcome:
        """Handle the entries ``ids`` (with their fields ``entries``) of this group's stream,
        then acknowledge every one that is done: handled, skipped, dropped or dead-lettered.
        ``deliveries`` (claimed entries) gives each one's delivery count for its dead letter.
        One call at a time per group."""
        async with self._lock:
            return await self._process(ids, entries, deliveries)

    async def _process(
        self,
        ids: Sequence[bytes],
        entries: Sequence[Mapping[bytes, bytes]],
        deliveries: Mapping[bytes, int] | None,
    ) -> Outcome:
        verdict = await self.decide(ids, entries, deliveries)
        if verdict.errors:
            await self.client.hset(
                self.errors_key,
                mapping={self._error_field(i): e for i, e in verdict.errors.items()},
            )
        if verdict.dead:
            await bury(self.client, self.dead_key, verdict.dead)
        if verdict.done:
            await self.client.xack(self.key, self.worker.name, *verdict.done)
        finished = verdict.done + [d.entry_id for d in verdict.dead]
        if deliveries and finished:
            # Claimed entries that are finished no longer need their last error.
            await self.client.hdel(self.errors_key, *(self._error_field(i) for i in finished))
        return verdict.outcome

    def _error_field(self, entry_id: bytes) -> str:
        return f"{self.worker.name}/{entry_id.decode()}"

    # -- the claimer -------------------------------------------------------------------------

    async def claim(self, start: bytes = b"0-0") -> tuple[bytes, Outcome]:
        """Claim (``XAUTOCLAIM``) up to ``batch_size`` entries idle ``claim_idle_ms`` or more,
        from ``start``; dead-letter those delivered more than ``max_deliveries`` times, and
        process the others. Returns the id to start from next time (``0-0``: went round)."""
        try:
            reply = await self.client.xautoclaim(
                self.key,
                self.worker.name,
                self.consumer,
                min_idle_time=self.settings.claim_idle_ms,
                start_id=start,
                count=self.settings.batch_size,
            )
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            await ensure_group_async(self.client, self.key, self.worker.name)
            return b"0-0", Outcome()
        next_start, claimed = reply[0], [(i, f) for i, f in reply[1] if f is not None]
        outcome = Outcome()
        if not claimed:
            return next_start, outcome
        counts = await self._deliveries([i for i, _ in claimed])
        errors = await self.client.hmget(
            self.errors_key, [self._error_field(i) for i, _ in claimed]
        )
        exhausted: list[DeadLetter] = []
        retried: list[tuple[bytes, Mapping[bytes, bytes]]] = []
        for (entry_id, fields), last_error in zip(claimed, errors, strict=True):
            times = counts.get(entry_id, 1)
            # An entry whose deliveries failed is given up on after max_deliveries; one that
            # only went through crashes (no error recorded: a consumer killed mid-batch) gets
            # CRASH_ALLOWANCE times as many, for a crash is seldom the event's fault.
            limit = self.settings.max_deliveries * (1 if last_error else CRASH_ALLOWANCE)
            if times > limit:
                reason = (
                    last_error.decode() if isinstance(last_error, bytes) else "no error recorded"
                )
                exhausted.append(
                    DeadLetter(
                        self.key,
                        self.worker.name,
                        entry_id,
                        fields.get(FIELD, b""),
                        f"gave up after {times - 1} deliveries; last error: {reason}",
                        times - 1,
                    )
                )
            else:
                retried.append((entry_id, fields))
        if exhausted:
            await bury(self.client, self.dead_key, exhausted)
            await self.client.hdel(
                self.errors_key, *(self._error_field(d.entry_id) for d in exhausted)
            )
            outcome.dead += len(exhausted)
        if retried:
            more = await self.process([i for i, _ in retried], [f for _, f in retried], counts)
            for name in ("handled", "skipped", "dead", "dropped", "pending"):
                setattr(outcome, name, getattr(outcome, name) + getattr(more, name))
        return next_start, outcome

    async def _deliveries(self, ids: Sequence[bytes]) -> dict[bytes, int]:
        wanted = set(ids)
        found: dict[bytes, int] = {}
        rows = await self.client.xpending_range(
            self.key,
            self.worker.name,
            min=min(ids),
            max=max(ids),
            count=len(ids) * 4,
            consumername=self.consumer,
        )
        for row in rows:
            if row["message_id"] in wanted:
                found[row["message_id"]] = int(row["times_delivered"])
        return found

    async def claim_forever(self, stop: asyncio.Event) -> None:
        """Claim stale entries until ``stop``: a round through the pending entries list,
        then a pause of a quarter of ``claim_idle_ms`` (at least 50 ms)."""
        start = b"0-0"
        pause = max(self.settings.claim_idle_ms / 4_000, 0.05)
        while not stop.is_set():
            try:
                # No claim while the database is unreachable: deliveries would be spent on
                # entries that cannot be handled, bringing them closer to the dead letters.
                async with self._lock:
                    reachable = await asyncio.to_thread(self._reachable)
                if reachable:
                    start, _ = await self.claim(start)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
                log.warning("%s: claimer waits for Redis: %s", self.worker.name, error)
                start = b"0-0"
            if start == b"0-0":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)


async def _raw_parser(message: Mapping[str, Any]) -> RedisBatchStreamMessage:
    # The runtime reads entries itself (Group.process): no decoding of the batch by FastStream.
    return RedisBatchStreamMessage(
        raw_message=message,
        body=b"",
        consumer=None,  # type: ignore[arg-type]
        group=None,
        message_id=message["message_ids"][0].decode() if message["message_ids"] else None,
    )


async def _no_decoder(message: Any) -> None:
    return None


class Runtime:
    """The consumer groups of ``workers`` on one FastStream ``RedisBroker``, as consumer
    ``consumer`` (unique per process: N processes with N names share each group's work)."""

    def __init__(
        self,
        workers: Sequence[Worker],
        *,
        database: DatabaseSettings,
        redis_url: str,
        settings: StreamSettings,
        consumer: str,
    ) -> None:
        self.settings = settings
        self.broker = RedisBroker(redis_url, logger=log)
        self.client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(redis_url)
        self.groups = [
            Group(worker, settings, database, self.client, consumer) for worker in workers
        ]
        self.subscribers = [self._subscribe(group) for group in self.groups]

    def _subscribe(self, group: Group) -> Any:
        async def on_batch(message: BatchMessage) -> None:
            raw = message.raw_message
            await group.process(raw["message_ids"], raw["data"])

        subscriber = self.broker.subscriber(
            stream=StreamSub(
                group.key,
                group=group.worker.name,
                consumer=group.consumer,
                batch=True,
                max_records=self.settings.batch_size,
                polling_interval=self.settings.polling_ms,
            ),
            ack_policy=AckPolicy.MANUAL,
            parser=_raw_parser,
            decoder=_no_decoder,
            title=f"{group.worker.name}:consume",
            description=(
                f"Consumer group {group.worker.name!r} on {group.key}: "
                + ", ".join(sorted(group.worker.types))
            ),
        )
        subscriber(on_batch)
        return subscriber

    async def start(self) -> None:
        """Create the groups (from id 0, and the streams, if missing) and start reading."""
        for group in self.groups:
            await ensure_group_async(self.client, group.key, group.worker.name)
        await self.broker.start()

    async def supervise(self, stop: asyncio.Event, every_s: float = 0.5) -> None:
        """Until ``stop``: restart any subscriber FastStream stopped (``NOGROUP`` after an
        empty Redis restart), after recreating its group from id 0."""
        while not stop.is_set():
            for group, subscriber in zip(self.groups, self.subscribers, strict=True):
                if subscriber.running:
                    continue
                try:
                    await ensure_group_async(self.client, group.key, group.worker.name)
                    await subscriber.start()
                    log.warning("%s: consumer group recreated, reading again", group.key)
                except Exception as error:  # noqa: BLE001  the supervisor must outlive it
                    log.warning("%s: cannot read again yet: %s", group.key, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Read, claim and supervise until ``stop`` is set, then stop cleanly."""
        await self.start()
        tasks = [asyncio.create_task(self.supervise(stop))]
        tasks += [asyncio.create_task(group.claim_forever(stop)) for group in self.groups]
        try:
            await stop.wait()
        finally:
            await self.broker.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for group in self.groups:
                group.close()
            await self.client.aclose()
