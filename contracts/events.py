"""Domain events: what every write announces, as the transactional outbox stores it.

Each write (API or import) inserts its events into the ``outbox`` table in the same transaction
as the rows it changes; the relay (consumers issue) will publish them. An event carries:

- ``event_id``: a UUID, unique per event (consumers are idempotent on it);
- ``type``: its name, ``<aggregate>.<what happened>``;
- ``version``: of that type's shape; a change that is not backward compatible is a new version;
- ``occurred_at``: when the write's transaction ran;
- ids only, never personal data (no name, no place, no preference): a consumer that needs
  more reads it from the engine, where visibility is checked again.

In the table, ``event_id`` is ``outbox.id``, ``occurred_at`` is ``outbox.created_at`` and the
ids are the ``payload`` object; :func:`from_outbox_row` turns a row back into its model.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


class Event(BaseModel):
    """Fields every event has; the subclasses add the ids of what changed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_id: UUID
    type: str
    version: int
    occurred_at: datetime


# --- organisations ---------------------------------------------------------------------------


class OrganisationCreated(Event):
    """A new organisation (staff, or ``orgs import``)."""

    type: Literal["organisation.created"] = "organisation.created"
    version: Literal[1] = 1
    organisation_id: Id


class OrganisationUpdated(Event):
    """An existing organisation whose kind, name or home territory changed."""

    type: Literal["organisation.updated"] = "organisation.updated"
    version: Literal[1] = 1
    organisation_id: Id


class MemberAdded(Event):
    """A user joined an organisation (and may now see its private projects)."""

    type: Literal["member.added"] = "member.added"
    version: Literal[1] = 1
    organisation_id: Id
    user_id: Id


class MemberRoleChanged(Event):
    """A member's role (admin, agent, member) changed."""

    type: Literal["member.role_changed"] = "member.role_changed"
    version: Literal[1] = 1
    organisation_id: Id
    user_id: Id


class MemberRemoved(Event):
    """A user left an organisation (and no longer sees its private projects)."""

    type: Literal["member.removed"] = "member.removed"
    version: Literal[1] = 1
    organisation_id: Id
    user_id: Id


# --- projects --------------------------------------------------------------------------------


class _ProjectEvent(Event):
    project_id: Id
    organisation_id: Id


class ProjectPublished(_ProjectEvent):
    """A new project, whatever its visibility (a private one concerns its members only)."""

    type: Literal["project.published"] = "project.published"
    version: Literal[1] = 1


class ProjectUpdated(_ProjectEvent):
    """An existing project whose row or scope changed; every change of an existing project
    has exactly one, and the transitions below come with it when they apply."""

    type: Literal["project.updated"] = "project.updated"
    version: Literal[1] = 1


class ProjectMadePrivate(_ProjectEvent):
    """Visibility went from public to private: non-members must stop seeing it."""

    type: Literal["project.made_private"] = "project.made_private"
    version: Literal[1] = 1


class ProjectMadePublic(_ProjectEvent):
    """Visibility went from private to public: it now concerns everyone in its scope."""

    type: Literal["project.made_public"] = "project.made_public"
    version: Literal[1] = 1


class ProjectClosing(_ProjectEvent):
    """An existing project still upcoming or open got a closing date, or a different one
    (the "last days to take part" alerts are timed by it)."""

    type: Literal["project.closing"] = "project.closing"
    version: Literal[1] = 1


class ProjectClosed(_ProjectEvent):
    """Status changed to ``closed``: participation has ended."""

    type: Literal["project.closed"] = "project.closed"
    version: Literal[1] = 1


class ProjectResultsPublished(_ProjectEvent):
    """Status changed to ``results``: the organisation published what came of it."""

    type: Literal["project.results_published"] = "project.results_published"
    version: Literal[1] = 1


# --- contributions ---------------------------------------------------------------------------


class ContributionCreated(Event):
    """A new point on a participatory map; ``author_id`` is null for imported anonymous ones."""

    type: Literal["contribution.created"] = "contribution.created"
    version: Literal[1] = 1
    contribution_id: Id
    project_id: Id
    author_id: Id | None


class ContributionUpdated(Event):
    """An existing contribution whose category, title, place, map or author changed."""

    type: Literal["contribution.updated"] = "contribution.updated"
    version: Literal[1] = 1
    contribution_id: Id
    project_id: Id
    author_id: Id | None


# --- users -----------------------------------------------------------------------------------


class UserRegistered(Event):
    """A new user (``POST /v1/users`` or ``users import``)."""

    type: Literal["user.registered"] = "user.registered"
    version: Literal[1] = 1
    user_id: Id


class UserMoved(Event):
    """An existing user's place changed (a move, a new postal code, a choice among the
    communes of a shared postal code). Where they now live is not in the event."""

    type: Literal["user.moved"] = "user.moved"
    version: Literal[1] = 1
    user_id: Id


class UserPreferencesChanged(Event):
    """An existing user's interests, notification settings or time zone changed."""

    type: Literal["user.preferences_changed"] = "user.preferences_changed"
    version: Literal[1] = 1
    user_id: Id


# --- engagement ------------------------------------------------------------------------------


class OrganisationFollowed(Event):
    """A user started following an organisation (a repeat is not announced)."""

    type: Literal["organisation.followed"] = "organisation.followed"
    version: Literal[1] = 1
    organisation_id: Id
    user_id: Id


class OrganisationUnfollowed(Event):
    """A user stopped following an organisation."""

    type: Literal["organisation.unfollowed"] = "organisation.unfollowed"
    version: Literal[1] = 1
    organisation_id: Id
    user_id: Id


