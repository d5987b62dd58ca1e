"""Who a project concerns, and what concerns a place: the geography the recommender and the
fan-out stand on, as ids and facts.

Both read the SQL functions of migration 0003 (``migrations/sql/0003_candidates.sql`` and
``0003_audience.sql``), which go through the one visibility rule ``visible_projects(viewer)``;
nothing here decides who sees what. Rows come by binary COPY in fixed-width records parsed
with numpy, so millions of rows cost no Python loop per row and never sit in memory at once on
the server: an audience is streamed in batches as PostgreSQL produces it.

Levels are the words of the SQL functions, numbered by their index in :data:`LEVELS`, from
the narrowest to the widest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from geo_engine.db import load_sql

LEVELS: tuple[str, ...] = (
    "commune",
    "arrondissement",
    "epci",
    "area",
    "radius",
    "departement",
    "region",
    "national",
)

# Binary COPY: a 19-byte header, then per row a field count (int16) and per field its length
# (int32) and bytes, then the trailer -1 (int16). With every field NOT NULL and fixed-width the
# rows are records numpy reads directly.
_HEADER = 19
BATCH_BYTES = 1 << 20
_AUDIENCE_ROW = np.dtype(
    [("n", ">i2"), ("l1", ">i4"), ("user_id", ">i8"), ("l2", ">i4"), ("level", ">i2")]
)
AUDIENCE_COPY = load_sql("geo_engine.queries", "audience_copy.sql")
CANDIDATES_PACKED = load_sql("geo_engine.queries", "candidates_packed.sql")


@contextmanager
def _big_query(conn: psycopg.Connection) -> Iterator[None]:
    """For one statement over millions of rows: no JIT (PostgreSQL compiling the plan's
    expressions cost 20 s of 40 on the candidates of all communes, for nothing), and room to
    group them in memory. Both settings are put back afterwards."""
    settings = ("jit", "work_mem")
    row = conn.execute(
        "SELECT current_setting('jit'), current_setting('work_mem'), "
        "set_config('jit', 'off', false), set_config('work_mem', '256MB', false)"
    ).fetchone()
    assert row is not None
    try:
        yield
    finally:
        # After an error the transaction's rollback puts them back itself.
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            for name, value in zip(settings, row[:2], strict=True):
                conn.execute("SELECT set_config(%s, %s, false)", (name, value))


def _records(
    conn: psycopg.Connection, query: str, params: Mapping[str, object], row: np.dtype[np.void]
) -> Iterator[npt.NDArray[np.void]]:
    """The rows of a binary ``COPY (query) TO STDOUT``, as arrays of ``row`` records, in
    batches of about ``BATCH_BYTES`` as they arrive.

    COPY sends one message per row: messages are only collected here, and parsed by numpy a
    batch at a time (a numpy call per row cost 25 µs, ten times the message itself)."""
    pending = b""
    skip = _HEADER
    chunks: list[bytes | bytearray | memoryview] = []
    size = 0

    def parse(last: bool) -> Iterator[npt.NDArray[np.void]]:
        nonlocal pending, skip, chunks, size
        data = pending + b"".join(chunks)
        chunks, size = [], 0
        if skip:
            if len(data) < skip:
                pending = data
                return
            data, skip = data[skip:], 0
        # The 2-byte trailer is shorter than a row: it stays in ``pending``.
        whole = len(data) // row.itemsize * row.itemsize
        if whole:
            yield np.frombuffer(data, dtype=row, count=whole // row.itemsize)
        pending = data[whole:]
        if last and pending not in (b"", b"\xff\xff"):
            raise RuntimeError(f"COPY ended with {len(pending)} stray bytes")

    with _big_query(conn), conn.cursor() as cur, cur.copy(query, params) as copy:
        for block in copy:
            chunks.append(block)
            size += len(block)
            if size >= BATCH_BYTES:
                yield from parse(last=False)
    yield from parse(last=True)


def audience(
    conn: psycopg.Connection, project_id: int
) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.int16]]]:
    """Every user project ``project_id`` concerns (``project_audience``), streamed.

    Yields batches ``(user_ids, levels)``: two arrays of equal length n, user ids (int64,
    app_user.id) and the narrowest level that reached each user (int16, index into
    :data:`LEVELS`: territorial levels from the user's commune, ``area``/``radius`` from their
    stored home point, ``national``). No user twice, no order. A private project reaches only
    its organisation's members; a missing project reaches nobody (no batch). A national
    project yields millions of rows, in batches of about 50,000 (1 MiB of COPY data).
    """
    params = {"levels": list(LEVELS), "project": project_id}
    for batch in _records(conn, AUDIENCE_COPY, params, _AUDIENCE_ROW):
        yield batch["user_id"].astype(np.int64), batch["level"].astype(np.int16)


def _array(data: bytes, item: str) -> npt.NDArray[Any]:
    """The items of a one-dimensional array without NULLs in PostgreSQL's binary format
    (``array_send``): a 20-byte header, then each item's length (int32) and bytes."""
    body = np.dtype([("length", ">i4"), ("value", item)])
    return np.frombuffer(data, dtype=body, offset=20)["value"]


