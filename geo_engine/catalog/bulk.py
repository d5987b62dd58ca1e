"""Big catalogue writes: a table's secondary indexes and foreign keys built once, not per row.

Inserting a million contributions row by row into three GiST indexes, two B-trees and two
foreign-key triggers costs about ten times more than inserting them bare and then building each
index in one sorted pass and checking each foreign key with one join (bench/README.md,
"catalogue import"). :func:`indexes_built_once` does that when a write adds many rows compared
with what the table holds (a first load, the seed of a network), and nothing otherwise.

It runs in the caller's transaction: the indexes and keys are dropped and built again before
the caller commits, so another session never sees the table without them, and a rollback (or a
rollback to a savepoint) puts them back untouched. The price is the lock: ``DROP INDEX`` holds
an ``ACCESS EXCLUSIVE`` lock on the table until the commit, so readers of that table wait for
the import, and re-adding a foreign key blocks writes to the table it references
(``SHARE ROW EXCLUSIVE``, from its check until the commit). That is why the thresholds
(:class:`geo_engine.settings.CatalogSettings`) keep everyday imports, and every API write, on
the ordinary path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from geo_engine.settings import CatalogSettings

# Secondary indexes: neither the primary key nor a unique index nor one backing a constraint
# (those enforce rules the insert itself must respect, and foreign keys of other tables may
# depend on them).
SECONDARY_INDEXES = """
    SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
    FROM pg_index AS i
    WHERE i.indrelid = %s::regclass AND NOT i.indisunique AND NOT i.indisprimary
      AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
    ORDER BY 1
"""
FOREIGN_KEYS = """
    SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
    WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY 1
"""
# Memory for each index build (a GiST build of a million points sorts in memory with this).
BUILD_MEMORY = "512MB"


def worth_building_once(
    cur: psycopg.Cursor, table: str, new_rows: int, settings: CatalogSettings | None
) -> bool:
    """Whether adding ``new_rows`` rows to ``table`` should build its indexes once: at least
    ``settings.build_indexes_from_rows`` rows, and at least ``build_indexes_from_share`` times
    the rows it holds (counted up to the bound that decides, never the whole of a big table).
    ``settings`` None: never (the API's one-record writes)."""
    if settings is None or new_rows < settings.build_indexes_from_rows:
        return False
    bound = int(new_rows / settings.build_indexes_from_share)
    cur.execute(
        sql.SQL("SELECT count(*) FROM (SELECT FROM {} LIMIT %s) AS held").format(
            sql.Identifier(table)
        ),
        (bound + 1,),
    )
    row = cur.fetchone()
    return row is not None and int(row[0]) <= bound


@contextmanager
def indexes_built_once(cur: psycopg.Cursor, table: str, build: bool) -> Iterator[None]:
    """With ``build``: drop ``table``'s secondary indexes and its foreign keys, run the body
    (the bulk insert), then create them again as they were (same names and definitions, read
    from the catalogue, so a migration's new index is kept too) and ``ANALYZE`` the table.
    A row that breaks a foreign key fails the re-created constraint
    (``psycopg.errors.ForeignKeyViolation``); callers check references first and say which
    line. Without ``build`` the body runs alone."""
    if not build:
        yield
        return
    cur.execute(SECONDARY_INDEXES, (table,))
    indexes = cur.fetchall()
    cur.execute(FOREIGN_KEYS, (table,))
    keys = cur.fetchall()
    target = sql.Identifier(table)
    for name, _definition in indexes:
        cur.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(name)))
    for name, _definition in keys:
        cur.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(target, sql.Identifier(name))
        )
    yield
    cur.execute(sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(BUILD_MEMORY)))
    for _name, definition in indexes:
        cur.execute(sql.SQL(definition))
    for name, definition in keys:
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                target, sql.Identifier(name), sql.SQL(definition)
            )
        )
    cur.execute(sql.SQL("ANALYZE {}").format(target))
