"""The loop's streams on a NATS JetStream cluster (``GEO_ENGINE_BROKER=nats``), with the same
guarantees as on Redis.

Each loop stream is a JetStream stream named ``<prefix>-<stream>`` (``-`` for the prefix's
dots) holding the subject ``<prefix>.<stream>``, one message per event: its JSON, as in the
Redis entry's ``event`` field, with the event id as ``Nats-Msg-Id`` (JetStream drops a repeat
within ``DUPLICATE_WINDOW_S``). Streams keep ``nats_replicas`` copies (R3 on the three nodes
of scripts/nats_cluster.sh): a node lost, the others elect a leader and go on.

Each worker is a durable pull consumer named as the worker (its consumer group), filtered on
its stream's subject, explicit acks, ``ack_wait`` = ``claim_idle_ms``: a message not
acknowledged in time (its consumer was killed) is delivered again, to any process of the
group. :class:`JetGroup` runs the same :class:`~consumers.runtime.Batches` as on Redis and
acknowledges after the commit; a message whose handling failed (a ``retry`` kind) is
redelivered after ``claim_idle_ms`` (``nak``) and dead-lettered with its error on its
``max_deliveries``-th delivery; one only ever delivered to consumers that crashed, after
``CRASH_ALLOWANCE`` times as many. Dead letters go to the stream ``<prefix>-dead`` (subject
``<prefix>.dead``), each a JSON object with the Redis dead letter's fields.

Streams use limits retention, trimmed by the relay (:meth:`JetStreamSink.trim`) to about
``max_len`` messages but never above the lowest acknowledgement floor of their consumers: as on
Redis, a message a consumer group has not acknowledged is never deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from consumers.deadletter import DEAD_MAX_LEN, DeadLetter
from consumers.runtime import CRASH_ALLOWANCE, Batches, Outcome
from consumers.settings import StreamSettings
from consumers.streams import FIELD, STREAMS, stream_key
from consumers.worker import Worker, stream_of
from geo_engine.settings import DatabaseSettings

log = logging.getLogger(__name__)

DUPLICATE_WINDOW_S = 120.0
PUBLISH_TIMEOUT_S = 10.0
PUBLISH_CHUNK = 500  # publishes in flight at once
# A shorter fetch lets nats-py raise asyncio's TimeoutError, which FastStream 0.7.8's pull
# loop does not catch (its supervisor restarts the loop); a batch waits this long at most to fill.
FETCH_MIN_S = 0.25

T = TypeVar("T")
Row = tuple[Any, ...]


def stream_name(settings: StreamSettings, stream: str) -> str:
    """``<prefix>-<stream>``: the JetStream stream holding ``<prefix>.<stream>``."""
    return f"{settings.stream_prefix}-{stream}".replace(".", "-")


def servers(settings: StreamSettings) -> list[str]:
    """The NATS servers of ``nats_url``."""
    return [url.strip() for url in settings.nats_url.split(",") if url.strip()]


async def connect(settings: StreamSettings) -> Client:
    """A NATS connection to the cluster, reconnecting for ever to any of its nodes."""
    return await nats.connect(
        servers=servers(settings),
        name="geo-engine",
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
        connect_timeout=2,
    )


def consumer_config(worker: Worker, settings: StreamSettings) -> api.ConsumerConfig:
    """The durable pull consumer of ``worker`` (its consumer group)."""
    return api.ConsumerConfig(
        name=worker.name,
        durable_name=worker.name,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=settings.claim_idle_ms / 1000,
        max_deliver=-1,  # the runtime dead-letters, with the reason (JetStream would drop)
        filter_subject=stream_key(settings, worker.stream),
        max_ack_pending=max(settings.batch_size * 8, 1_000),
    )


async def ensure(js: JetStreamContext, settings: StreamSettings, workers: Iterable[Worker]) -> bool:
    """Create the loop's streams, the dead letters' and the durable consumers of ``workers``
    when missing; True when a loop stream was created now (it had none, or lost it)."""
    created = False
    for stream in (*STREAMS, "dead"):
        name = stream_name(settings, stream)
        try:
            await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            await js.add_stream(
                api.StreamConfig(
                    name=name,
                    subjects=[stream_key(settings, stream)],
                    retention=api.RetentionPolicy.LIMITS,
                    max_msgs=DEAD_MAX_LEN if stream == "dead" else -1,
                    storage=api.StorageType.FILE,
                    num_replicas=settings.nats_replicas,
                    duplicate_window=DUPLICATE_WINDOW_S,
                )
            )
            created = created or stream != "dead"
    for worker in workers:
        name = stream_name(settings, worker.stream)
        try:
            await js.consumer_info(name, worker.name)
        except nats.js.errors.NotFoundError:
            await js.add_consumer(name, config=consumer_config(worker, settings))
    return created


def letter_message(letter: DeadLetter) -> bytes:
    """A dead letter as the JSON object kept on ``<prefix>.dead``."""
    fields = letter.fields()
    return json.dumps(
        {k: v.decode(errors="replace") if isinstance(v, bytes) else v for k, v in fields.items()},
        separators=(",", ":"),
    ).encode()


async def bury(
    js: JetStreamContext, settings: StreamSettings, letters: Sequence[DeadLetter]
) -> None:
    """Publish ``letters`` to the dead letters, each acknowledged by JetStream; the id of
    each (group, stream, sequence) makes a repeat after a crash one letter."""
    subject = stream_key(settings, "dead")
    await asyncio.gather(
        *(
            js.publish(
                subject,
                letter_message(letter),
                timeout=PUBLISH_TIMEOUT_S,
                headers={
                    "Nats-Msg-Id": f"{letter.group}/{letter.stream}/{letter.entry_id.decode()}"
                },
            )
            for letter in letters
        )
    )


@dataclass
class JetGroup(Batches):
    """One worker's durable consumer on JetStream; ``js`` publishes its dead letters."""

    js: JetStreamContext | None = field(default=None, repr=False)

    async def process(self, messages: Sequence[Msg]) -> Outcome:
        """Handle a batch of messages of this group's consumer, then acknowledge each one
        done or dead-lettered, and ``nak`` (redeliver after ``claim_idle_ms``) each one that
        failed; while the database is unreachable, wait for it. All along, JetStream is told
        every third of ``ack_wait`` that the batch is in progress, so that a long batch is not
        delivered again meanwhile. A message delivered twice in one batch is handled once.
        One call at a time per group."""
        latest: dict[int, Msg] = {}
        for msg in messages:
            seq = msg.metadata.sequence.stream
            seen = latest.get(seq)
            if seen is None or (msg.metadata.num_delivered or 0) >= (
                seen.metadata.num_delivered or 0
            ):
                latest[seq] = msg
        batch = list(latest.values())
        async with self._lock:
            beating = asyncio.create_task(self._beat(batch))
            try:
                return await self._process(batch)
            finally:
                beating.cancel()

    async def _beat(self, messages: Sequence[Msg]) -> None:
        while True:
            # Those already acknowledged refuse (MsgAlreadyAckdError) without a word to the
            # server; a lost connection only means they may be delivered again.
            await asyncio.gather(
                *(m.in_progress() for m in messages if not m._ackd), return_exceptions=True
            )
            await asyncio.sleep(self.settings.claim_idle_ms / 3_000)

    async def _process(self, messages: Sequence[Msg]) -> Outcome:
        assert self.js is not None, "JetGroup.js is set by NatsRuntime.start"
        limit = self.settings.max_deliveries
        by_id: dict[bytes, Msg] = {}
        counts: dict[bytes, int] = {}
        exhausted: list[DeadLetter] = []
        ids: list[bytes] = []
        entries: list[dict[bytes, bytes]] = []
        for msg in messages:
            entry_id = str(msg.metadata.sequence.stream).encode()
            times = msg.metadata.num_delivered or 1
            by_id[entry_id], counts[entry_id] = msg, times
            if times > limit * CRASH_ALLOWANCE:
                # Only crashes saw it (a failure would have dead-lettered it at ``limit``).
                exhausted.append(
                    DeadLetter(
                        self.key,
                        self.worker.name,
                        entry_id,
                        msg.data,
                        f"gave up after {times - 1} deliveries; last error: no error recorded",
                        times - 1,
                    )
                )
            else:
                ids.append(entry_id)
                entries.append({FIELD: msg.data})
        verdict = await self.decide(ids, entries, counts)
        settled = {*verdict.done, *verdict.errors, *(letter.entry_id for letter in verdict.dead)}
        # Neither done nor failed: the database was unreachable.
        stranded = [by_id[i] for i in ids if i not in settled]
        verdict.outcome.dead += len(exhausted)
        dead = verdict.dead + exhausted
        retried: list[bytes] = []
        for entry_id, reason in verdict.errors.items():
            times = counts[entry_id]
            if times >= limit:
                verdict.outcome.pending -= 1
                verdict.outcome.dead += 1
                dead.append(
                    DeadLetter(
                        self.key,
                        self.worker.name,
                        entry_id,
                        by_id[entry_id].data,
                        f"gave up after {times} deliveries; last error: {reason}",
                        times,
                    )
                )
            else:
                retried.append(entry_id)
        if dead:
            await bury(self.js, self.settings, dead)
        # Acknowledged only after the commit (and the dead letters' publication).
        finished = verdict.done + [letter.entry_id for letter in dead]
        delay = self.settings.claim_idle_ms / 1000
        answers = await asyncio.gather(
            *(by_id[i].ack() for i in finished),
            *(by_id[i].nak(delay=delay) for i in retried),
            return_exceptions=True,
        )
        lost = [a for a in answers if isinstance(a, BaseException)]
        if lost:
            # Not acknowledged: delivered again after ack_wait, then skipped as consumed.
            log.warning("%s: %d acknowledgements lost: %s", self.worker.name, len(lost), lost[0])
        if not stranded:
            return verdict.outcome
        await self._hold()
        more = await self._process(stranded)
        outcome = verdict.outcome
        outcome.pending -= len(stranded)
        for name in ("handled", "skipped", "dead", "dropped", "pending"):
            setattr(outcome, name, getattr(outcome, name) + getattr(more, name))
        return outcome

    async def _hold(self) -> None:
        """Wait until the database answers again (the batch's messages are kept in progress
        by :meth:`process`): they are not delivered again meanwhile, nor brought closer to
        the dead letters (as on Redis, where nothing is claimed while the database is
        unreachable)."""
        while True:
            if await asyncio.to_thread(self._reachable):
                return
            await asyncio.sleep(0.5)


