"""Erasure: a user asked to be forgotten (``DELETE /v1/users/{id}``, or a ``user.erased``
event), and every table and stream the engine keeps forgets them.

In the request's one transaction (:func:`erase_user`) every row naming the user is deleted
from the tables of :data:`USER_COLUMNS`, but for two choices:

- a contribution is a public point on a participatory map about a place, not about its
  author: it stays, its ``author_id`` set to null (as imported anonymous ones are);
- an outbox event naming the user as ``user_id`` is deleted (published or not: nobody needs
  news of a user who is gone); one naming them as ``author_id`` keeps its contribution's news
  with ``author_id`` null.

Then ``user.erased`` is written. It names the user by id and nothing else; it is the one record
kept (in the outbox and on the ``user`` stream, until trimmed), because it is what tells every
consumer group to forget the user.

The erasure worker (:func:`worker`, group ``erasure`` on the ``user`` stream) then removes what
remains asynchronously: it runs the same deletes again (rows an in-flight consumer wrote after
the request's transaction, e.g. an inbox row of a fan-out that read the audience before), and
deletes (``XDEL``) every stream entry whose payload names the user on every
``<prefix>.*`` stream, the dead letters included, ``user.erased`` entries excepted. Both are
idempotent: a redelivered ``user.erased`` finds nothing more to do.

Every table of the schema is either in :data:`USER_COLUMNS` or declared user-free in
:data:`USER_FREE`; ``tests/test_erasure.py`` lists the tables from ``information_schema`` and
fails on a table in neither, so a table added later is covered or declared.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

import nats.errors
import psycopg
import redis
from faststream.redis.parser.binary import BinaryMessageFormatV1
from psycopg import sql

from consumers.jetstream import JetStreamSink
from consumers.settings import StreamSettings
from consumers.worker import Worker
from contracts.errors import Unavailable
from contracts.events import Event, UserErased
from geo_engine import outbox

# Table -> the columns holding a user id (app_user.id). Partitions follow their parent.
USER_COLUMNS: dict[str, tuple[str, ...]] = {
    "user_place": ("user_id",),
    "organisation_member": ("user_id",),
    "follow": ("user_id",),
    "engagement": ("user_id",),
    "recommendation_feedback": ("user_id",),
    "inbox": ("user_id",),
    "mail_delivery": ("user_id",),
    "digest": ("user_id",),
    "engagement_event": ("user_id",),
    "experiment_exposure": ("user_id",),
    "contribution": ("author_id",),  # kept, anonymised (see above)
    "outbox": ("payload",),  # events naming the user (see above)
    "app_user": ("id",),  # last: the others may refer to it
}
# Tables that hold no user: territories, the catalogue, meetings, bookkeeping.
USER_FREE: frozenset[str] = frozenset(
    {
        "alembic_version",
        "spatial_ref_sys",
        "geodata_release",
        "region",
        "departement",
        "epci",
        "commune",
        "commune_piece",
        "commune_former_code",
        "arrondissement",
        "postal_code",
        "organisation",
        "project",
        "project_territory",
        "project_area",
        "meeting",
        "consumed_event",  # consumer and event id only
        "experiment",  # the growth team's experiments: variants, not people
        "tile_place",  # where a project or contribution was last drawn: ids and points
    }
)
# Keys of an event's payload that hold a user id.
USER_KEYS = ("user_id", "author_id")
ANONYMISED = frozenset({"contribution"})
SCAN_COUNT = 1_000  # entries per XRANGE round


def _delete_rows(conn: psycopg.Connection, user_ids: Sequence[int]) -> dict[str, int]:
    """Every row naming one of ``user_ids`` (set-wise, one statement per table); rows
    touched per table."""
    counts: dict[str, int] = {}
    for table, columns in USER_COLUMNS.items():
        name = sql.Identifier(table)
        if table == "outbox":
            cur = conn.execute(
                """WITH scrubbed AS (
                       UPDATE outbox SET payload = jsonb_set(payload, '{author_id}', 'null')
                       WHERE payload->>'author_id' = ANY(%(ids)s::text[]) RETURNING 1
                   ), gone AS (
                       DELETE FROM outbox
                       WHERE payload->>'user_id' = ANY(%(ids)s::text[])
                         AND type <> 'user.erased'
                       RETURNING 1
                   )
                   SELECT (SELECT count(*) FROM scrubbed) + (SELECT count(*) FROM gone)""",
                {"ids": [str(i) for i in user_ids]},
            )
            row = cur.fetchone()
            counts[table] = int(row[0]) if row else 0
            continue
        for column in columns:
            if table in ANONYMISED:
                statement = sql.SQL("UPDATE {t} SET {c} = NULL WHERE {c} = ANY(%s)")
            else:
                statement = sql.SQL("DELETE FROM {t} WHERE {c} = ANY(%s)")
            cur = conn.execute(
                statement.format(t=name, c=sql.Identifier(column)), (list(user_ids),)
            )
            counts[table] = counts.get(table, 0) + cur.rowcount
    return counts


def erase_user(conn: psycopg.Connection, user_id: int) -> bool:
    """Forget a user in one transaction and write ``user.erased``; False (and nothing
    written) when there is no such user."""
    with conn.transaction():
        found = conn.execute(
            "SELECT 1 FROM app_user WHERE id = %s FOR UPDATE", (user_id,)
        ).fetchone()
        if found is None:
            return False
        _delete_rows(conn, [user_id])
        outbox.append(conn, "user.erased", user_id=user_id)
    return True


# --- streams ---------------------------------------------------------------------------------


def _decoded(value: Any) -> Any:
    """A stream field or a JSON string as what it holds: FastStream's binary envelope opened,
    JSON parsed (also when nested in a string, as a dead letter keeps the original entry);
    anything else as it is."""
    if isinstance(value, bytes):
        if value.startswith(BinaryMessageFormatV1.IDENTITY_HEADER):
            value = BinaryMessageFormatV1.parse(value)[0]
        try:
            value = value.decode()
        except UnicodeDecodeError:
            return None
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``value``, nested ones included (strings holding JSON decoded)."""
    value = _decoded(value)
    if isinstance(value, dict):
        yield value
        for inner in value.values():
            yield from _objects(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _objects(inner)


def names_user(fields: dict[bytes, bytes], user_ids: Iterable[int]) -> bool:
    """Whether a stream entry names one of ``user_ids`` (as ``user_id`` or ``author_id``, at
    any depth), other than in a ``user.erased`` event."""
    wanted = {str(i) for i in user_ids}
    entry = {k.decode(errors="replace"): _decoded(v) for k, v in fields.items()}
    for obj in _objects(entry):
        if obj.get("type") == UserErased.model_fields["type"].default:
            continue
        if any(str(obj.get(key)) in wanted for key in USER_KEYS if obj.get(key) is not None):
            return True
    return False


def scrub_streams(client: redis.Redis, prefix: str, user_ids: Sequence[int]) -> int:
    """``XDEL`` every entry naming one of ``user_ids`` on every stream ``<prefix>.*``
    (``SCAN … TYPE stream``, then ``XRANGE`` by rounds of :data:`SCAN_COUNT`), and their last
    errors; returns the entries deleted. An entry pending in a group is deleted too: the group
    then reads it as gone."""
    deleted = 0
    for key in client.scan_iter(match=f"{prefix}.*", _type="stream"):
        start = "-"
        while True:
            # redis-py's types cover its async client too; the sync one answers this list.
            entries = cast(
                "list[tuple[bytes, dict[bytes, bytes]]]",
                client.xrange(key, min=start, max="+", count=SCAN_COUNT),
            )
            doomed = [entry_id for entry_id, fields in entries if names_user(fields, user_ids)]
            if doomed:
                deleted += client.xdel(key, *doomed)
                # The runtime's last errors of those entries (``<prefix>.errors``, fields
                # ``<group>/<entry id>``) may quote them too.
                groups = [g["name"].decode() for g in client.xinfo_groups(key)]
                errors = [f"{g}/{i.decode()}" for g in groups for i in doomed]
                if errors:
                    client.hdel(f"{prefix}.errors", *errors)
            if len(entries) < SCAN_COUNT:
                break
            last = entries[-1][0].decode()
            start = "(" + last  # exclusive: the next round starts after the last one read
    return deleted


def worker(client: redis.Redis | JetStreamSink, settings: StreamSettings) -> Worker:
    """The ``erasure`` consumer group on the ``user`` stream: for a batch of ``user.erased``,
    the rows written after each erasure (same deletes, set-wise) and the stream entries
    naming those users (on Redis, or the messages on JetStream when ``client`` is its sink)."""

    def handle(conn: psycopg.Connection, events: Sequence[Event]) -> None:
        user_ids = sorted({e.user_id for e in events if isinstance(e, UserErased)})
        if not user_ids:
            return
        _delete_rows(conn, user_ids)
        if isinstance(client, JetStreamSink):
            try:
                client.scrub(user_ids, names_user)
            except (nats.errors.Error, TimeoutError, OSError) as exc:
                raise Unavailable(f"NATS unreachable while erasing messages: {exc}") from exc
            return
        try:
            scrub_streams(client, settings.stream_prefix, user_ids)
        except redis.RedisError as exc:
            # Retried (Unavailable): the rows' deletes roll back with it and run again.
            raise Unavailable(f"Redis unreachable while erasing stream entries: {exc}") from exc

    return Worker(
        name="erasure",
        stream="user",
        types=frozenset({UserErased.model_fields["type"].default}),
        handle=handle,
    )
