"""Reading a users' JSON Lines file in chunks of columns, in bounded memory.

Each line is read by a fast path first: ``orjson`` and typed checks of the usual shapes, which
accept only lines that :class:`contracts.users.UserRecord` accepts and give the same values
(``tests/test_users_stream.py`` compares them line by line). Any line the fast path does not
take, valid or not, goes through ``UserRecord`` itself, so every refusal reads exactly as it
always did (``file:line: field: reason``). Sub-objects that repeat across millions of lines
(notifications settings, sets of interests) are validated once by pydantic and remembered.

Memory: one chunk of columns at a time, the first :data:`MAX_REPORTED_ERRORS` refusals, and
16 bytes per valid line (its id and line number, to find repeated ids at the end).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError

from contracts.themes import Theme
from contracts.users import Notifications, UserRecord, _zones
from geo_engine.jsonl import MAX_REPORTED_ERRORS, ImportRejected, validation_messages
from geo_engine.users.batch import UserBatch, notifications_json

CHUNK_LINES = 100_000
# Distinct notifications settings and interest sets remembered; past this, each line's are
# validated on their own (same answers, slower).
MAX_REMEMBERED = 65_536

_KEYS = frozenset(UserRecord.model_fields)
_THEMES = frozenset(t.value for t in Theme)
_MAX_ID = 2**63 - 1
# The same patterns as UserRecord's (fullmatch: Python's $ would also take a final newline).
_INSEE = re.compile(r"[0-9]{5}|2[AB][0-9]{3}")
_POSTAL = re.compile(r"[0-9]{5}")
_DEFAULT: dict[str, Any] = {}  # notifications left out: the defaults


class UserImportError(ImportRejected):
    """The users' input has invalid lines; nothing was written."""


class Refusals:
    """The refusals of one import: the first ones by line number, and how many in all."""

    def __init__(self, limit: int = MAX_REPORTED_ERRORS) -> None:
        self.limit = limit
        self.first: list[tuple[int, str]] = []
        self.total = 0

    def add(self, line: int, message: str) -> None:
        self.total += 1
        self.first.append((line, message))
        if len(self.first) > 4 * self.limit:  # keep the list small whatever the file's size
            self.first.sort(key=lambda e: e[0])
            del self.first[self.limit :]

    def __bool__(self) -> bool:
        return self.total > 0

    def error(self) -> UserImportError:
        shown = sorted(self.first, key=lambda e: e[0])[: self.limit]
        return UserImportError([m for _, m in shown], self.total)


def _notifications(raw: Any, memo: dict[bytes, bytes]) -> bytes | None:
    """Normalised JSON of a valid notifications object, None when pydantic should judge."""
    if type(raw) is not dict:
        return None
    key = orjson.dumps(raw)
    found = memo.get(key)
    if found is None:
        try:
            found = notifications_json(Notifications.model_validate_json(key))
        except ValidationError:
            return None
        if len(memo) < MAX_REMEMBERED:
            memo[key] = found
    return found


def _interests(raw: Any, memo: dict[tuple[str, ...], list[str]]) -> list[str] | None:
    if type(raw) is not list:
        return None
    key = tuple(raw)
    found = memo.get(key)
    if found is None:
        if not all(type(t) is str and t in _THEMES for t in key) or len(set(key)) != len(key):
            return None
        found = list(key)
        if len(memo) < MAX_REMEMBERED:
            memo[key] = found
    return found


def _number(value: Any) -> float | None:
    kind = type(value)
    if kind is float:
        return value if value == value and abs(value) != float("inf") else None
    if kind is int:
        return float(value)
    return None


