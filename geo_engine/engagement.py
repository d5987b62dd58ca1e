"""Reads of follows, engagement and feedback for the recommender, set-wise, as numpy arrays.

Each function is one statement (``engagement_*.sql`` beside this module) whatever the number
of users or projects asked: values cross packed in byte strings (or binary COPY) and become
arrays without a Python loop per row. Codes: an engagement kind, feedback kind or theme is
its position in :data:`ENGAGEMENT_KINDS`, :data:`FEEDBACK_KINDS` or :data:`THEMES`.
The writes are in :mod:`geo_engine.writes` (give_feedback, follow, unfollow,
record_engagement).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
import psycopg

from contracts.engagement import EngagementKind, FeedbackKind
from contracts.themes import Theme
from geo_engine.db import load_sql

ENGAGEMENT_KINDS: tuple[EngagementKind, ...] = tuple(EngagementKind)
FEEDBACK_KINDS: tuple[FeedbackKind, ...] = tuple(FeedbackKind)
THEMES: tuple[Theme, ...] = tuple(Theme)
PARTICIPATION = ENGAGEMENT_KINDS.index(EngagementKind.PARTICIPATION)
CLICK = ENGAGEMENT_KINDS.index(EngagementKind.CLICK)
NO_THEME = -1

SIGNALS = load_sql("geo_engine", "engagement_signals.sql")
PARTICIPANTS = load_sql("geo_engine", "engagement_participants.sql")
INTERACTIONS = load_sql("geo_engine", "engagement_interactions.sql")

Ints = npt.NDArray[np.int64]

# Binary COPY of (int8, int8, int2): a 19-byte header, then 32-byte rows, then a 2-byte -1.
_COPY_HEADER = 19
_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("len_user", ">i4"),
        ("user", ">i8"),
        ("len_project", ">i4"),
        ("project", ">i8"),
        ("len_kind", ">i4"),
        ("kind", ">i2"),
    ]
)
assert _ROW.itemsize == 32
assert ENGAGEMENT_KINDS == (EngagementKind.PARTICIPATION, EngagementKind.CLICK)  # the .sql's CASE


@dataclass(frozen=True)
class UserSignals:
    """What is known of some users, as parallel arrays (the n-th items of a group belong
    together), each group sorted by user then the rest.

    - engagement: ``e_user``, ``e_project``, ``e_kind`` (code), ``e_count`` and ``e_last``
      (last time, seconds since the epoch);
    - organisations followed or belonged to: ``o_user``, ``o_organisation``, ``o_followed``,
      ``o_member`` (one row per pair, both flags may be true);
    - feedback: ``f_user``, ``f_kind`` (code), ``f_project`` (0 for a theme) and ``f_theme``
      (code, -1 for a project).
    """

    e_user: Ints
    e_project: Ints
    e_kind: npt.NDArray[np.int16]
    e_count: npt.NDArray[np.int32]
    e_last: npt.NDArray[np.float64]
    o_user: Ints
    o_organisation: Ints
    o_followed: npt.NDArray[np.bool_]
    o_member: npt.NDArray[np.bool_]
    f_user: Ints
    f_kind: npt.NDArray[np.int16]
    f_project: Ints
    f_theme: npt.NDArray[np.int16]


def _unpack(raw: bytes | None, dtype: str) -> npt.NDArray[np.generic]:
    if raw is None:
        return np.empty(0, dtype=np.dtype(dtype).newbyteorder("="))
    return np.frombuffer(raw, dtype=dtype).astype(np.dtype(dtype).newbyteorder("="))


def _sorted(arrays: list[npt.NDArray[np.generic]]) -> list[npt.NDArray[np.generic]]:
    """The arrays reordered together by the first, then the second, and so on."""
    order = np.lexsort(arrays[::-1])
    return [a[order] for a in arrays]


def user_signals(conn: psycopg.Connection, user_ids: Sequence[int] | Ints) -> UserSignals:
    """Engagement, organisations followed or belonged to, and feedback of ``user_ids`` (unknown
    ids have none), in one statement."""
    row = conn.execute(
        SIGNALS,
        {
            "users": [int(u) for u in user_ids],
            "kinds": [k.value for k in ENGAGEMENT_KINDS],
            "feedback_kinds": [k.value for k in FEEDBACK_KINDS],
            "themes": [t.value for t in THEMES],
        },
    ).fetchone()
    assert row is not None
    (
        e_user,
        e_project,
        e_kind,
        e_count,
        e_last,
        o_user,
        o_org,
        o_fol,
        o_mem,
        f_user,
        f_kind,
        f_proj,
        f_theme,
    ) = row  # noqa: E501
    engagement = _sorted(
        [
            _unpack(e_user, ">i8"),
            _unpack(e_project, ">i8"),
            _unpack(e_kind, ">i2"),
            _unpack(e_count, ">i4"),
            _unpack(e_last, ">f8"),
        ]
    )
    organisations = _sorted(
        [_unpack(o_user, ">i8"), _unpack(o_org, ">i8"), _unpack(o_fol, "?"), _unpack(o_mem, "?")]
    )
    feedback = _sorted(
        [
            _unpack(f_user, ">i8"),
            _unpack(f_kind, ">i2"),
            _unpack(f_proj, ">i8"),
            _unpack(f_theme, ">i2"),
        ]
    )
    return UserSignals(*engagement, *organisations, *feedback)  # type: ignore[arg-type]


def project_participants(conn: psycopg.Connection, project_ids: Sequence[int] | Ints) -> Ints:
    """Distinct participating users of each project, aligned with ``project_ids``."""
    ids = [int(p) for p in project_ids]
    if not ids:
        return np.empty(0, dtype=np.int64)
    row = conn.execute(PARTICIPANTS, {"projects": ids}).fetchone()
    assert row is not None
    counts: Ints = np.frombuffer(row[0], dtype=">i8").astype(np.int64)
    return counts


def iter_interactions(
    conn: psycopg.Connection, since: datetime | None = None, chunk_rows: int = 1_000_000
) -> Iterator[tuple[Ints, Ints, npt.NDArray[np.int16]]]:
    """Every engagement whose last time is at or after ``since`` (all without), as chunks of
    at most ``chunk_rows`` (user_ids, project_ids, kinds) in no particular order, streamed
    by binary COPY: memory stays bounded by the chunk, whatever the table's size."""
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    chunk_bytes = chunk_rows * _ROW.itemsize
    buffer = bytearray()
    header_left = _COPY_HEADER
    with conn.cursor() as cur, cur.copy(INTERACTIONS, {"since": since}) as copy:
        for data in copy:
            buffer += data
            if header_left:
                skip = min(header_left, len(buffer))
                del buffer[:skip]
                header_left -= skip
            while len(buffer) >= chunk_bytes:
                yield _rows(bytes(buffer[:chunk_bytes]))
                del buffer[:chunk_bytes]
    # What is left: whole rows, then the trailer (-1 as int2).
    if buffer[-2:] != struct.pack(">h", -1):
        raise RuntimeError("binary COPY of engagement ended without its trailer")
    del buffer[-2:]
    if buffer:
        yield _rows(bytes(buffer))


def _rows(data: bytes) -> tuple[Ints, Ints, npt.NDArray[np.int16]]:
    rows = np.frombuffer(data, dtype=_ROW)
    if rows.size and not (rows["fields"] == 3).all():
        raise RuntimeError("unexpected binary COPY layout of engagement")
    return (
        rows["user"].astype(np.int64),
        rows["project"].astype(np.int64),
        rows["kind"].astype(np.int16),
    )


def interactions(
    conn: psycopg.Connection, since: datetime | None = None
) -> tuple[Ints, Ints, npt.NDArray[np.int16]]:
    """All engagement since ``since`` as three aligned arrays (user_ids, project_ids, kinds):
    :func:`iter_interactions` concatenated."""
    users, projects, kinds = [], [], []
    for u, p, k in iter_interactions(conn, since):
        users.append(u)
        projects.append(p)
        kinds.append(k)
    if not users:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int16)
    return np.concatenate(users), np.concatenate(projects), np.concatenate(kinds)
