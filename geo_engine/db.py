"""Connections and schema migrations."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from geo_engine.settings import DatabaseSettings

if TYPE_CHECKING:
    from alembic.config import Config


def connect(settings: DatabaseSettings, *, autocommit: bool = False) -> psycopg.Connection:
    return psycopg.connect(settings.database_url, autocommit=autocommit)


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
