"""Erasure: ``DELETE /v1/users/{id}`` and the ``user.erased`` worker leave no row and no stream
entry naming the user.

Nothing here trusts the erasure's own list of tables: the tables come from
``information_schema`` (a new table fails :func:`test_every_table_is_covered_or_declared_free`
until erasure covers it or declares it user-free), the proof scans every integer, text, array
and JSON column of every table for the user's id, and the streams come from ``SCAN … TYPE
stream`` on the real Redis.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from faststream.redis.parser.binary import BinaryMessageFormatV1
from psycopg import sql

from consumers import erasure
from consumers.settings import StreamSettings
from contracts.errors import Unavailable
from contracts.events import UserErased
from geo_engine import db, outbox
from geo_engine.settings import DatabaseSettings, RedisSettings
from tests.api_data import (
    assert_problem,
    contribution,
    member,
    organisation,
    project,
    territories,
    write,
)
from tests.conftest import token_for

pytestmark = pytest.mark.geodata

# Ids no other column of the schema holds by chance (not a code, a count or a population).
GONE, KEPT, STAFF_GONE = 987_654_321_987, 987_654_321_988, 987_654_321_989
ORG, MAP = 31_337_001, 31_337_002
LYON = (4.8357, 45.7676)


def _tables(conn: psycopg.Connection) -> set[str]:
    """Every table of the schema but partitions (their parent stands for them)."""
    rows = conn.execute(
        """SELECT t.table_name FROM information_schema.tables AS t
           JOIN pg_class AS c ON c.relname = t.table_name
           JOIN pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = t.table_schema
           WHERE t.table_schema = 'public' AND t.table_type = 'BASE TABLE'
             AND NOT c.relispartition"""
    ).fetchall()
    return {r[0] for r in rows}


def test_every_table_is_covered_or_declared_free(conn: psycopg.Connection) -> None:
    tables = _tables(conn)
    covered, free = set(erasure.USER_COLUMNS), erasure.USER_FREE
    assert not covered & free
    assert tables - covered - free == set(), "tables erasure neither covers nor declares free"
    assert (covered | free) - tables == set(), "erasure names tables that do not exist"
    # Every column that refers to a user (a key to app_user, or named like one) is covered.
    user_columns = conn.execute(
        """SELECT c.table_name, c.column_name FROM information_schema.columns AS c
           WHERE c.table_schema = 'public' AND c.column_name IN ('user_id', 'author_id')
           UNION
           SELECT k.table_name, k.column_name
           FROM information_schema.referential_constraints AS r
           JOIN information_schema.key_column_usage AS k ON k.constraint_name = r.constraint_name
           JOIN information_schema.constraint_column_usage AS u
             ON u.constraint_name = r.unique_constraint_name
           WHERE u.table_name = 'app_user'"""
    ).fetchall()
    for table, column in user_columns:
        if table in tables:
            assert column in erasure.USER_COLUMNS.get(table, ()), (table, column)


def _mentions(settings: DatabaseSettings, user_id: int) -> dict[str, int]:
    """Rows naming ``user_id`` per table: every integer column equal to it, every text, array
    and JSON column holding it as a whole number, in every table of the schema."""
    found: dict[str, int] = {}
    with db.connect(settings) as conn:
        tables = _tables(conn)
        columns = conn.execute(
            """SELECT table_name, column_name, data_type FROM information_schema.columns
               WHERE table_schema = 'public'
                 AND data_type IN ('bigint', 'integer', 'text', 'jsonb', 'ARRAY')"""
        ).fetchall()
        for table, column, data_type in columns:
            if table not in tables:
                continue
            ident = sql.Identifier(column)
            test = (
                sql.SQL("{} = %(id)s").format(ident)
                if data_type in ("bigint", "integer")
                else sql.SQL("{}::text ~ %(pattern)s").format(ident)
            )
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE {}").format(sql.Identifier(table), test),
                {"id": user_id, "pattern": f"(^|[^0-9]){user_id}([^0-9]|$)"},
            ).fetchone()
            assert row is not None
            if row[0]:
                found[f"{table}.{column}"] = found.get(f"{table}.{column}", 0) + int(row[0])
    return found


def _erased_events(settings: DatabaseSettings, user_id: int) -> int:
    with db.connect(settings) as conn:
        row = conn.execute(
            "SELECT count(*) FROM outbox WHERE type = 'user.erased' AND payload->>'user_id' = %s",
            (str(user_id),),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _give_everything(settings: DatabaseSettings, user_id: int) -> None:
    """A row naming ``user_id`` in every table that can hold one, and events naming them."""
    write(
        settings,
        members=[member(ORG, user_id, "agent")],
        contributions=[
            contribution(user_id % 1_000_000 + 1, MAP, LYON, title="Banc", author_id=user_id)
        ],
    )
    with db.connect(settings) as conn:
        conn.execute(
            "INSERT INTO user_place (user_id, commune_code) VALUES (%s, '69123')", (user_id,)
        )
        conn.execute(
            "INSERT INTO follow (user_id, organisation_id) VALUES (%s, %s)", (user_id, ORG)
        )
        conn.execute(
            "INSERT INTO engagement (user_id, project_id, kind) VALUES (%s, %s, 'click')",
            (user_id, MAP),
        )
        conn.execute(
            """INSERT INTO recommendation_feedback (user_id, kind, project_id)
               VALUES (%s, 'not_interested', %s)""",
            (user_id, MAP),
        )
        conn.execute(
            """INSERT INTO inbox (user_id, project_id, kind, level, reason)
               VALUES (%s, %s, 'published', 0, 'Dans votre commune')""",
            (user_id, MAP),
        )
        conn.execute(
            """INSERT INTO mail_delivery (key, user_id, kind, message_id)
               VALUES (%(key)s, %(u)s, 'digest', %(mid)s)""",
            {
                "key": f"digest:{user_id}:daily:2026-11-30",
                "u": user_id,
                "mid": f"<digest.{user_id}.2026-11-30@geo-engine>",
            },
        )
        conn.execute(
            """INSERT INTO digest (user_id, frequency, period_start)
               VALUES (%s, 'daily', '2026-11-30')""",
            (user_id,),
        )
        conn.execute(
            """INSERT INTO engagement_event (event_id, user_id, kind, project_id, notification,
                                             occurred_at)
               VALUES (gen_random_uuid(), %(u)s, 'clicked', %(p)s, %(n)s, now())""",
            {"u": user_id, "p": MAP, "n": f"digest:{user_id}:daily:2026-11-30"},
        )
        outbox.append(conn, "user.registered", user_id=user_id)
        outbox.append(conn, "notification.clicked", user_id=user_id, project_id=MAP)
        conn.commit()


@pytest.fixture(scope="module")
def world(api_db: DatabaseSettings) -> DatabaseSettings:
    write(
        api_db,
        users=[GONE, KEPT, STAFF_GONE],
        organisations=[organisation(ORG, "Ville de Lyon")],
        projects=[
            project(
                MAP,
                ORG,
                territories(("commune", "69123")),
                tool="carte_participative",
                location=LYON,
            )
        ],
    )
    _give_everything(api_db, GONE)
    _give_everything(api_db, KEPT)
    return api_db


@pytest.fixture
def streams() -> Iterator[tuple[redis.Redis, str]]:
    """The shared Redis, with streams of a prefix of this test's own, deleted afterwards."""
    client = redis.Redis.from_url(RedisSettings().redis_url)
    prefix = f"test-erasure-{uuid.uuid4().hex[:8]}"
    try:
        yield client, prefix
    finally:
        for key in client.scan_iter(match=f"{prefix}.*", _type="stream"):
            client.delete(key)
        client.close()


