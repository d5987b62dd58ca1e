"""Instant alerts: inbox rows of ``instant`` users, outside their quiet hours, within a weekly
budget in which civic deadlines come first; and what alerts and digests share to be sent
exactly once.

One mail per inbox row: the delivery key is the row's (``alert:<user>:<project>:<kind>:
<meeting>:<lead>``), the budget counts mails, and an alert says one thing. A round:

1. re-sends the deliveries claimed more than ``lease`` ago and never marked sent (a crash
   between claim and SMTP) with the same key, hence the same ``Message-ID``;
2. decides, in one statement (``alerts_select.sql``), which pending rows go now and which
   overflow the budget (``overflow_at``: the next daily digest takes them); users in quiet
   hours are skipped (nothing written: the next round sees them again);
3. claims the rows to send (``INSERT INTO mail_delivery … ON CONFLICT DO NOTHING`` and
   ``alerted_at``) and commits, before anything is handed to SMTP;
4. renders them, the visibility rule checked again: a row whose project is no longer visible
   to its user keeps ``alerted_at`` (never retried) and loses its claim (nothing was sent);
5. sends, by chunks of one SMTP connection, and marks ``sent_at`` after each accepted chunk.

A crash after 3 leaves claims without ``sent_at``, re-sent by step 1 of a later round; a crash
after SMTP accepted and before ``sent_at`` re-sends the same ``Message-ID`` once, which
receiving systems recognise as the same mail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import psycopg

from consumers.content import SECTIONS, DigestContent, Item, MeetingInfo, Recipient, Section
from consumers.inbox import level_word
from consumers.mail import Mail, SmtpSender, compose_alert, compose_digest, message_id
from consumers.settings import LoopSettings, MailSettings
from contracts.experiments import ExperimentSpec, Overrides, TemplateVariant
from geo_engine import experiments
from geo_engine.db import load_sql

ALERTS_SELECT = load_sql("consumers", "alerts_select.sql")
ITEMS = load_sql("consumers", "items.sql")
# The last slot of a user's weekly budget waits for a civic deadline (priority 2).
DEADLINE_RESERVE = 1
LEASE = timedelta(minutes=10)  # a claim older than this without sent_at was lost in a crash
CHUNK = 200  # mails per SMTP connection
ASSIGN_CHUNK = 5_000  # users per experiments.assignments statement

# Concern levels (geo_engine.audience.LEVELS) → digest section.
SECTION_OF_LEVEL: dict[str, Section] = {
    "commune": "commune",
    "arrondissement": "commune",
    "area": "commune",
    "radius": "commune",
    "epci": "epci",
    "departement": "departement",
    "region": "region",
    "national": "france",
}
assert set(SECTION_OF_LEVEL.values()) <= set(SECTIONS)

RowKey = tuple[int, int, str, int, int]  # inbox (user_id, project_id, kind, meeting_id, lead_days)


class Outgoing(Protocol):
    """A composed mail as the rounds hand it on: :class:`consumers.mail.Mail` (or any message
    that gives its bytes and its headers by name)."""

    def as_bytes(self) -> bytes: ...

    def __getitem__(self, name: str) -> Any: ...


class Sender(Protocol):
    """Hands mails to SMTP (one connection per call); returns once all were accepted."""

    def send(self, messages: Sequence[Any]) -> None: ...


class Composer(Protocol):
    """Builds the mails (``consumers.mail``: compose_alert, compose_digest, message_id, bound
    to their MailSettings); the ``Message-ID`` of a mail is ``message_id(key)``; ``template``
    is the subject line an experiment's variant chose."""

    def alert(
        self,
        recipient: Recipient,
        items: Sequence[Item],
        key: str,
        template: TemplateVariant = "standard",
    ) -> Outgoing: ...

    def digest(
        self,
        recipient: Recipient,
        digest: DigestContent,
        key: str,
        template: TemplateVariant = "standard",
    ) -> Outgoing: ...

    def message_id(self, key: str) -> str: ...


