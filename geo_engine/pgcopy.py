"""PostgreSQL binary COPY built with numpy: millions of rows without a Python loop per row.

Each column is fixed-width bytes or NULL per row (INSEE codes are always 5 bytes, a point's EWKB
25), which is what bulk placement writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
CHUNK_ROWS = 250_000


@dataclass(frozen=True)
class Column:
    """``data`` is (n, width) bytes; rows where ``present`` is False are NULL."""

    data: npt.NDArray[np.uint8]
    present: npt.NDArray[np.bool_]


def fixed_text(values: npt.NDArray[np.object_], width: int) -> Column:
    """A text column whose non-null values are all ``width`` ASCII bytes (e.g. INSEE codes)."""
    present = np.array([v is not None for v in values], dtype=bool)
    raw = np.array([v if v is not None else " " * width for v in values], dtype=f"S{width}")
    return Column(raw.view(np.uint8).reshape(-1, width), present)


def bigint(values: npt.NDArray[np.int64]) -> Column:
    raw = np.asarray(values, dtype=">i8")
    return Column(raw.view(np.uint8).reshape(-1, 8), np.ones(raw.shape, dtype=bool))


def points_ewkb(lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]) -> Column:
    """EWKB points with SRID 4326; NaN coordinates give NULL."""
    rec = np.zeros(lon.shape, dtype=[("order", "u1"), ("type", "<u4"), ("srid", "<u4"),
                                     ("x", "<f8"), ("y", "<f8")])
    rec["order"] = 1  # little endian
    rec["type"] = 0x20000001  # point, with SRID
    rec["srid"] = 4326
    rec["x"], rec["y"] = lon, lat
    return Column(rec.view(np.uint8).reshape(-1, 25), ~(np.isnan(lon) | np.isnan(lat)))


def _encode(columns: list[Column], start: int, stop: int) -> bytes:
    n = stop - start
    widths = [np.where(c.present[start:stop], c.data.shape[1], 0) for c in columns]
    row_len = 2 + sum(4 + w for w in widths)
    row_start = np.concatenate(([0], np.cumsum(row_len)[:-1]))
    buf = np.zeros(int(row_len.sum()), dtype=np.uint8)
    count = np.array([len(columns)], dtype=">i2").view(np.uint8)
    buf[row_start[:, None] + np.arange(2)] = count
    pos = row_start + 2
    for col, width in zip(columns, widths, strict=True):
        length = np.where(col.present[start:stop], col.data.shape[1], -1).astype(">i4")
        buf[pos[:, None] + np.arange(4)] = length.view(np.uint8).reshape(n, 4)
        pos = pos + 4
        rows = np.flatnonzero(col.present[start:stop])
        if rows.size:
            size = col.data.shape[1]
            buf[pos[rows, None] + np.arange(size)] = col.data[start:stop][rows]
        pos = pos + width
    return buf.tobytes()


def copy_binary(cur: psycopg.Cursor, table: str, names: list[str], columns: list[Column]) -> None:
    """COPY the rows into ``table`` (names are column names, in order)."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    total = len(columns[0].present)
    with cur.copy(statement) as copy:
        copy.write(HEADER)
        for start in range(0, total, CHUNK_ROWS):
            copy.write(_encode(columns, start, min(start + CHUNK_ROWS, total)))
        copy.write(TRAILER)


@contextmanager
def constraints_deferred_to_the_end(cur: psycopg.Cursor, table: str) -> Iterator[None]:
    """Drop a table's indexes and foreign keys for a bulk load, then build them again once.

    As pg_restore does: one index build and one set-based foreign-key check beat millions of
    per-row index insertions and trigger calls. Call inside a transaction.
    """
    cur.execute(
        """SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = %s::regclass AND contype IN ('p', 'f', 'u') ORDER BY contype = 'f', conname""",
        (table,),
    )
    constraints = cur.fetchall()
    cur.execute(
        """SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s
           AND indexname NOT IN (SELECT conname FROM pg_constraint
                                 WHERE conrelid = %s::regclass)""",
        (table, table),
    )
    indexes = cur.fetchall()
    for name, _ in constraints:
        cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            sql.Identifier(table), sql.Identifier(name)))
    for name, _ in indexes:
        cur.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    yield
    for _, definition in indexes:
        cur.execute(definition)
    for name, definition in constraints:  # keys first, then foreign keys
        cur.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} " + definition.replace("%", "%%")).format(
            sql.Identifier(table), sql.Identifier(name)))
