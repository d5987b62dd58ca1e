"""Connection pools that live through a database restart.

While PostgreSQL cannot be reached, a caller waits for a connection at most
``pool_timeout_s`` and gets :class:`~contracts.errors.Unavailable` (503 with ``Retry-After`` in
the API, exit code 75 on the command line), never a hang nor a broken connection's 500.
Once it is back, no caller sees an error:

- a read is idempotent: when the pooled connection it got turns out broken (the server
  restarted since it was opened), every idle connection is checked, the broken ones are
  replaced, and the read runs once more. Reads are not checked before use: that would be one
  more round trip (about 0.16 ms here) on every request of the hot paths.
- a write is not retried (it may have been applied), so its connection is checked before use;
  the first broken one found has every idle connection checked and replaced.
- a lost connection is retried only for ``pool_timeout_s`` (psycopg_pool's default is five
  minutes with a backoff doubling from one second, which left the pool asleep for seconds after
  the server was back); after that the next request asks for a fresh connection at once.

With ``GEO_ENGINE_READ_DATABASE_URL`` set, the read pool connects to that hot standby and the
write pool stays on the primary. A standby cancels a query whose rows its replay must remove
("conflict with recovery", SQLSTATE 40001): such a read runs once more too. A standby that
cannot be reached answers like a primary that cannot: 503 with ``Retry-After`` (no fall back to
the primary, which is sized for the writes and would take the whole read load at once).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from contracts.errors import Unavailable
from geo_engine.settings import ApiSettings, DatabaseSettings

T = TypeVar("T")
RETRY_AFTER_S = 2
# SQLSTATEs that say the server went away or is not ready, not that the statement is wrong:
# class 08 (connection exception), admin_shutdown, crash_shutdown, cannot_connect_now.
_SERVER_GONE = ("57P01", "57P02", "57P03")
# What a hot standby answers when its replay needs what a query reads: serialization_failure
# (rows or a lock) or deadlock_detected (a buffer pin). A read-only query sees neither on a
# primary in autocommit.
_RECOVERY_CONFLICT = ("40001", "40P01")


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is unreachable or the connection broke (as opposed to
    an error in the statement, a canceled query or a constraint violation)."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    # No SQLSTATE: raised by the client itself (refused, reset, server closed the connection).
    return state is None or state.startswith("08") or state in _SERVER_GONE


def recovery_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is a hot standby canceling a query for its replay (run it again)."""
    return isinstance(exc, psycopg.OperationalError) and exc.sqlstate in _RECOVERY_CONFLICT


def database_unavailable() -> Unavailable:
    """What a caller of the API is told while the database cannot be reached (no address, no
    port, no driver message: those are the operator's, in the log)."""
    return Unavailable(
        f"the database is unreachable right now; retry in {RETRY_AFTER_S} seconds",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


class ReadPool(AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]]):
    """The API's pool for reads (autocommit connections): a bounded wait, then Unavailable."""

    async def getconn(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 (the signature of the method overridden)
    ) -> psycopg.AsyncConnection[TupleRow]:
        try:
            return await super().getconn(timeout)
        except PoolTimeout as exc:
            raise database_unavailable() from exc


class WritePool(ConnectionPool[psycopg.Connection[TupleRow]]):
    """The API's pool for writes: a bounded wait, then Unavailable; connections checked."""

    def getconn(self, timeout: float | None = None) -> psycopg.Connection[TupleRow]:
        conn = self._get(timeout)
        try:
            self.check_connection(conn)
        except psycopg.Error:
            self.putconn(conn)  # broken: the pool closes it and asks for a new one
            self.check()  # its idle siblings are likely broken too (a restart breaks them all)
            conn = self._get(timeout)
            try:
                self.check_connection(conn)
            except psycopg.Error as exc:  # a fresh connection broken: the server went away again
                self.putconn(conn)
                raise database_unavailable() from exc
        return conn

    def _get(self, timeout: float | None) -> psycopg.Connection[TupleRow]:
        try:
            return super().getconn(timeout)
        except PoolTimeout as exc:
            raise database_unavailable() from exc


def read_pool(database: DatabaseSettings, api: ApiSettings) -> ReadPool:
    """On the standby when there is one (``database.reads_url``). Not opened yet
    (``await pool.open()``): autocommit, reads need no transaction."""
    return ReadPool(
        database.reads_url,
        min_size=api.pool_min_size,
        max_size=api.pool_max_size,
        kwargs={"autocommit": True, "connect_timeout": database.connect_timeout_s},
        timeout=api.pool_timeout_s,
        reconnect_timeout=api.pool_timeout_s,
        open=False,
    )


def write_pool(database: DatabaseSettings, api: ApiSettings) -> WritePool:
    """Not opened yet (``pool.open()``): each write is one transaction."""
    return WritePool(
        database.database_url,
        min_size=1,
        max_size=4,
        kwargs={"connect_timeout": database.connect_timeout_s},
        timeout=api.pool_timeout_s,
        reconnect_timeout=api.pool_timeout_s,
        open=False,
    )


async def read(
    pool: AsyncConnectionPool, work: Callable[[psycopg.AsyncConnection[TupleRow]], Awaitable[T]]
) -> T:
    """``await work(connection)``, an idempotent read, run once more on a fresh connection when
    the pooled one was broken, or when a hot standby canceled it for its replay. Unavailable
    when the database cannot be reached (or the standby canceled it twice)."""
    try:
        async with pool.connection() as conn:
            return await work(conn)
    except psycopg.OperationalError as exc:
        lost = connection_lost(exc)
        if not lost and not recovery_conflict(exc):
            raise
    if lost:
        await pool.check()  # replace every broken idle connection, not only the one just met
    try:
        async with pool.connection() as conn:
            return await work(conn)
    except psycopg.OperationalError as exc:
        if connection_lost(exc) or recovery_conflict(exc):
            raise database_unavailable() from exc
        raise
