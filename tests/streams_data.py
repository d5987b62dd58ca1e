"""Helpers of the stream tests: a migrated database with a few users and projects (no
territories needed: national projects), engagement events written to the outbox, counts."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

import psycopg

from geo_engine import db
from geo_engine.catalog import load as catalog_load
from geo_engine.jsonl import Line
from geo_engine.outbox import append
from geo_engine.settings import DatabaseSettings
from tests import api_data as data

USERS = tuple(range(1, 21))
ORG = 77
PROJECTS = (701, 702, 703)


def ground(make_database: Callable[..., DatabaseSettings]) -> DatabaseSettings:
    """A fresh migrated database with :data:`USERS`, one organisation and :data:`PROJECTS`
    (national, public), committed."""
    settings = make_database()
    with db.connect(settings) as conn:
        conn.execute("INSERT INTO app_user (id) SELECT unnest(%s::bigint[])", (list(USERS),))
        catalog_load.store_organisations(conn, [Line(1, data.organisation(ORG))], "test")
        catalog_load.store_projects(
            conn,
            [Line(i, data.project(p, ORG, data.national())) for i, p in enumerate(PROJECTS, 1)],
            "test",
        )
        conn.execute("DELETE FROM outbox")
        conn.commit()
    return settings


def clicks(conn: psycopg.Connection, n: int) -> None:
    """``n`` notification.clicked events in the outbox (users and projects in turn)."""
    for i in range(n):
        append(
            conn,
            "notification.clicked",
            user_id=USERS[i % len(USERS)],
            project_id=PROJECTS[i % len(PROJECTS)],
        )


def event_json(type_: str, **fields: object) -> bytes:
    """A stream entry's ``event`` field as the relay writes it."""
    import json
    from datetime import UTC, datetime

    body = {
        **fields,
        "event_id": str(uuid.uuid4()),
        "type": type_,
        "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    return json.dumps(body).encode()


def count(settings: DatabaseSettings, query: str, params: Sequence[object] = ()) -> int:
    with db.connect(settings) as conn:
        row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return int(row[0])


def append_follow(conn: psycopg.Connection) -> None:
    """One organisation.followed event (on the user stream)."""
    append(conn, "organisation.followed", organisation_id=ORG, user_id=USERS[0])


def many_clicks(conn: psycopg.Connection, n: int) -> None:
    """``n`` notification.clicked events in the outbox, in one statement."""
    conn.execute(
        """INSERT INTO outbox (id, type, version, payload)
           SELECT gen_random_uuid(), 'notification.clicked', 1,
                  jsonb_build_object('user_id', (i %% %(users)s) + 1,
                                     'project_id', (%(projects)s::int8[])[(i %% 3) + 1])
             FROM generate_series(0, %(n)s - 1) AS i""",
        {"n": n, "users": len(USERS), "projects": list(PROJECTS)},
    )
