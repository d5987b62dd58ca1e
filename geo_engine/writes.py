"""The write layer: who may write what, and the writes, each in one transaction with its events.

The API's routes call these functions and nothing else for writes; the imports call the same
``store_*`` functions underneath (trusted: the operator runs them), so a record is validated
and announced (outbox) the same way whichever way it came. Refusals are
:mod:`contracts.errors` kinds; the caller maps them (HTTP problem, CLI exit code).

Who may write:

- organisations: platform staff;
- members: staff, or the organisation's admins; a member may also remove themself;
- projects: staff, or the organisation's admins and agents;
- contributions: any signed-in user, on a participatory map they can see, as its author;
- users: the user themself (the token's ``sub``) or staff;
- a user's follows, engagement and feedback: the user themself or staff, on projects that
  user can see.

**Ids and existence (no oracle).** Ids are global, so a write that names an id must not tell
"exists but is not yours" from "does not exist". The rule: *creating is done without an id and
the engine assigns one* (random below 2^53, so ids say nothing of how many exist and stay exact
in JavaScript); *a client-given id names a record of the caller's own*, to update it. An id
that is not the caller's, whether free, another organisation's (public or private) or someone
else's contribution, gets one answer, byte for byte: :data:`NO_PROJECT_OF_YOURS` or
:data:`NO_CONTRIBUTION_OF_YOURS` (404). Checks run in an order where each answer depends only
on what the caller may know: first the caller's own rights (token, role in the organisation
named in the body), then visibility (a hidden project answers like a missing one), then the id.
Staff see everything and write with the imports' rules (a given id is created or replaced).
Users: any user id but one's own answers :data:`NO_USER` (404), as a missing one does.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from contracts.api import Written
from contracts.catalog import (
    ContributionRecord,
    ContributionWrite,
    MemberRecord,
    OrganisationRecord,
    ProjectRecord,
    ProjectWrite,
)
from contracts.engagement import (
    PROJECT_FEEDBACK,
    EngagementRow,
    EngagementWrite,
    FeedbackRow,
    FeedbackStored,
    FeedbackWrite,
    FollowRow,
)
from contracts.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from contracts.themes import Theme
from contracts.users import Home, Notifications, UserPatch, UserRecord, UserView
from geo_engine import outbox
from geo_engine.catalog import load as catalog_load
from geo_engine.jsonl import ImportRejected, Line
from geo_engine.settings import UserSettings
from geo_engine.users.places import (
    PROFILE_EVENTS,
    PlacementError,
    UserBatch,
    import_users,
    move_user,
    notifications_json,
)

R = TypeVar("R", bound=BaseModel)
THEME_VALUES = frozenset(t.value for t in Theme)

MAX_ASSIGNED_ID = 2**53 - 1  # exact in JavaScript, which reads the map's ids
SOURCE = "request"
REGISTER_LOCK = 0x6F7574  # advisory lock class of registrations (with the id's low 31 bits)

NO_PROJECT_OF_YOURS = (
    "no project with this id among the organisation's projects; leave id out to create one"
)
NO_CONTRIBUTION_OF_YOURS = (
    "no contribution with this id among your contributions; leave id out to create one"
)
NO_USER = "no user with this id (a user may only see and change themself)"


@dataclass(frozen=True)
class Actor:
    """Who writes: a signed-in user (``user_id``), platform staff, or nobody (anonymous)."""

    user_id: int | None = None
    staff: bool = False


def signed_in(actor: Actor) -> int:
    if actor.user_id is None:
        raise Unauthenticated("this needs a bearer token", headers={"WWW-Authenticate": "Bearer"})
    return actor.user_id


def _role(conn: psycopg.Connection, organisation_id: int, user_id: int) -> str | None:
    row = conn.execute(
        "SELECT role FROM organisation_member WHERE organisation_id = %s AND user_id = %s",
        (organisation_id, user_id),
    ).fetchone()
    return None if row is None else str(row[0])


def require_role(
    conn: psycopg.Connection, actor: Actor, organisation_id: int, roles: set[str]
) -> None:
    """Staff, or a member of the organisation with one of ``roles``. The refusal is the same
    whether the organisation exists or not."""
    user_id = signed_in(actor)
    if actor.staff:
        return
    if _role(conn, organisation_id, user_id) not in roles:
        who = " or ".join(sorted(f"{role}s" for role in roles))
        raise Forbidden(f"only {who} of organisation {organisation_id} may do this")


def _exists(conn: psycopg.Connection, query: str, params: Sequence[Any]) -> bool:
    return conn.execute(query, params).fetchone() is not None


def free_id(conn: psycopg.Connection, table: str) -> int:
    """A random id nobody has in ``table`` (random: ids must not count what exists)."""
    while True:
        candidate = secrets.randbelow(MAX_ASSIGNED_ID) + 1
        found = conn.execute(
            sql.SQL("SELECT 1 FROM {} WHERE id = %s").format(sql.Identifier(table)), (candidate,)
        ).fetchone()
        if found is None:
            return candidate


def _store(
    conn: psycopg.Connection,
    store: Callable[[psycopg.Connection, Sequence[Line[R]], str], int],
    record: R,
) -> int:
    """One record through the imports' store, its refusals as InvalidInput."""
    try:
        return store(conn, [Line(1, record)], SOURCE)
    except ImportRejected as exc:
        raise _invalid(exc.errors, f"{SOURCE}:1: ") from None