class MailModule:
    """``consumers.mail`` bound to its settings: the Composer and Sender of the rounds."""

    def __init__(self, settings: MailSettings) -> None:
        self._settings = settings
        self._smtp = SmtpSender(settings)

    def alert(
        self,
        recipient: Recipient,
        items: Sequence[Item],
        key: str,
        template: TemplateVariant = "standard",
    ) -> Mail:
        return compose_alert(recipient, items, key, self._settings, template)

    def digest(
        self,
        recipient: Recipient,
        digest: DigestContent,
        key: str,
        template: TemplateVariant = "standard",
    ) -> Mail:
        return compose_digest(recipient, digest, key, self._settings, template)

    def message_id(self, key: str) -> str:
        return message_id(key, self._settings)

    def send(self, messages: Sequence[Mail]) -> None:
        self._smtp.send(messages)


@dataclass
class Counts:
    """What a round did: mails sent (``recovered`` of them re-sent claims), rows overflowed to
    the digest, rows or digests ``withheld`` at render (no longer visible), users ``held`` in
    quiet hours are not counted (nothing was decided for them)."""

    sent: int = 0
    recovered: int = 0
    overflowed: int = 0
    withheld: int = 0
    claimed: int = 0


def within_budget(slot: int, priority: int, budget: int, reserve: int = DEADLINE_RESERVE) -> bool:
    """Whether a row taking budget ``slot`` (``alerts_select.sql``: alerts of the last 7 days
    plus its rank, 1-based) goes now: a civic deadline (priority 2) up to ``budget``, anything
    else up to ``budget - reserve``."""
    return slot <= budget - (0 if priority == 2 else reserve)


def claimed_overrides(conn: psycopg.Connection, keys: Sequence[str]) -> dict[str, Overrides]:
    """mail key → the overrides of the variant its claim was made under (the exposure logged
    with the claim, ``ref`` = the key), whatever the experiment's status now: a mail re-sent
    after a crash keeps its subject and size. Keys claimed outside any experiment are
    absent."""
    if not keys:
        return {}
    rows = conn.execute(
        """SELECT x.ref, x.variant, e.id, e.spec
           FROM experiment_exposure AS x JOIN experiment AS e ON e.id = x.experiment_id
           WHERE x.user_id = ANY(%s) AND x.ref = ANY(%s)""",
        (sorted({int(k.split(":")[1]) for k in keys}), list(keys)),
    ).fetchall()
    specs: dict[int, ExperimentSpec] = {}
    out: dict[str, Overrides] = {}
    for ref, variant, experiment_id, spec in rows:
        if experiment_id not in specs:
            specs[experiment_id] = ExperimentSpec.model_validate(spec)
        out[ref] = next(v for v in specs[experiment_id].variants if v.name == variant).overrides
    return out


def alert_key(row: RowKey) -> str:
    return "alert:" + ":".join(map(str, row))


def parse_alert_key(key: str) -> RowKey:
    _, user, project, kind, meeting, lead = key.split(":")
    return int(user), int(project), kind, int(meeting), int(lead)


def _arrays(rows: Sequence[RowKey]) -> dict[str, list[object]]:
    return {
        "users": [r[0] for r in rows],
        "projects": [r[1] for r in rows],
        "kinds": [r[2] for r in rows],
        "meetings": [r[3] for r in rows],
        "leads": [r[4] for r in rows],
    }


@dataclass(frozen=True)
class Rendered:
    """An inbox row read for rendering: its key, its item, and what ranks it."""

    key: RowKey
    item: Item
    priority: int
    relevance: float | None
    created_at: datetime
    organisation_id: int
    visible: bool


def read_items(conn: psycopg.Connection, rows: Sequence[RowKey]) -> list[Rendered]:
    """The inbox rows ``rows`` as mails show them, with their visibility checked now (rows
    that no longer exist are absent)."""
    if not rows:
        return []
    out = []
    for r in conn.execute(ITEMS, _arrays(rows)):
        meeting = (
            None
            if r[15] is None
            else MeetingInfo(
                meeting_id=r[3],
                kind=r[15],
                title=r[16],
                place=r[17],
                starts_at=r[18],
                ends_at=r[19],
            )
        )
        item = Item(
            project_id=r[1],
            title=r[10],
            organisation=r[11],
            tool=r[12],
            kind=r[2],
            reason=r[8],
            section=SECTION_OF_LEVEL.get(level_word(r[5]), "france"),
            closes_at=r[13],
            meeting=meeting,
        )
        out.append(Rendered((r[0], r[1], r[2], r[3], r[4]), item, r[6], r[7], r[9], r[14], r[20]))
    return out


