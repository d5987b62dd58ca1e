"""Daily and weekly digests: at most one per user and local period, even across crashes.

A round as at instant ``at`` (:func:`digest_round`):

1. re-sends digests claimed more than ``lease`` ago and never marked sent (same key, same
   ``Message-ID``, same items);
2. computes, per time zone (a handful, in Python: :mod:`consumers.periods` resolves the DST
   days), the local period containing ``at`` and when its digest is due (``digest_hour``
   local, on the user's ``digest_weekday`` for weekly ones); finds, in one statement
   (``digest_due.sql``), the users whose digest is due, not yet claimed, with something new;
3. reads which variant of a running ``digest`` experiment each due user is in
   (:func:`geo_engine.experiments.assignments`, by chunks);
4. optionally adds the recommender's picks for those users only, not held out (``picks``:
   inbox rows of kind ``recommended``, created at ``at``; as many as the variant's
   ``digest_picks`` or the setting; ranked by the user's ranking variant, if any);
5. by chunks of ``RENDER_CHUNK`` due users, claims in one statement (``digest_claim.sql``):
   ``INSERT INTO digest … ON CONFLICT DO NOTHING`` and, for the digests it claimed,
   ``UPDATE inbox`` gives each undelivered row created by ``at`` to its digest; inserts the
   mail deliveries; logs the exposures; commits;
6. renders the chunk, the visibility rule checked again (rows no longer visible are
   dropped; a digest left empty is not sent and its claim is dropped), ranks, deduplicates,
   diversifies and groups the items (``digest_size`` of the variant or the setting), records
   where the digest showed each row (``inbox.digest_rank``, 1 = first); sends with the
   variant's subject line, marks ``sent_at`` (delivery and digest).

**Experiments.** A user in a **holdout** variant gets no digest: their period is claimed
``held_out`` (no items, no delivery, never sent: the period is spent as a sent digest's is)
and their rows stay undelivered, readable in the in-app inbox; only rows created after it are
new for their next period (``digest_due.sql``), so they are due exactly when a digest would
have had something new. Every digest claimed with items and every held-out period logs an
exposure (``ref`` = the digest key, ``digest:<user>:<frequency>:<period>``: for the holdout,
the key it would have had) in the claim's transaction: a crash neither loses nor duplicates
one. A re-sent digest keeps its claim's variant (read back from the exposure). Paused and
stopped experiments change nothing and log nothing.

Periods are local days (daily) and ISO weeks from their Monday (weekly): a round at any instant
of a period claims that period's digest once, whether the day is 23, 24 or 25 hours long. An
item belongs to the first digest claimed after it was created (``created_at <= at``): items
never fall between two digests nor appear in two. Which items: for ``daily`` and ``weekly``
users every undelivered row; for ``instant`` users, in their daily digest, the rows their
alert budget overflowed; users with ``off`` or no e-mail get no digest (their inbox keeps
everything). A digest shows at most ``digest_size`` items; the rest of its rows stay readable
in the in-app inbox.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import psycopg

from consumers import periods
from consumers.alerts import (
    ASSIGN_CHUNK,
    LEASE,
    Composer,
    Counts,
    Outgoing,
    Rendered,
    RowKey,
    Sender,
    claim,
    claimed_overrides,
    read_items,
    recipients,
    send_claimed,
    unclaim,
)
from consumers.content import SECTIONS, DigestContent, Item
from consumers.settings import LoopSettings
from contracts.errors import InvalidInput
from geo_engine import experiments
from geo_engine.audience import LEVELS
from geo_engine.db import load_sql

if TYPE_CHECKING:
    from recommender.scorers import LinearScorer
    from recommender.variants import RankingVariants

DIGEST_DUE = load_sql("consumers", "digest_due.sql")
DIGEST_CLAIM = load_sql("consumers", "digest_claim.sql")
SERVES: dict[periods.Frequency, list[str]] = {"daily": ["daily", "instant"], "weekly": ["weekly"]}
RENDER_CHUNK = 5_000  # digests rendered, sent and marked together
PER_ORGANISATION = 2  # a digest's first items: at most this many of one organisation

# Adds inbox rows of kind 'recommended' for the given users (user id → how many at most,
# created at the round's instant) and returns how many: the recommender's top picks not yet
# in their inbox.
Picks = Callable[[psycopg.Connection, Mapping[int, int], datetime], int]

Progress = Callable[[int, int], None]  # (digests done, digests claimed)
DigestKey = tuple[int, str, date]  # user_id, frequency, period_start


def digest_key(key: DigestKey) -> str:
    return f"digest:{key[0]}:{key[1]}:{key[2].isoformat()}"


def parse_digest_key(key: str) -> DigestKey:
    _, user, frequency, start = key.split(":")
    return int(user), frequency, date.fromisoformat(start)


def recommender_picks(
    scorer: LinearScorer | None = None, ranking: RankingVariants | None = None
) -> Picks:
    """:data:`Picks` from the recommender's batch path (:mod:`recommender.batch`: candidate
    sets planned per commune once, the users ranked by département): each user's top ``k``
    (their number) open projects not yet in their inbox (any kind) become ``recommended``
    rows (priority 0, the level that made it a candidate, the recommender's first French
    reason, its score as relevance), in one INSERT. Public projects only (the batch's
    anonymous candidates). They are for digests only: ``overflow_at`` is set at once, so no
    instant alert takes them and an instant user's daily digest does.

    Users in a running ranking experiment are ranked by their variant's scorer (``ranking``:
    its scorers) and log its exposure (``ranking:<UTC day>``) in the picks' transaction; the
    others by ``scorer`` (default: the weighted scorer)."""
    import numpy as np  # noqa: PLC0415 (heavy: numpy, scipy)

    from recommender.batch import CHUNK, load_batch
    from recommender.facts import MATCH_LEVELS
    from recommender.ranking import RankingConfig, rank_group
    from recommender.reasons import reasons
    from recommender.scorers import load_weighted
    from recommender.variants import exposure_ref

    ranker = scorer or load_weighted()
    # Recommender levels (MATCH_LEVELS) → the inbox's (geo_engine.audience.LEVELS).
    to_inbox = [LEVELS.index("epci" if w == "epci_xxl" else w) for w in MATCH_LEVELS]
    national = LEVELS.index("national")

    def picks(conn: psycopg.Connection, wanted: Mapping[int, int], at: datetime) -> int:
        users = sorted(wanted)
        variants = ranking.for_users(conn, users) if ranking is not None else {}
        experiments.log_exposures(
            conn, [(u, a, exposure_ref(at)) for u, (a, _) in variants.items()], at
        )
        batch = load_batch(conn, users)
        out: dict[str, list[object]] = {
            name: []
            for name in ("users", "projects", "levels", "scores", "reasons", "ranks", "limits")
        }
        for whole in batch.groups:
            # A group's users by the scorer that ranks them (one for all without experiments).
            by_scorer: dict[int, tuple[LinearScorer, list[int]]] = {}
            for at_row, position in enumerate(whole.users):
                found = variants.get(int(batch.users.ids[position]))
                chosen = ranker if found is None else found[1]
                by_scorer.setdefault(id(chosen), (chosen, []))[1].append(at_row)
            for chosen, members in by_scorer.values():
                group = whole.only(np.asarray(members, dtype=np.intp))
                for start in range(0, len(group.users), CHUNK):
                    part = group.only(slice(start, start + CHUNK))
                    most = max(wanted[int(batch.users.ids[u])] for u in part.users)
                    config = RankingConfig(k=2 * most)  # the inbox may hold some of the best
                    ranked = rank_group(batch.items, batch.users, part, chosen, config)
                    levels = part.user_levels()
                    column = {int(c): j for j, c in enumerate(part.items)}
                    for row, u in enumerate(ranked.users):
                        for j, item in enumerate(ranked.items[row]):
                            if item < 0:
                                continue
                            lv = (
                                levels[column[int(item)]]
                                if levels.ndim == 1
                                else levels[row, column[int(item)]]
                            )
                            said = reasons(
                                batch.items,
                                int(item),
                                ranked.contributions[row, j],
                                place_names=batch.users.place_names[u],
                                distance_km=float(ranked.distance_km[row, j]),
                                interests=batch.users.interests[u],
                                co_participated_title=None,
                                min_contribution=config.min_contribution,
                            )
                            user = int(batch.users.ids[u])
                            out["users"].append(user)
                            out["projects"].append(int(batch.items.ids[item]))
                            out["levels"].append(national if lv < 0 else to_inbox[int(lv)])
                            out["scores"].append(float(ranked.scores[row, j]))
                            out["reasons"].append(said[0] if said else "Recommandé pour vous")
                            out["ranks"].append(j)
                            out["limits"].append(wanted[user])
        rows = conn.execute(
            """WITH fresh AS (
                   SELECT r.*, row_number() OVER (PARTITION BY r.u ORDER BY r.rank) AS n
                   FROM unnest(%(users)s::bigint[], %(projects)s::bigint[],
                               %(levels)s::smallint[], %(scores)s::real[], %(reasons)s::text[],
                               %(ranks)s::int[], %(limits)s::int[])
                        AS r(u, p, l, s, reason, rank, k)
                   WHERE NOT EXISTS (SELECT FROM inbox AS i
                                     WHERE i.user_id = r.u AND i.project_id = r.p))
               INSERT INTO inbox (user_id, project_id, kind, level, priority, relevance, reason,
                                  created_at, overflow_at)
               SELECT u, p, 'recommended', l, 0, s, reason, %(at)s, %(at)s FROM fresh
               WHERE n <= k
               ON CONFLICT DO NOTHING""",
            {"at": at, **out},
        )
        return rows.rowcount

    return picks


def zones(conn: psycopg.Connection) -> list[str]:
    """Every zone a user may be timed by: their communes', their own, the default."""
    rows = conn.execute(
        """SELECT timezone FROM commune UNION SELECT timezone FROM app_user
           WHERE timezone IS NOT NULL UNION SELECT 'Europe/Paris'"""
    )
    return sorted(r[0] for r in rows)


