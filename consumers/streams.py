"""Stream names, the wire form of an event, consumer groups and the trim policy, on Redis.

An event travels as one stream entry with one field, ``event``: the JSON of its
``contracts.events`` model (the outbox row's payload with ``event_id``, ``type``, ``version``
and ``occurred_at``). Streams are ``<prefix>.project``, ``<prefix>.user``,
``<prefix>.engagement``; what could not be handled goes to ``<prefix>.dead``.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
from pydantic import TypeAdapter

from consumers.settings import StreamSettings
from consumers.worker import StreamName
from contracts.events import AnyEvent, Event

STREAMS: tuple[StreamName, ...] = ("project", "user", "engagement")
FIELD = b"event"

_EVENT: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)


def stream_key(settings: StreamSettings, stream: str) -> str:
    """``<prefix>.<stream>``: the Redis key of a stream (``dead`` for the dead letters)."""
    return f"{settings.stream_prefix}.{stream}"


def decode_event(raw: bytes) -> Event:
    """The event of an entry's ``event`` field (JSON bytes); ``pydantic.ValidationError`` when
    it is no event the contracts know (wrong schema, unknown type, bad JSON)."""
    event: Event = _EVENT.validate_json(raw)
    return event


def _is_busygroup(error: redis.ResponseError) -> bool:
    return str(error).startswith("BUSYGROUP")


def ensure_group(client: redis.Redis, key: str, group: str) -> None:
    """Create ``group`` on stream ``key`` (and the stream) if missing, from the first entry
    (id 0): after an empty Redis restart, what the reconciler republishes is read."""
    try:
        client.xgroup_create(key, group, id="0", mkstream=True)
    except redis.ResponseError as error:
        if not _is_busygroup(error):
            raise


async def ensure_group_async(client: redis.asyncio.Redis, key: str, group: str) -> None:
    """:func:`ensure_group` on an asyncio client."""
    try:
        await client.xgroup_create(key, group, id="0", mkstream=True)
    except redis.ResponseError as error:
        if not _is_busygroup(error):
            raise


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _next_id(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def trim_floor(client: redis.Redis, key: str) -> str | None:
    """The lowest entry id some consumer group of ``key`` still needs: its oldest pending
    entry, or the entry after the last one it was delivered; ``None`` when the stream has no
    group. Entries below it were acknowledged by every group."""
    floors: list[tuple[int, int]] = []
    for info in client.xinfo_groups(key):
        name = _decode(info["name"])
        if int(info["pending"]) > 0:
            summary = client.xpending(key, name)
            oldest = _decode(summary["min"])
        else:
            oldest = _next_id(_decode(info["last-delivered-id"]))
        ms, _, seq = oldest.partition("-")
        floors.append((int(ms), int(seq or 0)))
    if not floors:
        return None
    low_ms, low_seq = min(floors)
    return f"{low_ms}-{low_seq}"


def trim(client: redis.Redis, key: str, max_len: int) -> int:
    """Trim ``key`` to about ``max_len`` entries, never below :func:`trim_floor`: an entry a
    group has not read or acknowledged is never deleted (``MAXLEN`` alone would delete
    pending entries). Returns the entries deleted. With a group, only entries every group
    acknowledged go (``XTRIM MINID ~``); the stream may stay longer than ``max_len`` while
    consumers lag."""
    if client.xlen(key) <= max_len:
        return 0
    floor = trim_floor(client, key)
    if floor is None:
        return int(client.xtrim(key, maxlen=max_len, approximate=True))
    return int(client.xtrim(key, minid=floor, approximate=True))
