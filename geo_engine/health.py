"""What the engine stands on, checked for real: PostGIS, the territories loaded, Redis, and how
far behind its primary a hot standby replays."""

from __future__ import annotations

from typing import Any

import psycopg
import redis

from geo_engine.settings import RedisSettings


def database_status(conn: psycopg.Connection) -> dict[str, Any]:
    """PostGIS version, the millésime in force and what is loaded."""
    row = conn.execute(
        """SELECT postgis_lib_version(),
                  (SELECT max(millesime) FROM geodata_release),
                  (SELECT count(*) FROM commune),
                  (SELECT count(*) FROM epci),
                  (SELECT count(*) FROM epci WHERE xxl),
                  (SELECT count(*) FROM app_user),
                  (SELECT count(*) FROM user_place WHERE commune_code IS NULL)"""
    ).fetchone()
    assert row is not None
    keys = ["postgis", "millesime", "communes", "epci", "epci_xxl", "users", "users_pending"]
    return dict(zip(keys, row, strict=True))


def redis_status(settings: RedisSettings) -> dict[str, Any]:
    """Redis answers, and which version it is."""
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2)
    try:
        info = client.info("server")
        return {"redis": info["redis_version"], "ping": bool(client.ping())}
    finally:
        client.close()


# On a hot standby: whether it is one, the last WAL position it replayed, and how far behind
# its primary's commits that is (0 when it has replayed all it received: a primary with no
# writes has nothing newer; the seconds since the last replayed commit would grow forever).
_STANDBY = """SELECT pg_is_in_recovery(),
                     pg_last_wal_replay_lsn()::text,
                     CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                          ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())
                     END::float8"""
_PRIMARY = "SELECT postgis_lib_version(), pg_current_wal_lsn()::text"


def lsn_bytes(lsn: str) -> int:
    """A WAL position (``'16/B374D848'``) as a byte offset."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def primary_position(conn: psycopg.Connection) -> tuple[str, str]:
    """The primary's PostGIS version and its current WAL position (an LSN, ``'0/3000148'``)."""
    row = conn.execute(_PRIMARY).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


def _standby(row: tuple[Any, ...] | None) -> dict[str, Any]:
    assert row is not None
    in_recovery, replay_lsn, lag_s = row
    return {
        "in_recovery": bool(in_recovery),
        "replay_lsn": replay_lsn,
        "lag_s": None if lag_s is None else round(float(lag_s), 3),
    }


async def standby_status(conn: psycopg.AsyncConnection[Any]) -> dict[str, Any]:
    """``in_recovery`` (false: the read URL names a primary, not a standby), ``replay_lsn`` (its
    last replayed WAL position, None on a primary) and ``lag_s`` (seconds its replay is behind
    the commits it has received; 0 when it has replayed them all)."""
    cur = await conn.execute(_STANDBY)
    return _standby(await cur.fetchone())


def standby_status_sync(conn: psycopg.Connection) -> dict[str, Any]:
    """:func:`standby_status` on a blocking connection (the command line)."""
    return _standby(conn.execute(_STANDBY).fetchone())


def replica_report(primary_lsn: str, standby: dict[str, Any]) -> dict[str, Any]:
    """``standby_status`` and ``behind_bytes``: WAL the primary wrote that the standby has not
    replayed yet (None when the read URL names no standby)."""
    replayed = standby["replay_lsn"]
    behind = None if replayed is None else max(0, lsn_bytes(primary_lsn) - lsn_bytes(replayed))
    return {
        "in_recovery": standby["in_recovery"],
        "lag_s": standby["lag_s"],
        "behind_bytes": behind,
    }