class EngagementRecorded(Event):
    """A user clicked on or took part in a project for the first time (further ones only
    count up). The kind is read from the engine, as every fact."""

    type: Literal["user.engagement_recorded"] = "user.engagement_recorded"
    version: Literal[1] = 1
    user_id: Id
    project_id: Id


class FeedbackGiven(Event):
    """A user told the recommender something new about a project (``project_id``) or a theme
    (``project_id`` null); what they said is read from the engine (it is a preference)."""

    type: Literal["user.feedback_given"] = "user.feedback_given"
    version: Literal[1] = 1
    user_id: Id
    project_id: Id | None


# --- meetings --------------------------------------------------------------------------------


class _MeetingEvent(Event):
    meeting_id: Id
    project_id: Id
    organisation_id: Id


class MeetingAnnounced(_MeetingEvent):
    """A project announced a physical meeting (réunion publique, atelier, balade urbaine)."""

    type: Literal["meeting.announced"] = "meeting.announced"
    version: Literal[1] = 1


class MeetingUpdated(_MeetingEvent):
    """A meeting's title, kind, place or times changed."""

    type: Literal["meeting.updated"] = "meeting.updated"
    version: Literal[1] = 1


class MeetingCancelled(_MeetingEvent):
    """A meeting will not take place; its reminders are no longer sent."""

    type: Literal["meeting.cancelled"] = "meeting.cancelled"
    version: Literal[1] = 1


# --- the retention loop's engagement ---------------------------------------------------------
# What a person did with what the loop sent them. ``notification`` is the key of the mail or
# inbox item it came from (``mail_delivery.key``), null when it came from elsewhere in the app.


class NotificationOpened(Event):
    """A mail was opened (its open pixel was fetched)."""

    type: Literal["notification.opened"] = "notification.opened"
    version: Literal[1] = 1
    user_id: Id
    notification: str = Field(min_length=1, max_length=200)


class NotificationClicked(Event):
    """A person (not a mail scanner) followed a mail's or the inbox's link to a project."""

    type: Literal["notification.clicked"] = "notification.clicked"
    version: Literal[1] = 1
    user_id: Id
    project_id: Id
    notification: str | None = Field(default=None, min_length=1, max_length=200)


class ProjectParticipated(Event):
    """A user took part in a project (voted, answered, contributed)."""

    type: Literal["project.participated"] = "project.participated"
    version: Literal[1] = 1
    user_id: Id
    project_id: Id


class RecommendationDismissed(Event):
    """A user dismissed a recommended project ("pas intéressé")."""

    type: Literal["recommendation.dismissed"] = "recommendation.dismissed"
    version: Literal[1] = 1
    user_id: Id
    project_id: Id


class NotificationUnsubscribed(Event):
    """A user unsubscribed from the loop's mails (the link's button or the RFC 8058 POST);
    it took effect when this event was written."""

    type: Literal["notification.unsubscribed"] = "notification.unsubscribed"
    version: Literal[1] = 1
    user_id: Id
    notification: str | None = Field(default=None, min_length=1, max_length=200)


class UserErased(Event):
    """A user asked to be forgotten: every consumer removes what it keeps of them."""

    type: Literal["user.erased"] = "user.erased"
    version: Literal[1] = 1
    user_id: Id


AnyEvent = Annotated[
    OrganisationCreated
    | OrganisationUpdated
    | MemberAdded
    | MemberRoleChanged
    | MemberRemoved
    | ProjectPublished
    | ProjectUpdated
    | ProjectMadePrivate
    | ProjectMadePublic
    | ProjectClosing
    | ProjectClosed
    | ProjectResultsPublished
    | ContributionCreated
    | ContributionUpdated
    | UserRegistered
    | UserMoved
    | UserPreferencesChanged
    | OrganisationFollowed
    | OrganisationUnfollowed
    | EngagementRecorded
    | FeedbackGiven
    | MeetingAnnounced
    | MeetingUpdated
    | MeetingCancelled
    | NotificationOpened
    | NotificationClicked
    | ProjectParticipated
    | RecommendationDismissed
    | NotificationUnsubscribed
    | UserErased,
    Field(discriminator="type"),
]

_ANY_EVENT: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)

EVENT_TYPES: dict[str, type[Event]] = {
    model.model_fields["type"].default: model
    for model in (
        OrganisationCreated,
        OrganisationUpdated,
        MemberAdded,
        MemberRoleChanged,
        MemberRemoved,
        ProjectPublished,
        ProjectUpdated,
        ProjectMadePrivate,
        ProjectMadePublic,
        ProjectClosing,
        ProjectClosed,
        ProjectResultsPublished,
        ContributionCreated,
        ContributionUpdated,
        UserRegistered,
        UserMoved,
        UserPreferencesChanged,
        OrganisationFollowed,
        OrganisationUnfollowed,
        EngagementRecorded,
        FeedbackGiven,
        MeetingAnnounced,
        MeetingUpdated,
        MeetingCancelled,
        NotificationOpened,
        NotificationClicked,
        ProjectParticipated,
        RecommendationDismissed,
        NotificationUnsubscribed,
        UserErased,
    )
}


def parse_event(data: Mapping[str, Any]) -> Event:
    """The model of one event given as a mapping (``type`` chooses it; unknown fields refused)."""
    event: Event = _ANY_EVENT.validate_python(data)
    return event


def from_outbox_row(
    event_id: UUID, type_: str, version: int, payload: Mapping[str, Any], created_at: datetime
) -> Event:
    """An ``outbox`` row (id, type, version, payload, created_at) as its event model."""
    return parse_event(
        {
            **payload,
            "event_id": event_id,
            "type": type_,
            "version": version,
            "occurred_at": created_at,
        }
    )