@dataclass(frozen=True)
class Candidates:
    """What concerns some communes, one row per (commune, project), as parallel arrays.

    ``communes``: the INSEE codes asked, distinct, in the order given.
    ``commune``: int32, index into ``communes``; -1 for a national project, listed once, which
    concerns every commune asked.
    ``project_id``: int64, project.id.
    ``level``: int16, index into :data:`LEVELS` (the narrowest reason).
    ``distance_m``: float64, metres on the sphere from the home point to the project's area or
    circle (0 inside) or else its location; NaN without a home point or without either.
    """

    communes: list[str]
    commune: npt.NDArray[np.int32]
    project_id: npt.NDArray[np.int64]
    level: npt.NDArray[np.int16]
    distance_m: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.project_id)

    def of(self, code: str) -> dict[int, str]:
        """Project id -> level word for one commune asked, national projects included."""
        i = self.communes.index(code)
        rows = np.flatnonzero((self.commune == i) | (self.commune == -1))
        return {int(self.project_id[r]): LEVELS[self.level[r]] for r in rows}


def candidates(
    conn: psycopg.Connection,
    communes: Sequence[str],
    viewer: int | None = None,
    home: tuple[float, float] | None = None,
) -> Candidates:
    """Every project ``viewer`` (app_user.id; None: anonymous) may see that concerns each of
    ``communes`` (INSEE codes; unknown ones give no row), through ``project_candidates``.

    ``home`` is (lon, lat) in degrees (WGS84) for distances. All 34,969 communes at once is
    the daily planning step: one statement, a few million rows.
    """
    asked = list(dict.fromkeys(communes))
    params = {
        "levels": list(LEVELS),
        "communes": asked,
        "lon": None if home is None else home[0],
        "lat": None if home is None else home[1],
        "viewer": viewer,
    }
    index = {code: i for i, code in enumerate(asked)}
    commune: list[npt.NDArray[np.int32]] = []
    project: list[npt.NDArray[np.int64]] = []
    level: list[npt.NDArray[np.int16]] = []
    distance: list[npt.NDArray[np.float64]] = []
    with _big_query(conn), conn.cursor(binary=True) as cur:
        cur.execute(CANDIDATES_PACKED, params)
        for code, ids, levels, distances in cur:
            p = _array(ids, ">i8").astype(np.int64)
            project.append(p)
            commune.append(np.full(len(p), -1 if code is None else index[code], dtype=np.int32))
            level.append(_array(levels, ">i2").astype(np.int16))
            distance.append(_array(distances, ">f8").astype(np.float64))
    return Candidates(
        asked,
        np.concatenate(commune) if commune else np.zeros(0, dtype=np.int32),
        np.concatenate(project) if project else np.zeros(0, dtype=np.int64),
        np.concatenate(level) if level else np.zeros(0, dtype=np.int16),
        np.concatenate(distance) if distance else np.zeros(0, dtype=np.float64),
    )