def _invalid(errors: Sequence[str], prefix: str) -> InvalidInput:
    reasons = [e.removeprefix(prefix) for e in errors]
    return InvalidInput(
        "; ".join(reasons), errors=[{"where": "body", "reason": r} for r in reasons]
    )


# --- organisations and members ---------------------------------------------------------------


def write_organisation(
    conn: psycopg.Connection, actor: Actor, record: OrganisationRecord
) -> Written:
    """Create or update an organisation (staff only)."""
    signed_in(actor)
    if not actor.staff:
        raise Forbidden("only platform staff create organisations")
    with conn.transaction():
        written = _store(conn, catalog_load.store_organisations, record)
    return Written(written=written, id=record.id)


def add_member(conn: psycopg.Connection, actor: Actor, record: MemberRecord) -> Written:
    """Add a member or change their role (staff, or the organisation's admins)."""
    with conn.transaction():
        require_role(conn, actor, record.organisation_id, {"admin"})
        written = _store(conn, catalog_load.store_members, record)
    return Written(written=written)


def remove_member(
    conn: psycopg.Connection, actor: Actor, organisation_id: int, user_id: int
) -> Written:
    """Remove a member (staff, the organisation's admins, or the member themself)."""
    with conn.transaction():
        if signed_in(actor) != user_id:
            require_role(conn, actor, organisation_id, {"admin"})
        removed = catalog_load.remove_member(conn, organisation_id, user_id)
    return Written(written=int(removed))


# --- projects and contributions --------------------------------------------------------------


def write_project(conn: psycopg.Connection, actor: Actor, body: ProjectWrite) -> Written:
    """Create a project (no id: the engine assigns one) or update one of the organisation's
    (staff, or the organisation's admins and agents)."""
    with conn.transaction():
        require_role(conn, actor, body.organisation_id, {"admin", "agent"})
        if body.id is None:
            project_id = free_id(conn, "project")
        else:
            project_id = body.id
            own = _exists(
                conn,
                "SELECT 1 FROM project WHERE id = %s AND organisation_id = %s FOR UPDATE",
                (project_id, body.organisation_id),
            )
            if not own and not actor.staff:
                raise NotFound(NO_PROJECT_OF_YOURS)
        record = ProjectRecord.model_validate({**dict(body), "id": project_id})
        written = _store(conn, catalog_load.store_projects, record)
    return Written(written=written, id=project_id)


def write_contribution(conn: psycopg.Connection, actor: Actor, body: ContributionWrite) -> Written:
    """Place a contribution (no id: the engine assigns one) or change one of the caller's, on
    a participatory map they can see; the caller is its author (staff may name another)."""
    user_id = signed_in(actor)
    if body.author_id is not None and body.author_id != user_id and not actor.staff:
        raise Forbidden("author_id must be your own user id")
    with conn.transaction():
        visible = actor.staff or _exists(
            conn, "SELECT 1 FROM visible_projects(%s) WHERE id = %s", (user_id, body.project_id)
        )
        if not visible:
            raise NotFound(f"no project {body.project_id}")
        if body.id is None:
            contribution_id = free_id(conn, "contribution")
        else:
            contribution_id = body.id
            own = _exists(
                conn,
                "SELECT 1 FROM contribution WHERE id = %s AND author_id = %s FOR UPDATE",
                (contribution_id, user_id),
            )
            if not own and not actor.staff:
                raise NotFound(NO_CONTRIBUTION_OF_YOURS)
        author = body.author_id if body.author_id is not None else user_id
        record = ContributionRecord.model_validate(
            {**dict(body), "id": contribution_id, "author_id": author}
        )
        written = _store(conn, catalog_load.store_contributions, record)
    return Written(written=written, id=contribution_id)