def _faststream_entry(payload: dict[str, object]) -> bytes:
    """An entry's ``__data__`` as FastStream's binary message format writes it."""
    return asyncio.run(
        BinaryMessageFormatV1.encode(
            message=payload, reply_to=None, headers=None, correlation_id="c"
        )
    )


def _fill(client: redis.Redis, prefix: str) -> None:
    """Entries naming GONE or KEPT in the shapes a stream may hold them, on four streams,
    with enough entries on one that the scan takes several rounds."""
    pipe = client.pipeline()
    for i in range(2 * erasure.SCAN_COUNT + 10):
        pipe.xadd(
            f"{prefix}.engagement",
            {"type": "notification.opened", "user_id": str(GONE if i % 2 else KEPT)},
        )
    pipe.execute()
    for user in (GONE, KEPT):
        registered = {"type": "user.registered", "user_id": user, "event_id": str(uuid.uuid4())}
        client.xadd(f"{prefix}.user", {"__data__": _faststream_entry(registered)})
        created = {"type": "contribution.created", "author_id": user, "project_id": MAP}
        client.xadd(f"{prefix}.project", {"__data__": json.dumps(created)})
        original = json.dumps({"data": json.dumps(registered), "headers": {}})
        client.xadd(f"{prefix}.dead", {"event": original, "error": "boom", "deliveries": "5"})
    client.xadd(f"{prefix}.project", {"type": "project.published", "project_id": str(GONE)})
    erased = {"type": "user.erased", "user_id": GONE, "event_id": str(uuid.uuid4())}
    client.xadd(f"{prefix}.user", {"__data__": _faststream_entry(erased)})


