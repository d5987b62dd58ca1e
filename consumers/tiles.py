"""The ``tiles`` consumer group: from project, contribution and organisation events to the
public tiles they make stale, published on the tile channel for every API process's cache
(api/tile_cache.py; the message is geo_engine/tile_keys.py's).

For a batch, one statement (``tiles_places.sql``) reads where each project or contribution is
now and where this group last saw it (``tile_place``, which it then brings up to date): a
project created, moved, edited, made private or public, or deleted stales the tiles holding its
old and new place at every zoom; a contribution those from zoom 14 (where the layer carries
them); a change of visibility also the tiles of the project's contributions; a renamed
organisation those of its projects (the tiles name it). Handling an event twice publishes the
same invalidation twice, which drops nothing more. The message is published before the
transaction commits: if the commit fails, the event is handled again.

Each message carries the primary's WAL position read when the handler starts (past the commit
of every event it handles: an event reaches the stream only once committed): an API process
reading its tiles from a hot standby keeps none read before the standby replayed that far.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
import redis

from consumers.worker import Worker
from contracts.errors import Unavailable
from contracts.events import (
    ContributionCreated,
    ContributionUpdated,
    Event,
    OrganisationUpdated,
    ProjectMadePrivate,
    ProjectMadePublic,
    ProjectPublished,
    ProjectUpdated,
)
from geo_engine import tile_keys
from geo_engine.db import load_sql
from geo_engine.settings import TileCacheSettings

PLACES = load_sql("consumers", "tiles_places.sql")

#: Tiles per message, so that one message stays a few hundred kilobytes at most.
CHUNK = 10_000

_TYPES = (
    ProjectPublished,
    ProjectUpdated,
    ProjectMadePrivate,
    ProjectMadePublic,
    ContributionCreated,
    ContributionUpdated,
    OrganisationUpdated,
)


def stale_tiles(conn: psycopg.Connection, events: Sequence[Event]) -> set[tile_keys.Tile]:
    """The projects layer's tiles that ``events`` make stale; updates ``tile_place`` in the
    caller's transaction."""
    projects: set[int] = set()
    hidden: set[int] = set()
    contributions: set[int] = set()
    organisations: set[int] = set()
    for event in events:
        if isinstance(event, ProjectMadePrivate | ProjectMadePublic):
            hidden.add(event.project_id)
        if isinstance(
            event, ProjectPublished | ProjectUpdated | ProjectMadePrivate | ProjectMadePublic
        ):
            projects.add(event.project_id)
        elif isinstance(event, ContributionCreated | ContributionUpdated):
            contributions.add(event.contribution_id)
        elif isinstance(event, OrganisationUpdated):
            organisations.add(event.organisation_id)
    rows = conn.execute(
        PLACES,
        {
            "projects": sorted(projects),
            "organisations": sorted(organisations),
            "hidden": sorted(hidden),
            "contributions": sorted(contributions),
        },
    ).fetchall()
    tiles: set[tile_keys.Tile] = set()
    every_zoom = range(tile_keys.MAX_ZOOM + 1)
    street_zooms = range(tile_keys.CONTRIBUTIONS_FROM_ZOOM, tile_keys.MAX_ZOOM + 1)
    for kind, x, y in rows:
        tiles |= tile_keys.covering(x, y, every_zoom if kind == "project" else street_zooms)
    return tiles


def wal_position(conn: psycopg.Connection) -> int:
    """The primary's WAL position (bytes) now: past every commit ``conn`` can see."""
    row = conn.execute(tile_keys.PRIMARY_POSITION).fetchone()
    assert row is not None
    return int(row[0])


def publish(
    client: redis.Redis, channel: str, tiles: set[tile_keys.Tile], position: int | None = None
) -> int:
    """Publish ``tiles`` of the projects layer on ``channel``, in messages of :data:`CHUNK`
    carrying the WAL ``position`` (bytes) when given; returns how many messages."""
    ordered = sorted(tiles)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        client.publish(channel, tile_keys.message("projects", chunk, position))
    return -(-len(ordered) // CHUNK)


def worker(client: redis.Redis, settings: TileCacheSettings) -> Worker:
    """The ``tiles`` consumer group on the ``project`` stream."""

    def handle(conn: psycopg.Connection, events: Sequence[Event]) -> None:
        position = wal_position(conn)
        tiles = stale_tiles(conn, events)
        try:
            publish(client, settings.tile_channel, tiles, position)
        except redis.RedisError as exc:
            # Retried (Unavailable): tile_place rolls back with it, so the old places are
            # read again.
            raise Unavailable(f"Redis unreachable while invalidating tiles: {exc}") from exc

    return Worker(
        name="tiles",
        stream="project",
        types=frozenset(model.model_fields["type"].default for model in _TYPES),
        handle=handle,
    )
