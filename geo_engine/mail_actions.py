"""What people do with the loop's mails that the ground records: unsubscribing (at once),
opens and clicks (as outbox events, in the same transaction as the state they change).

``notification`` is the mail's idempotency key (``mail_delivery.key``), which the signed
link carried; ``mail_delivery`` (written by the rounds that send) says when the mail went out,
whether it was opened, and which of its links was fetched last. A mail the engine no longer
knows (its user erased) records nothing. Every function runs in the caller's transaction.
"""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from geo_engine.outbox import insert_events

# The mail's row, locked, and the fetch it tells apart from a person's click: one too soon
# after the mail was handed to SMTP, or another link of the same mail fetched just before.
# Parameters: key, user, project, window_s, burst_s. Output: scanner (bool), or no row when
# the mail is unknown. Uses pk_mail_delivery.
_FOLLOW = """
WITH prior AS (
    SELECT key, sent_at, link_fetched_at, link_fetched_project
      FROM mail_delivery
     WHERE key = %(key)s AND user_id = %(user)s
       FOR UPDATE
), touched AS (
    UPDATE mail_delivery m
       SET link_fetched_at = clock_timestamp(), link_fetched_project = %(project)s
      FROM prior
     WHERE m.key = prior.key
    RETURNING prior.sent_at, prior.link_fetched_at, prior.link_fetched_project
)
SELECT coalesce(sent_at > clock_timestamp() - make_interval(secs => %(window_s)s), false)
       OR coalesce(link_fetched_at > clock_timestamp() - make_interval(secs => %(burst_s)s)
                   AND link_fetched_project IS DISTINCT FROM %(project)s, false)
  FROM touched
"""


def follow_link(
    conn: psycopg.Connection,
    user_id: int,
    project_id: int,
    notification: str,
    *,
    scanner: bool,
    window_s: float,
    burst_s: float,
) -> bool:
    """A fetch of a mail's link to ``project_id``: ``notification.clicked`` when it is a
    person's. ``scanner`` says the request already looked like a mail scanner's (its user
    agent); a fetch within ``window_s`` seconds of the mail's sending, or within ``burst_s``
    of a fetch of another of its links, is one too. Returns whether a click was recorded."""
    row = conn.execute(
        _FOLLOW,
        {
            "key": notification,
            "user": user_id,
            "project": project_id,
            "window_s": window_s,
            "burst_s": burst_s,
        },
    ).fetchone()
    if row is None or scanner or row[0]:
        return False
    _event(
        conn,
        "notification.clicked",
        {"user_id": user_id, "project_id": project_id, "notification": notification},
    )
    return True


def record_open(conn: psycopg.Connection, user_id: int, notification: str) -> bool:
    """The mail's open pixel was fetched: ``notification.opened`` the first time only.
    Returns whether it was recorded."""
    row = conn.execute(
        "UPDATE mail_delivery SET opened_at = clock_timestamp()"
        " WHERE key = %s AND user_id = %s AND opened_at IS NULL RETURNING 1",
        (notification, user_id),
    ).fetchone()
    if row is None:
        return False
    _event(conn, "notification.opened", {"user_id": user_id, "notification": notification})
    return True


def unsubscribe(conn: psycopg.Connection, user_id: int, notification: str | None) -> bool:
    """Stop the user's mails at once: ``notifications.email`` becomes false (the in-app inbox
    and the chosen frequency stay, so mails come back as they were if the user turns them on
    again), with ``notification.unsubscribed`` and ``user.preferences_changed``. Returns
    whether anything changed (false for a user already unsubscribed, or unknown)."""
    row = conn.execute(
        """
        UPDATE app_user
           SET notifications = notifications || '{"email": false}'::jsonb, updated_at = now()
         WHERE id = %s AND (notifications->'email') IS DISTINCT FROM 'false'::jsonb
        RETURNING id
        """,
        (user_id,),
    ).fetchone()
    if row is None:
        return False
    _event(conn, "notification.unsubscribed", {"user_id": user_id, "notification": notification})
    _event(conn, "user.preferences_changed", {"user_id": user_id})
    return True


def _event(conn: psycopg.Connection, type_: str, payload: dict[str, object]) -> None:
    conn.execute(
        insert_events("(SELECT %s::text AS type, %s::jsonb AS payload)"),
        (type_, Jsonb(payload)),
    )