def schedule(
    frequency: periods.Frequency, at: datetime, tz_names: Sequence[str], hour: int
) -> dict[str, list[object]]:
    """Per zone and weekday: the local period containing ``at`` and when its digest is due
    (the parameters of ``digest_due.sql``)."""
    out: dict[str, list[object]] = {"zones": [], "weekdays": [], "starts": [], "dues": []}
    for tz in tz_names:
        start = periods.period_start(frequency, at, tz)
        for weekday in periods.WEEKDAYS:
            out["zones"].append(tz)
            out["weekdays"].append(weekday)
            out["starts"].append(start)
            out["dues"].append(periods.digest_due(frequency, start, tz, hour, weekday))
    return out


def arrange(rendered: Sequence[Rendered], size: int) -> tuple[Item, ...]:
    """A digest's items (:func:`arranged`)."""
    return tuple(r.item for r in arranged(rendered, size))


def arranged(rendered: Sequence[Rendered], size: int) -> list[Rendered]:
    """A digest's rows in the order it shows them: visible ones, ranked (civic deadlines, then
    news, then recommendations; by relevance, then oldest first), one per (project, kind,
    meeting), diversified (at most ``PER_ORGANISATION`` of one organisation before any other
    is left out), cut to ``size``, grouped by section, narrowest first, keeping the rank
    within."""
    ranked = sorted(
        (r for r in rendered if r.visible),
        key=lambda r: (-r.priority, -(r.relevance or 0.0), r.created_at, r.key),
    )
    seen: set[tuple[int, str, int]] = set()
    unique = []
    for r in ranked:
        if (r.key[1], r.key[2], r.key[3]) not in seen:
            seen.add((r.key[1], r.key[2], r.key[3]))
            unique.append(r)
    per_org: dict[int, int] = {}
    first: list[Rendered] = []
    later: list[Rendered] = []
    for r in unique:
        per_org[r.organisation_id] = per_org.get(r.organisation_id, 0) + 1
        (first if per_org[r.organisation_id] <= PER_ORGANISATION else later).append(r)
    chosen = (first + later)[:size]
    chosen.sort(key=lambda r: SECTIONS.index(r.item.section))  # stable: rank kept within
    return chosen


