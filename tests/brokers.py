"""The loop's two brokers as the delivery tests see them: a Redis of the test's own
(tests/redisserver.py) or a three-node NATS JetStream cluster of its own (tests/natscluster.py),
with what the tests ask of either: the consumers' environment, a relay target, how many
messages a consumer group still has to acknowledge, and the dead letters."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import nats.errors
import nats.js.errors
import redis

from consumers import relay
from consumers.jetstream import JetStreamSink, connect, stream_name
from consumers.settings import StreamSettings
from consumers.streams import stream_key
from tests import natscluster, redisserver

Kind = Literal["redis", "nats"]
KINDS: tuple[Kind, ...] = ("redis", "nats")


@dataclass
class Broker:
    """A running broker of one ``kind``; ``server`` is its RedisServer or NatsCluster."""

    kind: Kind
    server: Any
    prefix: str = "p"

    def settings(self, **more: Any) -> StreamSettings:
        """Stream settings on this broker (prefix ``p``, NATS streams R3)."""
        extra = {"nats_url": self.server.url} if self.kind == "nats" else {}
        return StreamSettings(stream_prefix=self.prefix, broker=self.kind, **extra, **more)

    def env(self) -> dict[str, str]:
        """The environment of a ``geo-engine consume`` process on this broker."""
        if self.kind == "nats":
            return {"GEO_ENGINE_BROKER": "nats", "GEO_ENGINE_NATS_URL": self.server.url}
        return {"GEO_ENGINE_BROKER": "redis", "GEO_ENGINE_REDIS_URL": self.server.url}

    def target(self, **more: Any) -> relay.Target:
        """Where ``relay.drain`` publishes (close it after use)."""
        if self.kind == "nats":
            return JetStreamSink(self.settings(**more))
        return redis.Redis.from_url(self.server.url)

    def _run(self, query: Any) -> Any:
        async def run() -> Any:
            client = await connect(self.settings())
            try:
                return await query(client.jetstream())
            finally:
                await client.close()

        return asyncio.run(run())

    def unacknowledged(self, stream: str, group: str) -> int:
        """Messages of ``stream`` the consumer group ``group`` has not acknowledged yet (on
        Redis its pending entries; on NATS those delivered and not acknowledged, and those
        not delivered yet)."""
        if self.kind == "redis":
            client = redis.Redis.from_url(self.server.url)
            return int(client.xpending(stream_key(self.settings(), stream), group)["pending"])

        async def query(js: Any) -> int:
            try:
                info = await js.consumer_info(stream_name(self.settings(), stream), group)
            except nats.js.errors.NotFoundError:
                return 0
            return int(info.num_ack_pending) + int(info.num_pending)

        return int(self._run(query))

    def leader(self, stream: str) -> str | None:
        """NATS: the server name (``n1``-``n3``) of ``stream``'s leader; ``None`` while none
        answers (an election)."""

        async def query(js: Any) -> str | None:
            try:
                info = await js.stream_info(stream_name(self.settings(), stream))
            except nats.errors.Error:
                return None
            return str(info.cluster.leader) if info.cluster and info.cluster.leader else None

        result: str | None = self._run(query)
        return result

    def restart(self, stream: str) -> None:
        """Redis: killed and started again, empty (streams and groups gone). NATS: the node
        leading ``stream`` (node 1 before the stream exists) killed (SIGKILL) and, once another
        node leads it, started again on its data."""
        if self.kind == "redis":
            self.server.restart()
            return
        leader = self.leader(stream)  # None: the stream is not there yet
        node = self.server.node_of(leader) if leader else 1
        self.server.kill(node)
        deadline = time.monotonic() + 30
        while leader is not None and self.leader(stream) in (None, leader):
            assert time.monotonic() < deadline, f"no new leader of {stream}"
            time.sleep(0.2)
        self.server.start_node(node)

    def dead(self) -> list[dict[str, str]]:
        """Every dead letter, oldest first, as its fields (``error``, ``group``, ``event``…)."""
        if self.kind == "redis":
            client = redis.Redis.from_url(self.server.url)
            return [
                {k.decode(): v.decode(errors="replace") for k, v in fields.items()}
                for _, fields in client.xrange(stream_key(self.settings(), "dead"))
            ]

        async def query(js: Any) -> list[dict[str, str]]:
            name = stream_name(self.settings(), "dead")
            try:
                info = await js.stream_info(name)
            except nats.js.errors.NotFoundError:
                return []
            letters = []
            seq = info.state.first_seq
            while info.state.messages and seq <= info.state.last_seq:
                try:
                    raw = await js.get_msg(name, seq, next=True)
                except nats.js.errors.NotFoundError:
                    break
                letters.append({k: str(v) for k, v in json.loads(raw.data).items()})
                seq = raw.seq + 1
            return letters

        return list(self._run(query))


def serving(kind: Kind, folder: Path) -> Iterator[Broker]:
    """A started broker of ``kind`` in ``folder``, stopped when the generator closes: the body
    of a test module's ``broker`` fixture, parametrised by :data:`KINDS`."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "nats":
        for cluster in natscluster.serving(folder):
            yield Broker(kind, cluster)
    else:
        for server in redisserver.serving(folder):
            yield Broker(kind, server)