class _Columns:
    """Columns of the lines read so far in the current chunk."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.lon: list[float] = []
        self.lat: list[float] = []
        self.commune: list[str | None] = []
        self.postal_code: list[str | None] = []
        self.interests: list[list[str]] = []
        self.notifications: list[bytes] = []
        self.timezone: list[str | None] = []
        self.line: list[int] = []

    def add_record(self, number: int, record: UserRecord) -> None:
        self.ids.append(record.id)
        self.lon.append(record.home.lon if record.home else np.nan)
        self.lat.append(record.home.lat if record.home else np.nan)
        self.commune.append(record.commune)
        self.postal_code.append(record.postal_code)
        self.interests.append([str(t) for t in record.interests])
        self.notifications.append(notifications_json(record.notifications))
        self.timezone.append(record.timezone)
        self.line.append(number)

    def batch(self) -> UserBatch:
        n = len(self.ids)
        return UserBatch(
            ids=np.array(self.ids, dtype=np.int64),
            lon=np.array(self.lon, dtype=np.float64),
            lat=np.array(self.lat, dtype=np.float64),
            commune=np.array(self.commune or [], dtype=object).reshape(n),
            postal_code=np.array(self.postal_code or [], dtype=object).reshape(n),
            interests=self.interests,
            notifications=self.notifications,
            timezone=self.timezone,
            line=np.array(self.line, dtype=np.int64),
        )


class UserLines:
    """A users' JSON Lines file read chunk by chunk (:meth:`chunks`); refusals gathered in
    :attr:`refusals`, repeated ids found by :meth:`finish`."""

    def __init__(self, path: Path, chunk_lines: int = CHUNK_LINES) -> None:
        self.path = path
        self.chunk_lines = chunk_lines
        self.refusals = Refusals()
        self.lines = 0  # lines read, blank ones included
        self.records = 0
        self._ids: list[np.ndarray[Any, np.dtype[np.int64]]] = []
        self._numbers: list[np.ndarray[Any, np.dtype[np.int64]]] = []
        self._notifications: dict[bytes, bytes] = {}
        self._interests: dict[tuple[str, ...], list[str]] = {}
        self._zones = _zones()

    def _fast(self, raw: bytes, number: int, out: _Columns) -> bool:
        """Append the line's values to ``out`` if it is of a shape checked here; False
        (nothing appended) when pydantic should read it."""
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return False
        if type(obj) is not dict or not _KEYS.issuperset(obj):
            return False
        user_id = obj.get("id")
        if type(user_id) is not int or not 1 <= user_id <= _MAX_ID:
            return False
        home = obj.get("home")
        commune = obj.get("commune")
        postal = obj.get("postal_code")
        if home is not None:
            if commune is not None or postal is not None or type(home) is not dict:
                return False
            if len(home) != 2:
                return False
            lon, lat = _number(home.get("lon")), _number(home.get("lat"))
            if lon is None or lat is None or not (-180 <= lon <= 180 and -90 <= lat <= 90):
                return False
        else:
            lon = lat = np.nan
            if commune is not None:
                if postal is not None or type(commune) is not str or not _INSEE.fullmatch(commune):
                    return False
            elif type(postal) is not str or not _POSTAL.fullmatch(postal):
                return False
        interests = _interests(obj.get("interests", []), self._interests)
        if interests is None:
            return False
        notifications = _notifications(obj.get("notifications", _DEFAULT), self._notifications)
        if notifications is None:
            return False
        zone = obj.get("timezone")
        if zone is not None and (type(zone) is not str or zone not in self._zones):
            return False
        out.ids.append(user_id)
        out.lon.append(lon)
        out.lat.append(lat)
        out.commune.append(commune)
        out.postal_code.append(postal)
        out.interests.append(interests)
        out.notifications.append(notifications)
        out.timezone.append(zone)
        out.line.append(number)
        return True

    def chunks(self, progress: Callable[[int], None] = lambda _n: None) -> Iterator[UserBatch]:
        """Valid lines, ``chunk_lines`` lines of the file at a time (the last chunk may be
        shorter or empty); invalid ones are added to :attr:`refusals`."""
        name = self.path.name
        out = _Columns()
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not self._fast(raw, number, out) and raw.strip():
                    try:
                        out.add_record(number, UserRecord.model_validate_json(raw))
                    except ValidationError as exc:
                        for message in validation_messages(exc, f"{name}:{number}"):
                            self.refusals.add(number, message)
                if number % self.chunk_lines == 0:
                    yield self._emit(out)
                    progress(self.chunk_lines)
                    out = _Columns()
                self.lines = number
        yield self._emit(out)
        progress(self.lines % self.chunk_lines)

    def _emit(self, out: _Columns) -> UserBatch:
        batch = out.batch()
        self._ids.append(batch.ids)
        self._numbers.append(batch.line)
        self.records += len(batch)
        return batch

    def finish(self) -> None:
        """Add a refusal for every id already given on an earlier line; raise
        :class:`UserImportError` (the first refusals by line) if there is any refusal."""
        ids = np.concatenate(self._ids) if self._ids else np.zeros(0, dtype=np.int64)
        numbers = np.concatenate(self._numbers) if self._numbers else np.zeros(0, dtype=np.int64)
        self._ids, self._numbers = [ids], [numbers]
        order = np.lexsort((numbers, ids))
        ids, numbers = ids[order], numbers[order]
        again = np.flatnonzero(ids[1:] == ids[:-1]) + 1
        if again.size:
            # Index of each group's first line: the start of the run of equal ids.
            starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
            first = numbers[starts[np.searchsorted(starts, again, side="right") - 1]]
            for k in np.argsort(numbers[again], kind="stable")[: self.refusals.limit]:
                i = again[k]
                self.refusals.add(
                    int(numbers[i]),
                    f"{self.path.name}:{numbers[i]}: id: {ids[i]} already on line {first[k]}",
                )
            self.refusals.total += again.size - min(again.size, self.refusals.limit)
        if self.refusals:
            raise self.refusals.error()