# --- users -----------------------------------------------------------------------------------


def _require_self(actor: Actor, user_id: int) -> None:
    """The user themself or staff; anyone else gets the answer of a missing user."""
    if signed_in(actor) != user_id and not actor.staff:
        raise NotFound(NO_USER)


def read_user(conn: psycopg.Connection, user_id: int) -> UserView | None:
    row = conn.execute(
        """SELECT p.commune_code, c.name, p.arrondissement_code, p.candidate_communes,
                  p.postal_code, ST_X(p.home), ST_Y(p.home), u.interests, u.notifications,
                  u.timezone, coalesce(u.timezone, c.timezone)
           FROM app_user AS u LEFT JOIN user_place AS p ON p.user_id = u.id
           LEFT JOIN commune AS c ON c.code = p.commune_code WHERE u.id = %s""",
        (user_id,),
    ).fetchone()
    if row is None:
        return None
    commune, name, arrondissement, candidates, postal, lon, lat, interests, prefs, tz, eff = row
    return UserView(
        id=user_id,
        commune=commune,
        commune_name=name,
        arrondissement=arrondissement,
        candidates=candidates,
        postal_code=postal,
        home=None if lon is None else Home(lon=lon, lat=lat),
        interests=interests,
        notifications=Notifications.model_validate(prefs),
        timezone=tz,
        effective_timezone=eff,
    )


def get_user(conn: psycopg.Connection, actor: Actor, user_id: int) -> UserView:
    """A user as they or staff see them."""
    _require_self(actor, user_id)
    found = read_user(conn, user_id)
    if found is None:
        raise NotFound(NO_USER)
    return found


def register_user(
    conn: psycopg.Connection, actor: Actor, record: UserRecord, settings: UserSettings
) -> UserView:
    """Register a user with the import's rules (a user registers themself; staff anyone)."""
    if signed_in(actor) != record.id and not actor.staff:
        raise Forbidden("a user registers themself: id must be the user id of your token")
    with conn.transaction():
        # Two registrations of one id at once: the second waits, then finds the first.
        conn.execute(
            "SELECT pg_advisory_xact_lock(%s::int4, %s::int4)", (REGISTER_LOCK, record.id % 2**31)
        )
        if _exists(conn, "SELECT 1 FROM app_user WHERE id = %s", (record.id,)):
            raise Conflict(f"user {record.id} is already registered; change it with PATCH")
        try:
            import_users(conn, UserBatch.from_records([record]), settings)
        except ImportRejected as exc:
            raise _invalid(exc.errors, "line 1: ") from None
        view = read_user(conn, record.id)
    assert view is not None
    return view


def update_user(
    conn: psycopg.Connection,
    actor: Actor,
    user_id: int,
    patch: UserPatch,
    settings: UserSettings,
) -> UserView:
    """Move a user and/or change their preferences (they or staff), with the import's rules;
    each change that makes a difference is announced (``user.moved``,
    ``user.preferences_changed``)."""
    _require_self(actor, user_id)
    with conn.transaction():
        row = conn.execute(
            "SELECT interests, notifications, timezone FROM app_user WHERE id = %s FOR UPDATE",
            (user_id,),
        ).fetchone()
        if row is None:
            raise NotFound(NO_USER)
        if patch.home or patch.commune or patch.postal_code:
            place = UserRecord(
                id=user_id, home=patch.home, commune=patch.commune, postal_code=patch.postal_code
            )
            try:
                move_user(conn, place, settings)
            except PlacementError as exc:
                raise InvalidInput(str(exc)) from None
        given = patch.model_fields_set
        interests = [str(t) for t in patch.interests] if patch.interests is not None else row[0]
        notifications = (
            notifications_json(patch.notifications).decode()
            if patch.notifications is not None
            else Jsonb(row[1])
        )
        timezone = patch.timezone if "timezone" in given else row[2]
        conn.execute(
            """WITH written AS (
                   UPDATE app_user AS u SET interests = %(interests)s,
                          notifications = %(notifications)s::jsonb, timezone = %(timezone)s,
                          updated_at = now()
                   WHERE id = %(id)s
                     AND (u.interests, u.notifications, u.timezone) IS DISTINCT FROM
                         (%(interests)s::text[], %(notifications)s::jsonb, %(timezone)s::text)
                   RETURNING id, false AS inserted) """
            + PROFILE_EVENTS,
            {
                "id": user_id,
                "interests": interests,
                "notifications": notifications,
                "timezone": timezone,
            },
        )
        view = read_user(conn, user_id)
    assert view is not None
    return view


