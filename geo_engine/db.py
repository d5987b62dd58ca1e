"""Connections and schema migrations."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from geo_engine.settings import DatabaseSettings

if TYPE_CHECKING:
    from alembic.config import Config


def connect(settings: DatabaseSettings, *, autocommit: bool = False) -> psycopg.Connection:
    return psycopg.connect(
        settings.database_url, autocommit=autocommit, connect_timeout=settings.connect_timeout_s
    )


def alembic_config(settings: DatabaseSettings) -> Config:
    from alembic.config import Config  # alembic is slow to import; only migrations need it

    config = Config()
    config.set_main_option(
        "script_location", str(Path(str(resources.files("geo_engine"))) / "migrations")
    )
    config.set_main_option("sqlalchemy.url", settings.sqlalchemy_url.replace("%", "%%"))
    return config


def upgrade(settings: DatabaseSettings, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(settings), revision)


def load_sql(package: str, name: str) -> str:
    """Read a ``.sql`` file kept beside the module that runs it."""
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def upsert(table: str, key: str, columns: list[str]) -> sql.Composed:
    """Copy ``stage_<table>`` into ``table``, rewriting a row only when its content differs, so
    a second load of the same data changes nothing. Returns one row per row written, telling
    whether it was inserted (``xmax = 0``) or updated, and its key (``key``)."""
    ident = [sql.Identifier(c) for c in columns]
    return sql.SQL(
        """INSERT INTO {table} AS t ({key}, {cols}) SELECT {key}, {cols} FROM {stage}
           ON CONFLICT ({key}) DO UPDATE SET {sets}
           WHERE ({old}) IS DISTINCT FROM ({new})
           RETURNING (xmax = 0) AS inserted, {key} AS key"""
    ).format(
        table=sql.Identifier(table),
        stage=sql.Identifier(f"stage_{table}"),
        key=sql.Identifier(key),
        cols=sql.SQL(", ").join(ident),
        sets=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=c) for c in ident),
        old=sql.SQL(", ").join(sql.SQL("t.{}").format(c) for c in ident),
        new=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(c) for c in ident),
    )


def copy_rows(
    cur: psycopg.Cursor, table: str, columns: list[str], rows: Iterable[Sequence[Any]]
) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
