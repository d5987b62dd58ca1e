"""The transactional outbox: events inserted by the statement that makes the change, set-wise.

A write announces itself by inserting rows into ``outbox`` in its own transaction, so an event
exists exactly when its change was committed. Bulk writes derive their events from the same
rows they change (``RETURNING`` of the upsert, in a data-modifying CTE): one ``INSERT … SELECT``
for a whole import, never a Python loop per row. Event shapes are in ``contracts/events.py``;
a type the contracts do not know fails the insert (its version would be NULL).
"""

from __future__ import annotations

from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from contracts.events import EVENT_TYPES, Event, from_outbox_row


def _version_case() -> str:
    arms = " ".join(
        f"WHEN '{name}' THEN {model.model_fields['version'].default}"
        for name, model in sorted(EVENT_TYPES.items())
    )
    return f"CASE e.type {arms} END"


def insert_events(source: str) -> str:
    """SQL inserting one outbox row per row of ``source``, a FROM item (a CTE's name, or a
    parenthesised query) yielding ``type text, payload jsonb``. Ids are drawn by PostgreSQL;
    ``created_at`` is the transaction's time. Prefix it with ``WITH …`` to turn the rows a
    write returned into events in the same statement."""
    return (
        "INSERT INTO outbox (id, type, version, payload) "
        f"SELECT gen_random_uuid(), e.type, {_version_case()}, e.payload FROM {source} AS e"
    )


def append(conn: psycopg.Connection, type_: str, **ids: int | None) -> None:
    """One event of ``type_`` with these ids, in the caller's transaction."""
    conn.execute(
        insert_events("(SELECT %s::text AS type, %s::jsonb AS payload)"),
        (type_, Jsonb(ids)),
    )


def read_events(conn: psycopg.Connection) -> list[Event]:
    """Every outbox row as its event model, in the order they were written."""
    rows = conn.execute(
        "SELECT id, type, version, payload, created_at FROM outbox ORDER BY created_at, type, id"
    ).fetchall()
    events = []
    for event_id, type_, version, payload, created_at in rows:
        assert isinstance(event_id, UUID)
        events.append(from_outbox_row(event_id, type_, version, payload, created_at))
    return events