def recipients(conn: psycopg.Connection, users: Iterable[int]) -> dict[int, Recipient]:
    """Each user's zone (their own, else their commune's, else Europe/Paris) and commune."""
    rows = conn.execute(
        """SELECT u.id, coalesce(u.timezone, c.timezone, 'Europe/Paris'), c.name
           FROM app_user AS u LEFT JOIN user_place AS p ON p.user_id = u.id
           LEFT JOIN commune AS c ON c.code = p.commune_code
           WHERE u.id = ANY(%s)""",
        (sorted(set(users)),),
    )
    return {r[0]: Recipient(user_id=r[0], timezone=r[1], commune_name=r[2]) for r in rows}


def send_claimed(
    conn: psycopg.Connection,
    mails: Sequence[tuple[str, Outgoing]],
    sender: Sender,
    now: datetime,
    mark: Callable[[psycopg.Connection, Sequence[str], datetime], None] | None = None,
) -> int:
    """Hand ``(key, mail)`` pairs to SMTP by chunks; after each accepted chunk, mark its
    deliveries sent (and ``mark`` what else records it) and commit. Returns how many were
    sent."""
    for start in range(0, len(mails), CHUNK):
        chunk = mails[start : start + CHUNK]
        sender.send([m for _, m in chunk])
        conn.execute(
            """UPDATE mail_delivery SET sent_at = %s, attempts = attempts + 1
               WHERE key = ANY(%s)""",
            (now, [k for k, _ in chunk]),
        )
        if mark is not None:
            mark(conn, [k for k, _ in chunk], now)
        conn.commit()
    return len(mails)


def claim(
    conn: psycopg.Connection,
    keys: Sequence[str],
    users: Sequence[int],
    kind: str,
    composer: Composer,
    now: datetime,
) -> set[str]:
    """Insert the deliveries (one statement); the keys this call claimed (not already
    claimed). The caller commits."""
    if not keys:
        return set()
    rows = conn.execute(
        """INSERT INTO mail_delivery (key, user_id, kind, message_id, claimed_at)
           SELECT k, u, %s, m, %s FROM unnest(%s::text[], %s::bigint[], %s::text[]) AS t(k, u, m)
           ON CONFLICT DO NOTHING RETURNING key""",
        (kind, now, list(keys), list(users), [composer.message_id(k) for k in keys]),
    )
    return {r[0] for r in rows}


def unclaim(conn: psycopg.Connection, keys: Sequence[str]) -> None:
    """Drop claims whose mail is withheld (nothing sent, nothing to count in a budget)."""
    if keys:
        conn.execute("DELETE FROM mail_delivery WHERE key = ANY(%s)", (list(keys),))


def _alert_mails(
    conn: psycopg.Connection, rows: Sequence[RowKey], composer: Composer
) -> tuple[list[tuple[str, Outgoing]], list[str]]:
    """The mails of claimed alert rows (subject lines of their claim's variant), and the keys
    withheld (no longer visible)."""
    read = read_items(conn, rows)
    found = {r.key for r in read}
    withheld = [alert_key(k) for k in rows if k not in found]
    people = recipients(conn, [r.key[0] for r in read])
    variants = claimed_overrides(conn, [alert_key(r.key) for r in read])
    mails = []
    for r in read:
        key = alert_key(r.key)
        if not r.visible or r.key[0] not in people:
            withheld.append(key)
            continue
        template = variants[key].template if key in variants else None
        mails.append((key, composer.alert(people[r.key[0]], [r.item], key, template or "standard")))
    return mails, withheld


def recover_alerts(
    conn: psycopg.Connection,
    now: datetime,
    sender: Sender,
    composer: Composer,
    lease: timedelta = LEASE,
) -> tuple[int, int]:
    """Re-send alert deliveries claimed before ``now - lease`` and never marked sent, with
    their own key (same ``Message-ID``); those no longer visible are withheld. Returns
    (sent, withheld)."""
    keys = [
        r[0]
        for r in conn.execute(
            """SELECT key FROM mail_delivery WHERE sent_at IS NULL AND kind = 'alert'
               AND claimed_at < %s ORDER BY claimed_at FOR UPDATE SKIP LOCKED""",
            (now - lease,),
        )
    ]
    mails, withheld = _alert_mails(conn, [parse_alert_key(k) for k in keys], composer)
    unclaim(conn, withheld)
    conn.commit()
    return send_claimed(conn, mails, sender, now), len(withheld)