async def _no_decoder(message: Any) -> None:
    return None


class NatsRuntime:
    """The durable consumers of ``workers`` on one FastStream ``NatsBroker`` (pull, batches of
    ``batch_size``); N processes share each consumer's messages. ``consumer`` names this
    process in the logs only: JetStream tracks deliveries per durable consumer."""

    def __init__(
        self,
        workers: Sequence[Worker],
        *,
        database: DatabaseSettings,
        settings: StreamSettings,
        consumer: str,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.broker = NatsBroker(
            servers(settings), logger=log, max_reconnect_attempts=-1, reconnect_time_wait=1
        )
        self.groups = [JetGroup(worker, settings, database) for worker in workers]
        self.subscribers = [self._subscribe(group) for group in self.groups]
        self.client: Client | None = None

    def _subscribe(self, group: JetGroup) -> Any:
        async def on_batch(message: NatsMessage) -> None:
            # A batch subscriber's raw message is the list of fetched messages.
            batch: Sequence[Msg] = message.raw_message  # type: ignore[assignment]
            await group.process(batch)

        subscriber = self.broker.subscriber(
            stream_key(self.settings, group.worker.stream),
            stream=JStream(stream_name(self.settings, group.worker.stream), declare=False),
            durable=group.worker.name,
            pull_sub=PullSub(
                batch_size=self.settings.batch_size,
                timeout=max(self.settings.polling_ms / 1000, FETCH_MIN_S),
                batch=True,
            ),
            ack_policy=AckPolicy.MANUAL,
            decoder=_no_decoder,
            title=f"{group.worker.name}:consume",
            description=(
                f"Durable consumer {group.worker.name!r} on "
                f"{stream_key(self.settings, group.worker.stream)}: "
                + ", ".join(sorted(group.worker.types))
            ),
        )
        subscriber(on_batch)
        return subscriber

    async def start(self) -> None:
        """Create the streams and durable consumers if missing, and start reading."""
        if self.client is None:
            self.client = await connect(self.settings)
        js = self.client.jetstream()
        await ensure(js, self.settings, [group.worker for group in self.groups])
        for group in self.groups:
            group.js = js
        await self.broker.start()

    async def run(self, stop: asyncio.Event) -> None:
        """Read until ``stop`` is set, then stop cleanly. Redelivery is JetStream's own
        (``ack_wait``); FastStream restarts a fetch loop that failed (a node lost). A cluster
        not ready (no quorum, a leader being elected) is waited for, a second at a time."""
        while True:
            try:
                await self.start()
                break
            except (nats.errors.Error, OSError, TimeoutError) as error:
                log.warning("NATS not ready: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if stop.is_set():
                if self.client is not None:
                    await self.client.close()
                return
        try:
            await stop.wait()
        finally:
            await self.broker.stop()
            for group in self.groups:
                group.close()
            if self.client is not None:
                await self.client.close()


class JetStreamSink:
    """JetStream for the relay, the reconciler and erasure, which run in threads: a NATS
    connection on an event loop of its own (a daemon thread), called synchronously. Connects
    on first use; :meth:`close` ends both."""

    def __init__(self, settings: StreamSettings, workers: Sequence[Worker] = ()) -> None:
        self.settings = settings
        self.workers = workers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._created = False
        self._lock = threading.Lock()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="jetstream", daemon=True).start()
                self._loop = loop
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            self._client = await connect(self.settings)
            self._js = self._client.jetstream()
            self._created = await ensure(self._js, self.settings, self.workers)
        return self._js

    def ensure(self) -> None:
        """Connect, and create the streams and the workers' consumers when missing."""
        self._call(self._jetstream())

    def add(
        self, rows: Sequence[Row], entries: Sequence[bytes], *, again: bool = False
    ) -> set[str]:
        """Publish each outbox row's event JSON (``entries``, in order) to its stream, every one
        acknowledged by JetStream; ``again`` (the reconciler) gives them fresh message ids, so
        that they are not taken for repeats. Returns the subjects published to."""

        async def publish() -> set[str]:
            js = await self._jetstream()
            subjects: set[str] = set()
            calls = []
            for row, data in zip(rows, entries, strict=True):
                subject = stream_key(self.settings, stream_of(row[1]))
                subjects.add(subject)
                msg_id = f"{row[0]}/{uuid.uuid4().hex}" if again else str(row[0])
                calls.append((subject, data, msg_id))
            for start in range(0, len(calls), PUBLISH_CHUNK):
                await asyncio.gather(
                    *(
                        js.publish(
                            subject,
                            data,
                            timeout=PUBLISH_TIMEOUT_S,
                            headers={"Nats-Msg-Id": msg_id},
                        )
                        for subject, data, msg_id in calls[start : start + PUBLISH_CHUNK]
                    )
                )
            return subjects

        return self._call(publish())

    def trim(self, subjects: Iterable[str]) -> int:
        """Trim each stream of ``subjects`` to about ``max_len`` messages, never above its
        consumers' lowest acknowledgement floor; returns the messages purged."""

        async def trim() -> int:
            js = await self._jetstream()
            purged = 0
            for subject in subjects:
                name = stream_name(self.settings, subject.rpartition(".")[2])
                info = await js.stream_info(name)
                extra = info.state.messages - self.settings.max_len
                if extra <= 0:
                    continue
                floors = [
                    c.ack_floor.stream_seq for c in await js.consumers_info(name) if c.ack_floor
                ]
                upto = info.state.first_seq + extra  # first sequence kept
                if floors:
                    upto = min(upto, min(floors) + 1)
                if upto > info.state.first_seq:
                    await js.purge_stream(name, seq=upto)
                    purged += upto - info.state.first_seq
            return purged

        return self._call(trim())

    def emptied(self) -> bool:
        """Whether the loop's streams were created at this connection (none were there, or
        the cluster lost them): then everything not consumed must be published again."""
        self.ensure()
        created, self._created = self._created, False
        return created

    def scrub(self, user_ids: Sequence[int], names_user: Any) -> int:
        """Delete every message of the loop's and dead letters' streams for which
        ``names_user({b"event": data}, user_ids)`` holds; returns how many."""

        async def scrub() -> int:
            js = await self._jetstream()
            deleted = 0
            for stream in (*STREAMS, "dead"):
                name = stream_name(self.settings, stream)
                info = await js.stream_info(name)
                seq, last = info.state.first_seq, info.state.last_seq
                while seq and seq <= last:
                    try:
                        raw = await js.get_msg(name, seq, next=True)
                    except nats.js.errors.NotFoundError:
                        break
                    if raw.seq is None or raw.seq > last:
                        break
                    if names_user({FIELD: raw.data or b""}, user_ids):
                        with contextlib.suppress(nats.js.errors.NotFoundError):
                            await js.delete_msg(name, raw.seq)
                            deleted += 1
                    seq = raw.seq + 1
            return deleted

        return self._call(scrub(), timeout=600.0)

    def close(self) -> None:
        """Close the connection and stop the loop."""
        loop = self._loop
        if loop is None:
            return
        if self._client is not None:
            self._call(self._client.close())
        loop.call_soon_threadsafe(loop.stop)
        self._loop = self._client = self._js = None
