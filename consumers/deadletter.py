"""The dead-letter stream ``<prefix>.dead``: what a consumer group gave up on, and why.

Each dead letter is one entry with the fields ``stream`` and ``entry_id`` (where it came
from), ``group`` (who gave up), ``deliveries`` (how many times it was delivered), ``error``
(a readable reason, one line) and ``event`` (the entry's ``event`` field as it was, cut to
``KEPT_BYTES`` when larger). A person reads them with ``XRANGE <prefix>.dead - +``; nothing
re-reads them automatically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio

KEPT_BYTES = 4_096
DEAD_MAX_LEN = 100_000


@dataclass(frozen=True)
class DeadLetter:
    """One entry given up on: ``entry_id`` in ``stream`` (a key), for ``group``."""

    stream: str
    group: str
    entry_id: bytes
    event: bytes
    error: str
    deliveries: int

    def fields(self) -> dict[str, bytes | str | int]:
        error = " ".join(self.error.split())[:1_000]
        return {
            "stream": self.stream,
            "entry_id": self.entry_id,
            "group": self.group,
            "deliveries": self.deliveries,
            "error": error,
            "event": self.event[:KEPT_BYTES],
        }


async def bury(client: redis.asyncio.Redis, dead_key: str, letters: Sequence[DeadLetter]) -> None:
    """Add ``letters`` to the dead-letter stream and acknowledge their entries for their group,
    in one transaction (``MULTI``): a dead letter is written exactly when its entry stops
    being pending."""
    if not letters:
        return
    async with client.pipeline(transaction=True) as pipe:
        for letter in letters:
            pipe.xadd(dead_key, letter.fields(), maxlen=DEAD_MAX_LEN, approximate=True)  # type: ignore[arg-type]
        for letter in letters:
            pipe.xack(letter.stream, letter.group, letter.entry_id)
        await pipe.execute()
