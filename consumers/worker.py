"""What a consumer of the loop is: a consumer group on one stream, the event types it acts
on, and a function that does its database work for a batch of events.

The runtime (consumers/runtime.py) reads the stream with the group, parses entries into
events, and calls ``handle`` inside a transaction that also records each event id in
``consumed_event`` (idempotency by event id); it acknowledges (``XACK``) only after that
transaction committed. ``handle`` raises to refuse: an :class:`~contracts.errors.EngineError`
says by its kind whether to retry or dead-letter (``contracts/errors.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import psycopg

from contracts.events import Event

StreamName = Literal["project", "user", "engagement"]

# Which stream carries each event type (the part of the name before the dot decides, but for
# the engagement that comes back from people and the follows, which are the user's).
_ENGAGEMENT = frozenset(
    {
        "notification.opened",
        "notification.clicked",
        "project.participated",
        "recommendation.dismissed",
        "notification.unsubscribed",
        "user.engagement_recorded",
        "user.feedback_given",
    }
)
_USER_AGGREGATES = frozenset({"user", "member"})
_USER_TYPES = frozenset({"organisation.followed", "organisation.unfollowed"})


def stream_of(event_type: str) -> StreamName:
    """The stream an event type travels on: ``engagement`` for what people did with what the
    loop sent them, ``user`` for users, memberships and follows, ``project`` for the rest
    (organisations, projects, contributions, meetings)."""
    if event_type in _ENGAGEMENT:
        return "engagement"
    if event_type in _USER_TYPES or event_type.partition(".")[0] in _USER_AGGREGATES:
        return "user"
    return "project"


Handle = Callable[[psycopg.Connection, Sequence[Event]], None]


@dataclass(frozen=True)
class Worker:
    """One consumer group. ``name`` is the group's name and the ``consumed_event.consumer``;
    ``types`` are the event types ``handle`` receives (others on the stream are acknowledged
    without a call); ``handle`` runs inside the runtime's transaction, set-wise over the batch
    (the events in stream order, each at most once per batch)."""

    name: str
    stream: StreamName
    types: frozenset[str]
    handle: Handle