# --- follows, engagement, feedback -----------------------------------------------------------
# The user themself or staff (anyone else: NO_USER); a project must be visible to that user,
# whoever writes (staff acting for them included), else the answer of a missing project.
# Repeats are idempotent: the same follow or feedback again stores nothing and announces
# nothing; the same engagement again counts up without an event.


def no_project(project_id: int) -> str:
    """The one answer for a project that does not exist or that the user may not see."""
    return f"no project {project_id}"


def _require_user(conn: psycopg.Connection, actor: Actor, user_id: int) -> None:
    _require_self(actor, user_id)
    if not _exists(conn, "SELECT 1 FROM app_user WHERE id = %s FOR KEY SHARE", (user_id,)):
        raise NotFound(NO_USER)


def _project_themes(conn: psycopg.Connection, user_id: int, project_id: int) -> list[str]:
    """The themes of a project the user may see (FOR KEY SHARE: it stays until commit)."""
    row = conn.execute(
        """SELECT p.themes FROM project AS p
           WHERE p.id = %s AND p.id IN (SELECT v.id FROM visible_projects(%s) AS v)
           FOR KEY SHARE OF p""",
        (project_id, user_id),
    ).fetchone()
    if row is None:
        raise NotFound(no_project(project_id))
    return [str(t) for t in row[0]]


FEEDBACK_WRITE = (
    """WITH given AS (
           SELECT %(user)s::int8 AS user_id, %(kind)s::text AS kind, g.project_id, g.theme
           FROM unnest(%(projects)s::int8[], %(themes)s::text[]) AS g(project_id, theme)
       ),
       written AS (
           INSERT INTO recommendation_feedback (user_id, kind, project_id, theme)
           SELECT user_id, kind, project_id, theme FROM given
           ON CONFLICT (user_id, kind, project_id, theme) DO NOTHING
           RETURNING user_id
       ),
       announced AS ("""
    + outbox.insert_events(
        """(SELECT 'user.feedback_given' AS type,
                   jsonb_build_object('user_id', w.user_id, 'project_id', %(given)s::int8)
                   AS payload
            FROM written AS w GROUP BY w.user_id)"""
    )
    + """ RETURNING 1)
       SELECT (SELECT count(*) FROM written)"""
)


def give_feedback(
    conn: psycopg.Connection, actor: Actor, user_id: int, body: FeedbackWrite
) -> FeedbackStored:
    """Store "pas intéressé", "pas ma commune" (a project) or "moins de ce thème" (a theme, or
    every theme of a project), with one ``user.feedback_given`` event when anything is new."""
    with conn.transaction():
        _require_user(conn, actor, user_id)
        projects: list[int | None]
        themes: list[str | None]
        if body.kind in PROJECT_FEEDBACK:
            assert body.project_id is not None
            _project_themes(conn, user_id, body.project_id)
            projects, themes = [body.project_id], [None]
        elif body.theme is not None:
            projects, themes = [None], [body.theme.value]
        else:
            assert body.project_id is not None
            muted = sorted(set(_project_themes(conn, user_id, body.project_id)) & THEME_VALUES)
            if not muted:
                raise InvalidInput(
                    f"project {body.project_id} has no theme to mute; give a theme instead",
                    errors=[{"where": "body.project_id", "reason": "project has no theme"}],
                )
            projects, themes = [None] * len(muted), list(muted)
        row = conn.execute(
            FEEDBACK_WRITE,
            {
                "user": user_id,
                "kind": body.kind.value,
                "projects": projects,
                "themes": themes,
                "given": body.project_id,
            },
        ).fetchone()
        assert row is not None
        created = int(row[0])
        stored = conn.execute(
            """SELECT f.user_id, f.kind, f.project_id, f.theme, f.created_at
               FROM recommendation_feedback AS f
               JOIN unnest(%s::int8[], %s::text[]) AS g(project_id, theme)
                 ON (f.project_id, f.theme) IS NOT DISTINCT FROM (g.project_id, g.theme)
               WHERE f.user_id = %s AND f.kind = %s
               ORDER BY f.theme, f.project_id""",
            (projects, themes, user_id, body.kind.value),
        ).fetchall()
    return FeedbackStored(
        feedback=[
            FeedbackRow(user_id=u, kind=k, project_id=p, theme=t, created_at=at)
            for u, k, p, t, at in stored
        ],
        created=created,
    )


