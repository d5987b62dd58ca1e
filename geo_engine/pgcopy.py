"""PostgreSQL binary COPY built with numpy: millions of rows without a Python loop per row.

Each column is fixed-width bytes or NULL per row (INSEE codes are always 5 bytes, a point's EWKB
25), which is what bulk placement writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

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
    present = np.asarray(values != None, dtype=bool)  # noqa: E711 (numpy elementwise)
    raw = np.where(present, values, "").astype(f"S{width}")
    return Column(raw.view(np.uint8).reshape(-1, width), present)


def bigint(values: npt.NDArray[np.int64]) -> Column:
    raw = np.asarray(values, dtype=">i8")
    return Column(raw.view(np.uint8).reshape(-1, 8), np.ones(raw.shape, dtype=bool))


def points_ewkb(lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]) -> Column:
    """EWKB points with SRID 4326; NaN coordinates give NULL."""
    rec = np.zeros(
        lon.shape,
        dtype=[("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"), ("y", "<f8")],
    )
    rec["order"] = 1  # little endian
    rec["type"] = 0x20000001  # point, with SRID
    rec["srid"] = 4326
    rec["x"], rec["y"] = lon, lat
    return Column(rec.view(np.uint8).reshape(-1, 25), ~(np.isnan(lon) | np.isnan(lat)))


def _encode(columns: list[Column], start: int, stop: int) -> list[npt.NDArray[Any]]:
    """Rows ``start:stop`` in COPY's binary tuple format, as packed arrays to send in turn
    (their buffers go to COPY as they are: no copy into one bytes object).

    Rows are grouped by which columns are NULL; within a group every row has the same layout,
    so the group is one packed structured array filled column by column. COPY does not care
    about row order.
    """
    present = np.stack([c.present[start:stop] for c in columns], axis=1)
    pattern = present.astype(np.int64) @ (1 << np.arange(len(columns), dtype=np.int64))
    out = []
    for key in np.unique(pattern):
        rows = np.flatnonzero(pattern == key) + start
        layout: list[tuple[Any, ...]] = [("count", ">i2")]
        for j, col in enumerate(columns):
            layout.append((f"len{j}", ">i4"))
            if key >> j & 1:
                layout.append((f"data{j}", "u1", (col.data.shape[1],)))
        packed = np.empty(rows.size, dtype=np.dtype(layout))
        packed["count"] = len(columns)
        for j, col in enumerate(columns):
            if key >> j & 1:
                packed[f"len{j}"] = col.data.shape[1]
                packed[f"data{j}"] = col.data[rows]
            else:
                packed[f"len{j}"] = -1
        out.append(packed)
    return out


def copy_binary(cur: psycopg.Cursor, table: str, names: list[str], columns: list[Column]) -> None:
    """COPY the rows into ``table`` (names are column names, in order)."""
    copy_binary_chunks(cur, table, names, [columns])


def copy_binary_chunks(
    cur: psycopg.Cursor, table: str, names: list[str], chunks: Iterable[list[Column]]
) -> None:
    """One COPY of every chunk's rows into ``table``; each chunk is the same columns for some
    rows. Chunks are produced while the previous ones are sent (a writer thread sends them), so
    work done to produce a chunk, e.g. placing its users, overlaps the server's COPY; an
    exception raised by ``chunks`` aborts the COPY."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    with cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
        copy.write(HEADER)
        for columns in chunks:
            total = len(columns[0].present)
            for start in range(0, total, CHUNK_ROWS):
                for packed in _encode(columns, start, min(start + CHUNK_ROWS, total)):
                    copy.write(packed.view(np.uint8).data)
        copy.write(TRAILER)


@contextmanager
def constraints_deferred_to_the_end(
    cur: psycopg.Cursor, table: str, foreign_keys_not_valid: bool = False
) -> Iterator[None]:
    """Drop a table's indexes and foreign keys for a bulk load, then build them again once.

    As pg_restore does: one index build and one set-based foreign-key check beat millions of
    per-row index insertions and trigger calls. Call inside a transaction.

    ``foreign_keys_not_valid``: the foreign keys come back ``NOT VALID``: enforced at once for
    every later write, but the loaded rows are not checked; only for loads whose rows are valid
    by construction, followed after commit by :func:`validate_constraints` (which then reads the
    table under a lock that blocks neither readers nor writers).
    """
    # The name is quoted as the statements below quote it (mixed case, spaces, ...), and the
    # table is then known by oid: its indexes are its own, not those of a namesake elsewhere.
    cur.execute("SELECT %s::regclass::oid", (sql.Identifier(table).as_string(cur),))
    row = cur.fetchone()
    assert row is not None
    oid = row[0]
    cur.execute(
        """SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = %s AND contype IN ('p', 'f', 'u')
           ORDER BY contype = 'f', conname""",
        (oid,),
    )
    constraints = cur.fetchall()
    # Room for one in-memory sort per index and one in-memory hash per foreign-key check.
    cur.execute("SET LOCAL maintenance_work_mem = '1GB'")
    cur.execute("SET LOCAL work_mem = '1GB'")
    cur.execute(
        """SELECT n.nspname, c.relname, pg_get_indexdef(i.indexrelid)
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE i.indrelid = %s AND NOT EXISTS (
               SELECT 1 FROM pg_constraint k WHERE k.conrelid = %s AND k.conindid = i.indexrelid)
           ORDER BY c.relname""",
        (oid, oid),
    )
    indexes = cur.fetchall()
    for name, _ in constraints:
        cur.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(table), sql.Identifier(name)
            )
        )
    for schema, name, _ in indexes:
        cur.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, name)))
    yield
    for _, _, definition in indexes:
        cur.execute(definition)
    for name, definition in constraints:  # keys first, then foreign keys
        # The definition is SQL text from pg_get_constraintdef, passed on verbatim: neither a
        # format string (braces) nor a query with parameters (percent signs).
        later = foreign_keys_not_valid and definition.startswith("FOREIGN KEY")
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
                sql.Identifier(table), sql.Identifier(name)
            )
            + sql.SQL(definition)
            + sql.SQL(" NOT VALID" if later else "")
        )


def validate_constraints(cur: psycopg.Cursor, table: str) -> list[str]:
    """Check the rows of ``table`` against its ``NOT VALID`` constraints (one set-based scan
    each, under SHARE UPDATE EXCLUSIVE: readers and writers go on); return their names.
    Raises the violation (e.g. ``ForeignKeyViolation``) of the first that a row breaks."""
    cur.execute(
        """SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND NOT convalidated
           ORDER BY conname""",
        (sql.Identifier(table).as_string(cur),),
    )
    names = [r[0] for r in cur.fetchall()]
    # Room for the in-memory hash of each check.
    cur.execute("SET LOCAL work_mem = '1GB'")
    for name in names:
        cur.execute(
            sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                sql.Identifier(table), sql.Identifier(name)
            )
        )
    return names