def alert_round(
    conn: psycopg.Connection,
    now: datetime,
    sender: Sender,
    settings: LoopSettings,
    composer: Composer,
    lease: timedelta = LEASE,
) -> Counts:
    """One instant alert round as at ``now`` (aware): recovery, decisions, claims (committed),
    render with visibility re-checked, SMTP, ``sent_at``. Commits its own work; ``conn`` must
    not be inside a transaction the caller wants to keep.

    Experiments on the ``alerts`` surface (running ones): a variant's ``weekly_budget``
    replaces the setting for its users, its ``template`` their subject lines; a **holdout**
    gets no instant alert: the rows it would have been sent overflow to the next daily digest
    like the budget's overflow (the digest surface decides whether that digest goes out).
    Every alert claimed, and every alert a holdout would have been sent, logs an exposure
    (``ref`` = the alert key) in the transaction of the claims."""
    counts = Counts()
    counts.recovered, counts.withheld = recover_alerts(conn, now, sender, composer, lease)
    decided = conn.execute(ALERTS_SELECT, {"now": now}).fetchall()
    assigned: dict[int, experiments.Assignment] = {}
    users = sorted({r[0] for r in decided})
    for begin in range(0, len(users), ASSIGN_CHUNK):
        assigned |= experiments.assignments(conn, "alerts", users[begin : begin + ASSIGN_CHUNK])
    to_send: list[RowKey] = []
    over: list[RowKey] = []
    held: list[RowKey] = []  # a holdout's rows that would have gone out
    for user, project, kind, meeting, lead, priority, slot in decided:
        row: RowKey = (user, project, kind, meeting, lead)
        a = assigned.get(user)
        budget = settings.weekly_budget
        if a is not None and a.variant.overrides.weekly_budget is not None:
            budget = a.variant.overrides.weekly_budget
        if not within_budget(slot, priority, budget):
            over.append(row)
        elif a is not None and a.variant.holdout:
            over.append(row)
            held.append(row)
        else:
            to_send.append(row)
    if over:
        conn.execute(
            """UPDATE inbox AS i SET overflow_at = %(now)s
               FROM unnest(%(users)s::bigint[], %(projects)s::bigint[], %(kinds)s::text[],
                           %(meetings)s::bigint[], %(leads)s::smallint[])
                    AS k(user_id, project_id, kind, meeting_id, lead_days)
               WHERE (i.user_id, i.project_id, i.kind, i.meeting_id, i.lead_days)
                   = (k.user_id, k.project_id, k.kind, k.meeting_id, k.lead_days)""",
            {"now": now, **_arrays(over)},
        )
    keys = [alert_key(k) for k in to_send]
    claimed = claim(conn, keys, [k[0] for k in to_send], "alert", composer, now)
    if to_send:
        conn.execute(
            """UPDATE inbox AS i SET alerted_at = %(now)s
               FROM unnest(%(users)s::bigint[], %(projects)s::bigint[], %(kinds)s::text[],
                           %(meetings)s::bigint[], %(leads)s::smallint[])
                    AS k(user_id, project_id, kind, meeting_id, lead_days)
               WHERE (i.user_id, i.project_id, i.kind, i.meeting_id, i.lead_days)
                   = (k.user_id, k.project_id, k.kind, k.meeting_id, k.lead_days)""",
            {"now": now, **_arrays(to_send)},
        )
    experiments.log_exposures(
        conn,
        [
            (k[0], assigned[k[0]], alert_key(k))
            for k in (*held, *(k for k in to_send if alert_key(k) in claimed))
            if k[0] in assigned
        ],
        now,
    )
    conn.commit()  # the claims and their exposures hold before anything reaches SMTP
    counts.overflowed, counts.claimed = len(over), len(claimed)
    mails, withheld = _alert_mails(conn, [k for k in to_send if alert_key(k) in claimed], composer)
    unclaim(conn, withheld)
    conn.commit()
    counts.withheld += len(withheld)
    counts.sent = send_claimed(conn, mails, sender, now) + counts.recovered
    return counts