def _rows_of(conn: psycopg.Connection, keys: Sequence[DigestKey]) -> list[RowKey]:
    rows = conn.execute(
        """SELECT i.user_id, i.project_id, i.kind, i.meeting_id, i.lead_days
           FROM unnest(%s::bigint[], %s::text[], %s::date[]) AS d(user_id, frequency, start)
           JOIN inbox AS i ON i.user_id = d.user_id AND i.digest_frequency = d.frequency
                          AND i.digest_period = d.start""",
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def _record_ranks(
    conn: psycopg.Connection, rows: Sequence[RowKey], ranks: Mapping[RowKey, int]
) -> None:
    """Set ``digest_rank`` on the rows of some digests in one statement: the position their
    digest shows them at (1 = first), NULL for the rows it does not show (cut by its size, a
    duplicate, no longer visible; a re-sent digest rewrites its ranks)."""
    if not rows:
        return
    conn.execute(
        """UPDATE inbox AS i SET digest_rank = k.rank
           FROM unnest(%(users)s::bigint[], %(projects)s::bigint[], %(kinds)s::text[],
                       %(meetings)s::bigint[], %(leads)s::smallint[], %(ranks)s::smallint[])
                AS k(user_id, project_id, kind, meeting_id, lead_days, rank)
           WHERE (i.user_id, i.project_id, i.kind, i.meeting_id, i.lead_days)
               = (k.user_id, k.project_id, k.kind, k.meeting_id, k.lead_days)
             AND i.digest_rank IS DISTINCT FROM k.rank""",
        {
            "users": [r[0] for r in rows],
            "projects": [r[1] for r in rows],
            "kinds": [r[2] for r in rows],
            "meetings": [r[3] for r in rows],
            "leads": [r[4] for r in rows],
            "ranks": [ranks.get(r) for r in rows],
        },
    )


def _mark_digests(conn: psycopg.Connection, keys: Sequence[str], now: datetime) -> None:
    parsed = [parse_digest_key(k) for k in keys]
    conn.execute(
        """UPDATE digest AS d SET sent_at = %s
           FROM unnest(%s::bigint[], %s::text[], %s::date[]) AS k(user_id, frequency, start)
           WHERE (d.user_id, d.frequency, d.period_start) = (k.user_id, k.frequency, k.start)""",
        (now, [k[0] for k in parsed], [k[1] for k in parsed], [k[2] for k in parsed]),
    )


def _send_digests(
    conn: psycopg.Connection,
    keys: Sequence[DigestKey],
    sender: Sender,
    composer: Composer,
    settings: LoopSettings,
    now: datetime,
) -> tuple[int, int]:
    """Render, send and mark the claimed digests ``keys``, by chunks, each with its claim's
    variant (size, subject line); record where each showed its rows (``inbox.digest_rank``).
    Returns (sent, withheld: nothing left visible)."""
    sent = withheld = 0
    for start in range(0, len(keys), RENDER_CHUNK):
        chunk = keys[start : start + RENDER_CHUNK]
        rows = _rows_of(conn, chunk)
        by_user: dict[int, list[Rendered]] = {}
        for r in read_items(conn, rows):
            by_user.setdefault(r.key[0], []).append(r)
        people = recipients(conn, [k[0] for k in chunk])
        variants = claimed_overrides(conn, [digest_key(k) for k in chunk])
        mails: list[tuple[str, Outgoing]] = []
        empty: list[str] = []
        ranks: dict[RowKey, int] = {}
        for user, frequency, period in chunk:
            key = digest_key((user, frequency, period))
            overrides = variants.get(key)
            size = settings.digest_size
            if overrides is not None and overrides.digest_size is not None:
                size = overrides.digest_size
            shown = arranged(by_user.get(user, []), size) if user in people else []
            if not shown:
                empty.append(key)
                continue
            ranks.update((r.key, n) for n, r in enumerate(shown, 1))
            content = DigestContent(
                "daily" if frequency == "daily" else "weekly",
                period,
                tuple(r.item for r in shown),
            )
            template = overrides.template if overrides is not None else None
            mails.append((key, composer.digest(people[user], content, key, template or "standard")))
        _record_ranks(conn, rows, ranks)
        unclaim(conn, empty)
        conn.commit()
        sent += send_claimed(conn, mails, sender, now, _mark_digests)
        withheld += len(empty)
    return sent, withheld


def recover_digests(
    conn: psycopg.Connection,
    now: datetime,
    sender: Sender,
    composer: Composer,
    settings: LoopSettings,
    lease: timedelta = LEASE,
) -> tuple[int, int]:
    """Re-send digests claimed before ``now - lease`` and never marked sent: same key, same
    ``Message-ID``, same items (visibility checked again). Returns (sent, withheld)."""
    keys = [
        parse_digest_key(r[0])
        for r in conn.execute(
            """SELECT key FROM mail_delivery WHERE sent_at IS NULL AND kind = 'digest'
               AND claimed_at < %s ORDER BY claimed_at FOR UPDATE SKIP LOCKED""",
            (now - lease,),
        )
    ]
    return _send_digests(conn, keys, sender, composer, settings, now)


def _claim(
    conn: psycopg.Connection,
    frequency: periods.Frequency,
    at: datetime,
    users: Sequence[int],
    starts: Sequence[date],
    assigned: Mapping[int, experiments.Assignment],
    composer: Composer,
) -> tuple[list[DigestKey], int]:
    """Claim the digests of ``users`` for their periods ``starts`` with their items and their
    mail deliveries (held-out periods for a holdout's users), log the exposures of the users
    in an experiment (``assigned``), and commit; the digests this call claimed with at least
    one item, and how many periods it held out."""
    held = [u in assigned and assigned[u].variant.holdout for u in users]
    claimed = conn.execute(
        DIGEST_CLAIM,
        {"frequency": frequency, "at": at, "users": users, "starts": starts, "held": held},
    ).fetchall()
    given = [(r[0], r[1], r[3]) for r in claimed if not r[2] and r[3] > 0]
    lost = [(r[0], r[1]) for r in claimed if not r[2] and r[3] == 0]
    # A claim that found nothing (taken in between by another round) is dropped: no digest.
    conn.execute(
        """DELETE FROM digest AS d USING unnest(%s::bigint[], %s::date[]) AS e(user_id, start)
           WHERE d.user_id = e.user_id AND d.frequency = %s AND d.period_start = e.start""",
        ([r[0] for r in lost], [r[1] for r in lost], frequency),
    )
    conn.execute(
        """UPDATE digest AS d SET item_count = g.n
           FROM unnest(%s::bigint[], %s::date[], %s::int[]) AS g(user_id, start, n)
           WHERE d.user_id = g.user_id AND d.frequency = %s AND d.period_start = g.start""",
        ([g[0] for g in given], [g[1] for g in given], [g[2] for g in given], frequency),
    )
    keys: list[DigestKey] = [(g[0], frequency, g[1]) for g in given]
    claim(conn, [digest_key(k) for k in keys], [k[0] for k in keys], "digest", composer, at)
    exposed = [(r[0], r[1]) for r in claimed if r[2]] + [(g[0], g[1]) for g in given]
    experiments.log_exposures(
        conn,
        [(u, assigned[u], digest_key((u, frequency, p))) for u, p in exposed if u in assigned],
        at,
    )
    conn.commit()  # digests, their items and exposures are claimed before anything reaches SMTP
    return keys, sum(1 for r in claimed if r[2])


@dataclass
class DigestCounts(Counts):
    """:class:`Counts` of a digest round, plus ``due`` users with something new, ``picks``
    recommended rows added and periods ``held_out`` (an experiment's holdout: no digest)."""

    due: int = 0
    picks: int = 0
    held_out: int = 0


def digest_round(
    conn: psycopg.Connection,
    frequency: periods.Frequency,
    at: datetime,
    sender: Sender,
    settings: LoopSettings,
    composer: Composer,
    picks: Picks | None = None,
    lease: timedelta = LEASE,
    progress: Progress | None = None,
    shard: tuple[int, int] = (0, 1),
) -> DigestCounts:
    """One round of ``frequency`` digests as at ``at`` (aware). Commits its own work; a second
    round in the same periods sends nothing new. ``shard`` (i, n): only users whose id is i
    modulo n, so n processes (on as many cores or machines) share a round; overlapping or
    repeated shards are harmless, the claims decide."""
    if not 0 <= shard[0] < shard[1]:
        raise InvalidInput(f"shard {shard[0]} of {shard[1]}: give 0 <= index < count")
    periods.local_day(at, "UTC")  # refuses a naive instant before anything is done
    counts = DigestCounts()
    counts.recovered, counts.withheld = recover_digests(conn, at, sender, composer, settings, lease)
    plan = schedule(frequency, at, zones(conn), settings.digest_hour)
    due = conn.execute(
        DIGEST_DUE,
        {
            "at": at,
            "frequency": frequency,
            "wanted": SERVES[frequency],
            "shard": shard[0],
            "shards": shard[1],
            **plan,
        },
    ).fetchall()
    counts.due = len(due)
    assigned: dict[int, experiments.Assignment] = {}
    for begin in range(0, len(due), ASSIGN_CHUNK):
        part_users = [r[0] for r in due[begin : begin + ASSIGN_CHUNK]]
        assigned |= experiments.assignments(conn, "digest", part_users)
    if picks is not None and due:
        wanted = {}
        for user, _ in due:
            a = assigned.get(user)
            n = settings.digest_picks
            if a is not None and a.variant.overrides.digest_picks is not None:
                n = a.variant.overrides.digest_picks
            if n > 0 and not (a is not None and a.variant.holdout):
                wanted[user] = n
        if wanted:
            counts.picks = picks(conn, wanted, at)
    # Claimed and sent by chunks: a claim waits for SMTP no longer than one chunk takes, far
    # less than the lease after which another round would take it for lost.
    for begin in range(0, len(due), RENDER_CHUNK):
        part = due[begin : begin + RENDER_CHUNK]
        keys, held_out = _claim(
            conn, frequency, at, [r[0] for r in part], [r[1] for r in part], assigned, composer
        )
        counts.claimed += len(keys)
        counts.held_out += held_out
        sent, withheld = _send_digests(conn, keys, sender, composer, settings, at)
        counts.sent += sent
        counts.withheld += withheld
        if progress is not None:
            progress(begin + len(part), len(due))
    counts.sent += counts.recovered
    return counts
