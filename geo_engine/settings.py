"""Settings, one class per concern, read from the environment (prefix ``GEO_ENGINE_``) and ``.env``.

Nothing here is read at import: callers build a settings object and pass it in, so tests
can build their own without touching the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_folder(name: str) -> Path | None:
    """``../shared/<name>`` beside the working directory or the checkout, when it exists
    (a data set with its README.md): the default of the data folders' settings."""
    for candidate in (Path.cwd() / ".." / "shared" / name, _REPO_ROOT / ".." / "shared" / name):
        if (candidate / "README.md").is_file():
            return candidate.resolve()
    return None


def _default_geodata_dir() -> Path | None:
    return shared_folder("geodata")


class _Base(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GEO_ENGINE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )


class DatabaseSettings(_Base):
    """Where PostGIS is. ``make services`` writes ``GEO_ENGINE_DATABASE_URL`` into ``.env``, and
    ``make services-replica`` also ``GEO_ENGINE_READ_DATABASE_URL`` (a hot standby)."""

    database_url: str = Field(
        default="postgresql://geo_engine:geo_engine@127.0.0.1:55432/geo_engine",
        description="libpq URL of the PostGIS database (the primary: every write, the outbox)",
    )
    read_database_url: str | None = Field(
        default=None,
        description=(
            "libpq URL of a hot standby streaming from that server: the API's reads (map, "
            "tiles, territories, project pages) go there, to the database database_url names; "
            "unset or empty, they go to the primary"
        ),
    )
    connect_timeout_s: int = Field(
        default=3,
        ge=2,  # libpq's minimum: 1 would mean 2
        le=300,
        description="seconds a new database connection may take before it is given up",
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("GEO_ENGINE_DATABASE_URL must be a postgresql:// URL")
        return value

    @field_validator("read_database_url")
    @classmethod
    def _read_postgres_only(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("GEO_ENGINE_READ_DATABASE_URL must be a postgresql:// URL")
        return value

    @property
    def reads_url(self) -> str:
        """Where reads go: the standby when there is one, else the primary. The database is
        always the one ``database_url`` names (a standby holds all its primary's databases), so
        a settings object made for another database of the same server (a bench's, a copy)
        reads that database on the standby, never another one."""
        if self.read_database_url is None:
            return self.database_url
        standby = urlsplit(self.read_database_url)
        name = urlsplit(self.database_url).path
        return urlunsplit(standby._replace(path=name))

    @property
    def sqlalchemy_url(self) -> str:
        return "postgresql+psycopg://" + self.database_url.split("://", 1)[1]


class RedisSettings(_Base):
    redis_url: str = Field(default="redis://127.0.0.1:56379/0", description="Redis URL")


class GeoSettings(_Base):
    """Territories: where the real geography is, and the rules derived from it."""

    geodata_dir: Path | None = Field(
        default_factory=_default_geodata_dir,
        description="folder of the French geography data set (see shared/geodata/README.md)",
    )
    xxl_min_communes: int = Field(
        default=50, ge=1, description="an EPCI with at least this many member communes is XXL"
    )
    xxl_min_area_km2: float = Field(
        default=1000.0, gt=0, description="an EPCI at least this large (km²) is XXL"
    )
    subdivide_max_vertices: int = Field(
        default=64,
        ge=8,
        description="commune outlines are cut into pieces of at most this many vertices for locate",
    )

    def require_geodata_dir(self) -> Path:
        if self.geodata_dir is None:
            raise FileNotFoundError(
                "no geography data: set GEO_ENGINE_GEODATA_DIR to the shared/geodata folder"
            )
        if not self.geodata_dir.is_dir():
            raise FileNotFoundError(f"GEO_ENGINE_GEODATA_DIR={self.geodata_dir} is not a folder")
        return self.geodata_dir


class UserSettings(_Base):
    """How users' homes are kept."""

    home_precision_m: float = Field(
        default=100.0,
        ge=0,
        description=(
            "stored home points are snapped to a grid of about this many metres "
            "(0 keeps exact points); the exact point is never stored"
        ),
    )
    import_chunk_lines: int = Field(
        default=100_000,
        ge=1,
        description=(
            "`users import` reads, places and stages a file this many lines at a time: "
            "its memory is bounded by a chunk, whatever the file's size"
        ),
    )


class CatalogSettings(_Base):
    """How catalogue imports write big batches (``geo_engine/catalog/bulk.py``); variables
    ``GEO_ENGINE_CATALOG_*``."""

    model_config = SettingsConfigDict(
        env_prefix="GEO_ENGINE_CATALOG_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    build_indexes_from_rows: int = Field(
        default=50_000,
        ge=1,
        description=(
            "an import adding at least this many rows to a table drops its secondary indexes "
            "and foreign keys and builds them once at the end (when the share below holds too)"
        ),
    )
    build_indexes_from_share: float = Field(
        default=0.5,
        gt=0,
        description=(
            "… and adding at least this share of the rows the table already holds; meanwhile "
            "readers of that table wait for the import's commit"
        ),
    )


DEVELOPMENT_SECRET = "development-only-secret-change-me"  # noqa: S105 (refused outside development)


class ApiSettings(_Base):
    """The HTTP service: where it listens, how it checks tokens, its connection pools."""

    environment: Literal["development", "production"] = Field(
        default="development", description="`production` refuses the development JWT secret"
    )
    host: str = Field(default="127.0.0.1", description="address `geo-engine serve` listens on")
    port: int = Field(default=8000, ge=1, le=65535, description="port of the API and map page")
    workers: int = Field(default=2, ge=1, le=64, description="server processes")
    jwt_secret: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SECRET),
        description="HMAC secret of the bearer tokens (HS256); also signs pagination cursors",
    )
    pool_min_size: int = Field(default=2, ge=1, description="database connections kept per process")
    # A few connections per process: queries wait in the pool rather than as PostgreSQL
    # backends competing for the cores (on 2 cores, 4 per worker served 15% more than 16).
    pool_max_size: int = Field(default=4, ge=1, description="connection cap per process")
    hot_reads: bool = Field(
        default=True,
        description="answer plainly valid nearby and bbox requests without FastAPI's "
        "machinery (api/hot_reads.py); false sends them through the routes (the bench compares)",
    )
    # Request bounds, checked before anything is parsed (api/limits.py). The body bound leaves
    # room for the largest valid record (a 20,000-character description, a drawn area).
    max_body_bytes: int = Field(
        default=256 * 1024, ge=1024, description="request body bound in bytes (413 over it)"
    )
    max_url_bytes: int = Field(
        default=8 * 1024,
        ge=256,
        le=65_535,  # httptools cannot parse a longer request target anyway
        description="request target (path and query string) bound in bytes (414 over it)",
    )
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="bound on all request headers in bytes (431)"
    )
    pool_timeout_s: float = Field(
        default=1.5,
        gt=0,
        le=30,
        description=(
            "seconds a request waits for a database connection before it is answered 503 "
            "(the database is unreachable); also how long a lost connection is retried before "
            "the next request asks for a fresh one"
        ),
    )

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> ApiSettings:
        if self.environment == "production" and (
            self.jwt_secret.get_secret_value() == DEVELOPMENT_SECRET
            or len(self.jwt_secret.get_secret_value()) < 32
        ):
            raise ValueError(
                "GEO_ENGINE_JWT_SECRET must be set to a secret of at least 32 characters "
                "in production"
            )
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("GEO_ENGINE_POOL_MIN_SIZE is larger than GEO_ENGINE_POOL_MAX_SIZE")
        return self


class TileCacheSettings(_Base):
    """The public tile cache of each API process (api/tile_cache.py) and its invalidation
    channel on Redis, written by the ``tiles`` consumer group (consumers/tiles.py)."""

    tile_channel: str = Field(
        default="tiles.invalidate",
        min_length=1,
        description="Redis pub/sub channel of tile invalidations (a JSON message each)",
    )
    tile_cache_max_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=0,
        description="bytes of tiles kept per API process, least recently used dropped (0: off)",
    )
    tile_cache_ttl_s: float = Field(
        default=600.0,
        gt=0,
        description=(
            "seconds a cached tile is served at most: bounds staleness should an invalidation "
            "be lost while the channel looked connected"
        ),
    )
    tile_max_age_s: int = Field(
        default=60,
        ge=0,
        description="Cache-Control max-age of public tiles, for browsers and a CDN (seconds)",
    )
    tile_territories_poll_s: float = Field(
        default=10.0,
        gt=0,
        description="how often each API process reads the territories' version (geo load)",
    )
