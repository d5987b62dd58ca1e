"""Users in columns: what an import reads from a file or a fixture generates, chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import numpy.typing as npt
import orjson

from contracts.users import Notifications, UserRecord


@cache
def notifications_json(prefs: Notifications) -> bytes:
    """Encoded once per distinct setting (there are 16): one shared bytes object per setting
    instead of one per user (orjson hands out 4 KiB buffers)."""
    return orjson.dumps(prefs.model_dump())


@dataclass
class UserBatch:
    """Users in columns, as read from a file or generated; ``line`` numbers the source lines."""

    ids: npt.NDArray[np.int64]
    lon: npt.NDArray[np.float64]  # NaN where no home point was given
    lat: npt.NDArray[np.float64]
    commune: npt.NDArray[np.object_]  # given INSEE code or None
    postal_code: npt.NDArray[np.object_]
    interests: list[list[str]]
    notifications: list[bytes]  # JSON
    timezone: list[str | None]
    line: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_records(
        cls, records: list[UserRecord], lines: Iterable[int] | None = None
    ) -> UserBatch:
        n = len(records)
        return cls(
            ids=np.fromiter((r.id for r in records), dtype=np.int64, count=n),
            lon=np.fromiter((r.home.lon if r.home else np.nan for r in records), np.float64, n),
            lat=np.fromiter((r.home.lat if r.home else np.nan for r in records), np.float64, n),
            commune=np.array([r.commune for r in records] or [], dtype=object),
            postal_code=np.array([r.postal_code for r in records] or [], dtype=object),
            interests=[[str(t) for t in r.interests] for r in records],
            notifications=[notifications_json(r.notifications) for r in records],
            timezone=[r.timezone for r in records],
            line=np.fromiter(lines if lines is not None else range(1, n + 1), np.int64, n),
        )

    @classmethod
    def concat(cls, batches: list[UserBatch]) -> UserBatch:
        return cls(
            ids=np.concatenate([b.ids for b in batches]),
            lon=np.concatenate([b.lon for b in batches]),
            lat=np.concatenate([b.lat for b in batches]),
            commune=np.concatenate([b.commune for b in batches]),
            postal_code=np.concatenate([b.postal_code for b in batches]),
            interests=[i for b in batches for i in b.interests],
            notifications=[n for b in batches for n in b.notifications],
            timezone=[t for b in batches for t in b.timezone],
            line=np.concatenate([b.line for b in batches]),
        )