def follow(conn: psycopg.Connection, actor: Actor, user_id: int, organisation_id: int) -> FollowRow:
    """Follow an organisation (organisations are public: a missing one is simply missing);
    ``organisation.followed`` when it is new."""
    with conn.transaction():
        _require_user(conn, actor, user_id)
        if not _exists(
            conn, "SELECT 1 FROM organisation WHERE id = %s FOR KEY SHARE", (organisation_id,)
        ):
            raise NotFound(f"no organisation {organisation_id}")
        row = conn.execute(
            """WITH written AS (
                   INSERT INTO follow (user_id, organisation_id) VALUES (%(user)s, %(org)s)
                   ON CONFLICT (user_id, organisation_id) DO NOTHING
                   RETURNING user_id, organisation_id
               ),
               announced AS ("""
            + outbox.insert_events(
                """(SELECT 'organisation.followed' AS type,
                           jsonb_build_object('user_id', user_id,
                                              'organisation_id', organisation_id) AS payload
                    FROM written)"""
            )
            + """ RETURNING 1)
               SELECT (SELECT count(*) FROM written)""",
            {"user": user_id, "org": organisation_id},
        ).fetchone()
        assert row is not None
        stored = conn.execute(
            "SELECT created_at FROM follow WHERE user_id = %s AND organisation_id = %s",
            (user_id, organisation_id),
        ).fetchone()
    assert stored is not None
    return FollowRow(
        user_id=user_id,
        organisation_id=organisation_id,
        created_at=stored[0],
        created=row[0] > 0,
    )


def unfollow(conn: psycopg.Connection, actor: Actor, user_id: int, organisation_id: int) -> Written:
    """Stop following; ``written`` is 0 (and nothing announced) when the user did not."""
    with conn.transaction():
        _require_user(conn, actor, user_id)
        row = conn.execute(
            """WITH gone AS (
                   DELETE FROM follow WHERE user_id = %(user)s AND organisation_id = %(org)s
                   RETURNING user_id, organisation_id
               ),
               announced AS ("""
            + outbox.insert_events(
                """(SELECT 'organisation.unfollowed' AS type,
                           jsonb_build_object('user_id', user_id,
                                              'organisation_id', organisation_id) AS payload
                    FROM gone)"""
            )
            + """ RETURNING 1)
               SELECT (SELECT count(*) FROM gone)""",
            {"user": user_id, "org": organisation_id},
        ).fetchone()
    assert row is not None
    return Written(written=int(row[0]))


def record_engagement(
    conn: psycopg.Connection, actor: Actor, user_id: int, body: EngagementWrite
) -> EngagementRow:
    """Count a click on or a participation in a project the user can see; the first of each
    kind is announced (``user.engagement_recorded``), further ones only count up."""
    with conn.transaction():
        _require_user(conn, actor, user_id)
        _project_themes(conn, user_id, body.project_id)
        row = conn.execute(
            """WITH written AS (
                   INSERT INTO engagement AS e (user_id, project_id, kind)
                   VALUES (%(user)s, %(project)s, %(kind)s)
                   ON CONFLICT (user_id, project_id, kind) DO UPDATE
                   SET count = e.count + 1, last_at = greatest(e.last_at, now())
                   RETURNING e.*, xmax = 0 AS inserted
               ),
               announced AS ("""
            + outbox.insert_events(
                """(SELECT 'user.engagement_recorded' AS type,
                           jsonb_build_object('user_id', user_id, 'project_id', project_id)
                           AS payload
                    FROM written WHERE inserted)"""
            )
            + """ RETURNING 1)
               SELECT user_id, project_id, kind, first_at, last_at, count FROM written""",
            {"user": user_id, "project": body.project_id, "kind": body.kind.value},
        ).fetchone()
    assert row is not None
    user, project, kind, first_at, last_at, count = row
    return EngagementRow(
        user_id=user,
        project_id=project,
        kind=kind,
        first_at=first_at,
        last_at=last_at,
        count=count,
    )
