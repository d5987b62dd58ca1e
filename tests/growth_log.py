"""A small engagement log whose figures were computed by hand, for the growth report's tests
(metrics, API, CLI). November 2026, Paris time; the report's period is the month:
since = 2026-11-01T00:00+01:00 (2026-10-31T23:00Z), until = 2026-12-01T00:00+01:00
(2026-11-30T23:00Z). Times below are UTC.

Experiment ``objet`` (digest surface, user units), variants control 50 % and treatment 50 %.

- u1 (control; signed up 2026-10-01, before the period; exposed 11-02 08:00, again 11-09, and
  once logged in treatment on 11-25: the FIRST exposure decides, control). Mails: digest m1
  sent 11-02 08:00:05, open pixel 09:00, click on project 101 at 09:01, participation in 101 on
  11-04 10:00 (within 7 days: participated); digest m2 sent 11-09 08:00:05, opened by event
  only (12:00, no pixel); alert m3 sent 11-05 07:00, nothing. A click on 11-30 23:30 is after
  the end: ignored. → sent 3 (1 alert, 2 digests), opened 2, clicked 1, participated 1.
- u2 (control; signed up 11-03 10:00; exposed 11-03 12:00). Digest m4 sent 11-03 12:00:05, no
  pixel, click on 102 at 13:00 (the click proves the opening), participation in 102 on 11-12
  14:00: 9 days later, OUTSIDE the 7-day window. Unsubscribes on 11-20.
  → sent 1, opened 1, clicked 1, participated 0; unsubscribed.
- u3 (treatment; signed up 2026-09-01; exposed 11-04 08:00). A digest m0 sent 10-20 (before the
  period) is never counted. Digest m5 sent 11-04 08:00:05: pixel 08:30, click 101 at 09:00,
  participation 101 on 11-05 09:00; digest m6 sent 11-11 08:00:05: pixel 08:30, click 103 at
  09:00, participation 103 at 10:00. → sent 2, opened 2, clicked 2, participated 2.
- u4 (treatment; signed up 11-10 07:00; exposed 11-10 08:00). Digest m7 sent 11-10 08:00:05,
  nothing; a participation in 104 on 11-12 without a click (engaged, not a participant);
  unsubscribes 11-15. → sent 1, opened 0, clicked 0, participated 0; unsubscribed.
- u5 (treatment; signed up 2026-01-01; exposed 11-20 08:00). Digest m8 sent 11-15, BEFORE its
  first exposure: not counted in the experiment (counted for everyone); digest m9 sent 11-20
  08:00:05, nothing. → sent 1.
- u6 (in no experiment; signed up 2026-06-01). Alert m10 sent 11-05 07:00, click on 101 at
  07:30, no participation.

Per variant (experiment report):
- control: users 2; sent 4 (alerts 1, digests 3); opened 3; clicked 2; participated 1;
  unsubscribed 1 → open 3/4, click 2/4, participation 1/2 (u1), unsubscribe 1/2; return 7 d:
  u1 (entered 11-02 08:00, opened 09:00) and u2 (click 1 h after) → 2/2; return 30 d: both
  windows end after 11-30 23:00 → 0/0 (None).
- treatment: users 3; sent 4 (digests 4); opened 2; clicked 2; participated 2; unsubscribed 1
  → open 2/4, click 2/4, participation 1/3 (u3), unsubscribe 1/3; return 7 d: u3 (pixel
  30 min after) yes, u4 (participation 2 days after) yes, u5 (nothing) no → 2/3; 30 d: 0/0.
- SRM: 2 and 3 units against 2.5 and 2.5: χ² = 0.25/2.5 · 2 = 0.2, p = 0.6547.

Everyone (no experiment): users 6; sent 10 (u1 3, u2 1, u3 2, u4 1, u5 2 with m8, u6 1);
participants 2/6 (u1, u3); unsubscribed 2/6; return 7 d from sign-up: u2 and u4 (the only
sign-ups in the period) both came back → 2/2.

Places: u1, u2 in commune A (< 500 inhabitants), u3 in B (500–1,999), u5 in D (2,000–9,999),
A, B and D in the same XXL EPCI; u4 and u6 in C (≥ 50,000, not in an XXL EPCI). Engaged (a
click or a participation after the start): u1, u2, u3, u4 (and u6 for everyone); u5 not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from contracts.experiments import Experiment, ExperimentSpec
from geo_engine import experiments

SINCE = datetime(2026, 10, 31, 23, tzinfo=UTC)
UNTIL = datetime(2026, 11, 30, 23, tzinfo=UTC)
U1, U2, U3, U4, U5, U6 = 9_100_001, 9_100_002, 9_100_003, 9_100_004, 9_100_005, 9_100_006
NAME = "objet"


def at(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


@dataclass(frozen=True)
class Places:
    """The communes of the log: A < 500, B 500-1,999, D 2,000-9,999 inhabitants, all three in
    the XXL EPCI ``epci``; C ≥ 50,000 in an EPCI that is not XXL."""

    a: str
    b: str
    c: str
    d: str
    epci: str


def _places(conn: psycopg.Connection) -> Places:
    row = conn.execute(
        """WITH x AS (
               SELECT e.siren,
                      min(c.code) FILTER (WHERE c.population < 500) AS a,
                      min(c.code) FILTER (WHERE c.population BETWEEN 500 AND 1999) AS b,
                      min(c.code) FILTER (WHERE c.population BETWEEN 2000 AND 9999) AS d
               FROM epci AS e JOIN commune AS c ON c.epci_siren = e.siren
               WHERE e.xxl GROUP BY e.siren)
           SELECT siren, a, b, d FROM x
           WHERE a IS NOT NULL AND b IS NOT NULL AND d IS NOT NULL
           ORDER BY siren LIMIT 1"""
    ).fetchone()
    big = conn.execute(
        """SELECT c.code FROM commune AS c JOIN epci AS e ON e.siren = c.epci_siren
           WHERE c.population >= 50000 AND NOT e.xxl ORDER BY c.code LIMIT 1"""
    ).fetchone()
    assert row is not None and big is not None
    return Places(a=row[1], b=row[2], c=big[0], d=row[3], epci=row[0])


def write_log(conn: psycopg.Connection) -> tuple[Experiment, Places]:
    """Write the log above (not committed); the experiment is running."""
    places = _places(conn)
    experiment = experiments.create(
        conn,
        ExperimentSpec.model_validate(
            {
                "name": NAME,
                "surface": "digest",
                "variants": [
                    {"name": "control", "share": 0.5},
                    {"name": "treatment", "share": 0.5, "overrides": {"digest_size": 5}},
                ],
            }
        ),
    )
    experiments.transition(conn, NAME, "start", at(11, 1, 0))
    experiment = experiments.get(conn, NAME)
    users = [
        (U1, at(10, 1, 12), places.a),
        (U2, at(11, 3, 10), places.a),
        (U3, at(9, 1, 12), places.b),
        (U4, at(11, 10, 7), places.c),
        (U5, at(1, 1, 12), places.d),
        (U6, at(6, 1, 12), places.c),
    ]
    conn.cursor().executemany(
        "INSERT INTO app_user (id, created_at) VALUES (%s, %s)", [(u, c) for u, c, _ in users]
    )
    conn.cursor().executemany(
        "INSERT INTO user_place (user_id, commune_code) VALUES (%s, %s)",
        [(u, p) for u, _, p in users],
    )
    exposures = [
        (U1, "control", at(11, 2, 8), "digest:1"),
        (U1, "control", at(11, 9, 8), "digest:2"),
        (U1, "treatment", at(11, 25, 8), "digest:3"),
        (U2, "control", at(11, 3, 12), "digest:4"),
        (U3, "treatment", at(11, 4, 8), "digest:5"),
        (U4, "treatment", at(11, 10, 8), "digest:7"),
        (U5, "treatment", at(11, 20, 8), "digest:9"),
    ]
    conn.cursor().executemany(
        """INSERT INTO experiment_exposure (experiment_id, user_id, variant, unit, ref,
                                            exposed_at)
           VALUES (%s, %s, %s, %s::text, %s, %s)""",
        [(experiment.id, u, v, u, ref, t) for u, v, t, ref in exposures],
    )
    # key, user, kind, sent_at, opened_at (pixel)
    mails = [
        ("m0", U3, "digest", at(10, 20, 8), at(10, 20, 9)),
        ("m1", U1, "digest", at(11, 2, 8, 0, 5), at(11, 2, 9)),
        ("m2", U1, "digest", at(11, 9, 8, 0, 5), None),
        ("m3", U1, "alert", at(11, 5, 7), None),
        ("m4", U2, "digest", at(11, 3, 12, 0, 5), None),
        ("m5", U3, "digest", at(11, 4, 8, 0, 5), at(11, 4, 8, 30)),
        ("m6", U3, "digest", at(11, 11, 8, 0, 5), at(11, 11, 8, 30)),
        ("m7", U4, "digest", at(11, 10, 8, 0, 5), None),
        ("m8", U5, "digest", at(11, 15, 8, 0, 5), None),
        ("m9", U5, "digest", at(11, 20, 8, 0, 5), None),
        ("m10", U6, "alert", at(11, 5, 7), None),
    ]
    conn.cursor().executemany(
        """INSERT INTO mail_delivery (key, user_id, kind, message_id, claimed_at, sent_at,
                                      opened_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        [(k, u, kind, f"<{k}@test>", sent, sent, opened) for k, u, kind, sent, opened in mails],
    )
    # user, kind, project, notification, occurred_at
    events = [
        (U1, "opened", None, "m1", at(11, 2, 9)),
        (U1, "clicked", 101, "m1", at(11, 2, 9, 1)),
        (U1, "participated", 101, None, at(11, 4, 10)),
        (U1, "opened", None, "m2", at(11, 9, 12)),
        (U1, "clicked", 101, "m2", at(11, 30, 23, 30)),
        (U2, "clicked", 102, "m4", at(11, 3, 13)),
        (U2, "participated", 102, None, at(11, 12, 14)),
        (U2, "unsubscribed", None, "m4", at(11, 20, 9)),
        (U3, "opened", None, "m5", at(11, 4, 8, 30)),
        (U3, "clicked", 101, "m5", at(11, 4, 9)),
        (U3, "participated", 101, None, at(11, 5, 9)),
        (U3, "opened", None, "m6", at(11, 11, 8, 30)),
        (U3, "clicked", 103, "m6", at(11, 11, 9)),
        (U3, "participated", 103, None, at(11, 11, 10)),
        (U4, "participated", 104, None, at(11, 12, 9)),
        (U4, "unsubscribed", None, None, at(11, 15, 9)),
        (U6, "clicked", 101, "m10", at(11, 5, 7, 30)),
    ]
    conn.cursor().executemany(
        """INSERT INTO engagement_event (event_id, user_id, kind, project_id, notification,
                                         occurred_at)
           VALUES (gen_random_uuid(), %s, %s, %s, %s, %s)""",
        events,
    )
    return experiment, places
