"""Who a project concerns, and what concerns a place: the geography the recommender and the
fan-out stand on, as ids and facts.

Both read the SQL functions of migration 0003 (``migrations/sql/0003_candidates.sql`` and
``0003_audience.sql``), which go through the one visibility rule ``visible_projects(viewer)``;
nothing here decides who sees what. Millions of rows cross as one row per commune and level
holding the ids packed in a byte string that numpy reads: a row costs the client about 2.5 µs
whatever its size, so five million of them one by one would cost more than the query itself.

Levels are the words of the SQL functions, numbered by their index in :data:`LEVELS`, from
the narrowest to the widest.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import psycopg

from contracts.catalog import CONCERN_LEVELS
from geo_engine.db import load_sql

LEVELS: tuple[str, ...] = CONCERN_LEVELS

_CURSORS = itertools.count(1)  # server-side cursors have names; two audiences may be open
BIG = 64  # communes from which project_candidates takes its many-communes plan, too

AUDIENCE_PACKED = load_sql("geo_engine", "audience_packed.sql")
CANDIDATES_PACKED = load_sql("geo_engine", "candidates_packed.sql")


@contextmanager
def _big_query(conn: psycopg.Connection) -> Iterator[None]:
    """For one statement over millions of rows: no JIT (compiling the plan's expressions cost
    20 s of 40 on the candidates of all communes, for nothing), room to group the rows in
    memory, and hashes rather than sorts (the planner, which cannot know how many rows a
    territory expands to, sorted five million rows to group them: 8 s of 21). The settings
    are put back afterwards."""
    settings = {"jit": "off", "work_mem": "256MB", "enable_sort": "off"}
    before = {}
    for name, value in settings.items():
        row = conn.execute(
            "SELECT current_setting(%s), set_config(%s, %s, false)", (name, name, value)
        ).fetchone()
        assert row is not None
        before[name] = row[0]
    try:
        yield
    finally:
        # After an error the transaction's rollback puts them back itself.
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            for name, value in before.items():
                conn.execute("SELECT set_config(%s, %s, false)", (name, value))


def audience(
    conn: psycopg.Connection, project_id: int
) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.int16]]]:
    """Every user project ``project_id`` concerns (``project_audience``), in batches.

    Yields ``(user_ids, levels)`` per commune and level: two arrays of equal length n, user
    ids (int64, app_user.id) and the narrowest level that reached each user (int16, index into
    :data:`LEVELS`: territorial levels from the user's commune, ``area``/``radius`` from their
    stored home point, ``national``). No user twice, no order. A private project reaches only
    its organisation's members; a missing project reaches nobody (no batch). The batches come
    from one statement read through a server-side cursor (a few rows per commune at most),
    so the client never holds more than a few hundred communes' users at a time.
    """
    with (
        _big_query(conn),
        conn.transaction(),
        conn.cursor(name=f"project_audience_{next(_CURSORS)}", binary=True) as cur,
    ):
        cur.itersize = 500  # groups per round trip
        cur.execute(AUDIENCE_PACKED, {"project": project_id})
        for _commune, level, ids in cur:
            users = np.frombuffer(ids, dtype=">i8").astype(np.int64)
            yield users, np.full(len(users), LEVELS.index(level), dtype=np.int16)


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
    # A few communes (one user's) need none of the big query's settings, nor their round trips.
    big = _big_query(conn) if len(asked) > BIG else nullcontext()
    with big, conn.cursor(binary=True) as cur:
        # Never prepared: planned for the communes given (a generic plan is 100 times slower).
        cur.execute(CANDIDATES_PACKED, params, prepare=False)
        for code, word, ids, distances in cur:
            p = np.frombuffer(ids, dtype=">i8").astype(np.int64)
            project.append(p)
            commune.append(np.full(len(p), -1 if code is None else index[code], dtype=np.int32))
            level.append(np.full(len(p), LEVELS.index(word), dtype=np.int16))
            distance.append(
                np.full(len(p), np.nan)
                if distances is None
                else np.frombuffer(distances, dtype=">f8").astype(np.float64)
            )
    return Candidates(
        asked,
        np.concatenate(commune) if commune else np.zeros(0, dtype=np.int32),
        np.concatenate(project) if project else np.zeros(0, dtype=np.int64),
        np.concatenate(level) if level else np.zeros(0, dtype=np.int16),
        np.concatenate(distance) if distance else np.zeros(0, dtype=np.float64),
    )