def _stream_mentions(client: redis.Redis, prefix: str, user_id: int) -> dict[str, int]:
    found: dict[str, int] = {}
    for key in client.scan_iter(match=f"{prefix}.*", _type="stream"):
        entries = client.xrange(key)
        named = sum(1 for _id, fields in entries if erasure.names_user(fields, [user_id]))
        if named:
            found[key.decode()] = named
    return found


def test_delete_forgets_the_user_everywhere(
    client: TestClient, world: DatabaseSettings, streams: tuple[redis.Redis, str]
) -> None:
    before, kept_rows = _mentions(world, GONE), _mentions(world, KEPT)
    assert len({k.split(".")[0] for k in before}) >= 12, before  # the scan can see them
    assert_problem(client.delete(f"/v1/users/{GONE}"), 401)
    refused = assert_problem(client.delete(f"/v1/users/{GONE}", headers=token_for(KEPT)), 404)
    missing = assert_problem(client.delete("/v1/users/12345", headers=token_for(12345)), 404)
    assert refused["detail"] == missing["detail"]
    assert _mentions(world, GONE) == before

    answer = client.delete(f"/v1/users/{GONE}", headers=token_for(GONE))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"written": 1, "id": GONE}
    # What remains is the user.erased event: an id, for the consumers, and nothing else.
    assert _mentions(world, GONE) == {"outbox.payload": 1}
    assert _erased_events(world, GONE) == 1
    assert _mentions(world, KEPT) == kept_rows
    with db.connect(world) as conn:
        kept = conn.execute(
            "SELECT author_id, title FROM contribution WHERE id = %s", (GONE % 1_000_000 + 1,)
        ).fetchone()
    assert kept == (None, "Banc")  # the contribution stays, anonymised
    assert_problem(client.delete(f"/v1/users/{GONE}", headers=token_for(GONE)), 404)
    by_staff = client.delete(f"/v1/users/{STAFF_GONE}", headers=token_for(1, staff=True))
    assert by_staff.json() == {"written": 1, "id": STAFF_GONE}
    assert _mentions(world, STAFF_GONE) == {"outbox.payload": 1}

    # An in-flight consumer writes after the request; the stream holds entries naming them.
    client_redis, prefix = streams
    with db.connect(world) as conn:
        conn.execute(
            """INSERT INTO inbox (user_id, project_id, kind, level, reason)
               VALUES (%s, %s, 'results', 0, 'Dans votre commune')""",
            (GONE, MAP),
        )
        conn.commit()
    _fill(client_redis, prefix)
    named_before = _stream_mentions(client_redis, prefix, GONE)
    assert set(named_before) == {f"{prefix}.{s}" for s in ("engagement", "user", "project", "dead")}
    kept_before = _stream_mentions(client_redis, prefix, KEPT)

    worker = erasure.worker(client_redis, StreamSettings(stream_prefix=prefix))
    assert (worker.name, worker.stream, worker.types) == ("erasure", "user", {"user.erased"})
    event = UserErased(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), user_id=GONE)
    for _ in range(2):  # a redelivery finds nothing more to do
        with db.connect(world) as conn, conn.transaction():
            worker.handle(conn, [event])
        assert _mentions(world, GONE) == {"outbox.payload": 1}
        assert _stream_mentions(client_redis, prefix, GONE) == {}
        assert _stream_mentions(client_redis, prefix, KEPT) == kept_before
    # The project whose *id* happens to be the user's number is not the user: it stays.
    entries = client_redis.xrange(f"{prefix}.project")
    assert any(fields.get(b"type") == b"project.published" for _id, fields in entries)
    # The user.erased entry stays on the user stream for the other consumer groups.
    assert len(client_redis.xrange(f"{prefix}.user")) == 2  # KEPT's registration, the erasure


def test_redis_unreachable_is_retried_and_rolls_the_rows_back(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO app_user (id) VALUES (%s)", (GONE,))
    nowhere = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    worker = erasure.worker(nowhere, StreamSettings(stream_prefix="test-erasure-nowhere"))
    event = UserErased(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), user_id=GONE)
    refused = pytest.raises(Unavailable, match="Redis unreachable while erasing stream entries")
    with refused, conn.transaction():
        worker.handle(conn, [event])
    assert conn.execute("SELECT count(*) FROM app_user WHERE id = %s", (GONE,)).fetchone() == (1,)
