"""Experiments act on the loop, against the real PostGIS, the real mail module and a real SMTP
server (aiosmtpd): a digest holdout gets no digest and is still exposed, variants change the
digests' size, picks and subject lines, the alerts' budget and subject lines, an alert holdout
gets none, a ranking variant changes the API's ranking for its users only; every exposure is
logged once, and a paused experiment changes nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from consumers.alerts import MailModule, alert_key, alert_round, within_budget
from consumers.content import DigestContent, Item
from consumers.digest import digest_key, digest_round, recommender_picks
from consumers.mail.compose import alert_subject, at_commune, digest_subject
from consumers.settings import LoopSettings
from contracts.experiments import Experiment, ExperimentSpec, Overrides, Variant
from geo_engine import db, experiments
from geo_engine.catalog import load as catalog_load
from geo_engine.settings import ApiSettings, DatabaseSettings
from recommender.scorers import load_weighted
from recommender.variants import RankingVariants
from tests.api_data import _lines, national, organisation, project, territories
from tests.conftest import TEST_SECRET, token_for
from tests.smtpsink import SmtpSink, running_sink
from tests.test_digest_support import add_inbox, add_projects, add_users

AT = datetime(2026, 6, 3, 7, tzinfo=UTC)  # 09:00 in Paris: the day's digest is due
DAY = date(2026, 6, 3)
NO_QUIET = {"start": "00:00", "end": "00:00"}


# A ranking variant that turns the geography upside down: national bills before the commune's.
NATIONAL_FIRST = [
    {"name": "control", "share": 0.5},
    {
        "name": "national",
        "share": 0.5,
        "overrides": {"weights": {"level:commune": -5.0, "level:national": 4.0}},
    },
]


@pytest.fixture
def loop_conn(clone_france: Callable[[], DatabaseSettings]) -> Iterator[psycopg.Connection]:
    with db.connect(clone_france()) as conn:
        yield conn


@pytest.fixture
def sink() -> Iterator[tuple[SmtpSink, MailModule]]:
    with running_sink() as (collected, settings):
        yield collected, MailModule(settings)


def start(conn: psycopg.Connection, **spec: Any) -> Experiment:
    """Create and start an experiment, committed."""
    experiments.create(conn, ExperimentSpec.model_validate(spec))
    running = experiments.transition(conn, spec["name"], "start", AT - timedelta(days=1))
    conn.commit()
    return running


def user_of(mail: Any) -> int:
    return int(str(mail["To"]).split("-")[1].split("@")[0])


def exposures(conn: psycopg.Connection) -> list[tuple[int, str, str]]:
    return [
        (r[0], r[1], r[2])
        for r in conn.execute(
            "SELECT user_id, variant, ref FROM experiment_exposure ORDER BY user_id, ref"
        )
    ]


def arms(experiment: Experiment, users: range) -> dict[int, str]:
    """Each user's variant as Python computes it (the SQL must agree)."""
    out = {}
    for u in users:
        variant = experiment.variant_of(str(u))
        if variant is not None:
            out[u] = variant.name
    return out


def test_the_holdout_receives_no_digest_and_both_arms_are_exposed_once(
    loop_conn: psycopg.Connection, sink: tuple[SmtpSink, MailModule]
) -> None:
    collected, mail = sink
    conn = loop_conn
    users = range(1000, 1200)
    add_projects(conn, 1, [1, 2, 3])
    add_users(conn, list(users), frequency="daily")
    for u in users:
        add_inbox(conn, u, 1 + u % 3, AT - timedelta(hours=2))
    conn.commit()
    experiment = start(
        conn,
        name="holdout-digest",
        surface="digest",
        variants=[
            {"name": "control", "share": 0.5},
            {"name": "holdout", "share": 0.5, "holdout": True},
        ],
    )
    arm = arms(experiment, users)
    held = {u for u, v in arm.items() if v == "holdout"}
    assert len(arm) == 200 and 70 <= len(held) <= 130  # balanced within reason

    counts = digest_round(conn, "daily", AT, mail, LoopSettings(), mail)
    assert (counts.due, counts.held_out, counts.sent) == (200, len(held), 200 - len(held))
    got = Counter(user_of(m) for m in collected.messages)
    assert set(got) == set(users) - held  # not one mail reached the holdout
    assert set(got.values()) == {1}
    # One exposure per user, both arms, with the digest key each had or would have had.
    assert exposures(conn) == [(u, arm[u], digest_key((u, "daily", DAY))) for u in sorted(users)]
    # The holdout's rows stay undelivered, in the in-app inbox; the others' were shown first.
    rows = conn.execute(
        "SELECT user_id, digest_period, digest_rank FROM inbox ORDER BY user_id"
    ).fetchall()
    for user, period, rank in rows:
        assert (period, rank) == ((None, None) if user in held else (DAY, 1)), user
    assert conn.execute(
        "SELECT count(*) FROM digest WHERE held_out AND sent_at IS NULL AND item_count = 0"
    ).fetchone() == (len(held),)

    # A second round in the period sends and logs nothing more.
    again = digest_round(conn, "daily", AT + timedelta(hours=1), mail, LoopSettings(), mail)
    assert (again.due, again.sent, again.held_out) == (0, 0, 0)
    assert len(exposures(conn)) == 200 and len(collected.messages) == 200 - len(held)
    # The next morning, nothing new: the holdout is no more due than the control.
    nothing = digest_round(conn, "daily", AT + timedelta(days=1), mail, LoopSettings(), mail)
    assert (nothing.due, len(exposures(conn))) == (0, 200)
    # Something new for two users, one per arm: both due again, one digest sent.
    treated, kept = min(held), min(set(users) - held)
    for u in (treated, kept):
        add_inbox(conn, u, 4 if u % 3 else 5, AT + timedelta(days=1, hours=-1))
    add_projects(conn, 1, [4, 5])
    conn.commit()
    later = digest_round(conn, "daily", AT + timedelta(days=1), mail, LoopSettings(), mail)
    assert (later.due, later.sent, later.held_out) == (2, 1, 1)
    assert user_of(collected.messages[-1]) == kept
    assert len(exposures(conn)) == 202


def test_variants_change_the_digests_size_picks_and_subject_line(
    loop_conn: psycopg.Connection, sink: tuple[SmtpSink, MailModule]
) -> None:
    collected, mail = sink
    conn = loop_conn
    users = range(2000, 2060)
    add_projects(conn, 1, range(1, 9))
    add_users(conn, list(users), frequency="daily")  # Paris
    for u in users:
        for p in range(4, 9):  # 1-3 left for the picks (ties go to the project read first)
            add_inbox(conn, u, p, AT - timedelta(hours=p))
    conn.commit()
    experiment = start(
        conn,
        name="digest-shape",
        surface="digest",
        layer=(0, 70),
        variants=[
            {
                "name": "short",
                "share": 0.5,
                "overrides": {"digest_size": 2, "template": "question", "digest_picks": 0},
            },
            {"name": "local", "share": 0.5, "overrides": {"template": "local", "digest_picks": 1}},
        ],
    )
    arm = arms(experiment, users)
    assert {"short", "local"} <= set(arm.values()) and len(arm) < len(users)
    loop = LoopSettings(digest_picks=0)  # the default: no picks
    counts = digest_round(conn, "daily", AT, mail, loop, mail, picks=recommender_picks())
    assert counts.sent == len(users)
    assert counts.picks == sum(1 for v in arm.values() if v == "local")
    subjects = {user_of(m): str(m["Subject"]) for m in collected.messages}
    shown = dict(
        conn.execute(
            """SELECT user_id, array_agg(digest_rank ORDER BY digest_rank)
               FROM inbox WHERE digest_rank IS NOT NULL GROUP BY user_id"""
        ).fetchall()
    )
    picked = Counter(
        r[0] for r in conn.execute("SELECT user_id FROM inbox WHERE kind = 'recommended'")
    )
    for u in users:
        if arm.get(u) == "short":
            assert subjects[u] == "Votre avis compte : 2 projets près de chez vous"
            assert shown[u] == [1, 2] and picked[u] == 0
        elif arm.get(u) == "local":
            assert subjects[u] == "Votre résumé du jour à Paris : 6 nouveautés"
            assert shown[u] == [1, 2, 3, 4, 5, 6] and picked[u] == 1
        else:
            assert subjects[u] == "Votre résumé du jour : 5 nouveautés près de chez vous"
            assert shown[u] == [1, 2, 3, 4, 5] and picked[u] == 0
    assert Counter(v for _, v, _ in exposures(conn)) == Counter(arm.values())


def test_a_paused_experiment_changes_nothing_and_logs_nothing(
    loop_conn: psycopg.Connection, sink: tuple[SmtpSink, MailModule]
) -> None:
    collected, mail = sink
    conn = loop_conn
    users = range(3000, 3040)
    add_projects(conn, 1, [1])
    add_users(conn, list(users), frequency="daily")
    for u in users:
        add_inbox(conn, u, 1, AT - timedelta(hours=1))
    conn.commit()
    start(
        conn,
        name="paused-holdout",
        surface="digest",
        variants=[
            {"name": "holdout", "share": 0.5, "holdout": True},
            {"name": "question", "share": 0.5, "overrides": {"template": "question"}},
        ],
    )
    experiments.transition(conn, "paused-holdout", "pause", AT - timedelta(hours=3))
    conn.commit()
    counts = digest_round(conn, "daily", AT, mail, LoopSettings(), mail)
    assert (counts.sent, counts.held_out) == (40, 0)
    assert {str(m["Subject"]) for m in collected.messages} == {
        "Votre résumé du jour : 1 nouveauté près de chez vous"
    }
    assert exposures(conn) == []


def test_alert_variants_change_the_budget_and_subject_and_the_holdout_gets_none(
    loop_conn: psycopg.Connection, sink: tuple[SmtpSink, MailModule]
) -> None:
    collected, mail = sink
    conn = loop_conn
    users = range(4000, 4060)
    add_projects(conn, 1, range(1, 6))
    add_users(conn, list(users), frequency="instant", quiet_hours=NO_QUIET)
    for u in users:
        for p in range(1, 6):  # news: the default budget (3) sends 2, keeping one slot
            add_inbox(conn, u, p, AT - timedelta(minutes=10 * p))
    conn.commit()
    experiment = start(
        conn,
        name="alert-caps",
        surface="alerts",
        variants=[
            {"name": "control", "share": 0.34},
            {
                "name": "wide",
                "share": 0.33,
                "overrides": {"weekly_budget": 10, "template": "local"},
            },
            {"name": "holdout", "share": 0.33, "holdout": True},
        ],
    )
    arm = arms(experiment, users)
    assert set(arm.values()) == {"control", "wide", "holdout"} and len(arm) == len(users)
    counts = alert_round(conn, AT, mail, LoopSettings(weekly_budget=3), mail)
    per_arm = Counter(arm[user_of(m)] for m in collected.messages)
    sizes = Counter(arm.values())
    assert per_arm == {"control": 2 * sizes["control"], "wide": 5 * sizes["wide"]}
    assert counts.sent == sum(per_arm.values())
    for m in collected.messages:
        subject = str(m["Subject"])
        if arm[user_of(m)] == "wide":
            assert subject.startswith("Nouveau projet à Paris : Projet ")
        else:
            assert subject.startswith("Nouveau projet : Projet ")
    # Exposures: every alert sent, and the two a holdout user would have been sent.
    logged = exposures(conn)
    assert Counter(v for _, v, _ in logged) == {
        "control": 2 * sizes["control"],
        "wide": 5 * sizes["wide"],
        "holdout": 2 * sizes["holdout"],
    }
    sent_keys = {str(k) for (k,) in conn.execute("SELECT key FROM mail_delivery")}
    assert {ref for u, _, ref in logged if arm[u] != "holdout"} == sent_keys
    held = sorted(u for u, v in arm.items() if v == "holdout")
    assert {ref for u, _, ref in logged if u == held[0]} == {
        alert_key((held[0], p, "published", 0, 0))
        for p in (5, 4)  # the oldest first
    }
    # The holdout's rows all go to the next daily digest, like the budget's overflow.
    assert conn.execute(
        """SELECT count(*) FROM inbox WHERE user_id = ANY(%s) AND overflow_at IS NOT NULL
           AND alerted_at IS NULL""",
        (held,),
    ).fetchone() == (5 * len(held),)
    # A second round sends nothing and logs nothing more.
    again = alert_round(conn, AT + timedelta(minutes=5), mail, LoopSettings(weekly_budget=3), mail)
    assert again.sent == 0 and len(exposures(conn)) == len(logged)
    digests = digest_round(conn, "daily", AT, mail, LoopSettings(), mail)
    # A digest for whoever overflowed: the control (3 rows), the holdout (all five rows).
    assert digests.sent == len(users) - sizes["wide"]
    assert conn.execute(
        "SELECT count(*) FROM inbox WHERE user_id = ANY(%s) AND digest_period IS NOT NULL",
        (held,),
    ).fetchone() == (5 * len(held),)


def test_a_re_sent_digest_keeps_its_variants_subject(
    loop_conn: psycopg.Connection, sink: tuple[SmtpSink, MailModule]
) -> None:
    collected, mail = sink
    conn = loop_conn
    add_projects(conn, 1, [1, 2])
    add_users(conn, [5000, 5001, 5002, 5003], frequency="daily")
    for u in (5000, 5001, 5002, 5003):
        add_inbox(conn, u, 1, AT - timedelta(hours=1))
    conn.commit()
    experiment = start(
        conn,
        name="question-only",
        surface="digest",
        variants=[
            {"name": "question", "share": 0.5, "overrides": {"template": "question"}},
            {"name": "question-too", "share": 0.5, "overrides": {"template": "question"}},
        ],
    )
    assert len(arms(experiment, range(5000, 5004))) == 4

    class Down:
        def send(self, messages: Any) -> None:
            raise ConnectionRefusedError("no SMTP server")

    with pytest.raises(ConnectionRefusedError):
        digest_round(conn, "daily", AT, Down(), LoopSettings(), mail)
    conn.rollback()
    experiments.transition(conn, "question-only", "stop", AT)
    conn.commit()
    counts = digest_round(conn, "daily", AT + timedelta(minutes=11), mail, LoopSettings(), mail)
    assert counts.recovered == 4
    assert {str(m["Subject"]) for m in collected.messages} == {
        "Votre avis compte : 1 projet près de chez vous"
    }
    assert len(exposures(conn)) == 4


# The ranking surface, through the API.
RANKED = range(6000, 6040)


@pytest.fixture(scope="module")
def ranking_client(
    clone_france: Callable[[], DatabaseSettings],
) -> Iterator[tuple[TestClient, DatabaseSettings]]:
    database = clone_france()
    with db.connect(database) as conn:
        add_users(conn, list(RANKED), frequency="daily")  # Paris
        catalog_load.store_organisations(conn, _lines([organisation(1)]), "test")
        catalog_load.store_projects(
            conn,
            _lines(
                [
                    project(1, 1, national(), status="open"),
                    project(2, 1, territories(("commune", "75056")), status="open"),
                ]
            ),
            "test",
        )
        conn.commit()
    settings = ApiSettings(jwt_secret=SecretStr(TEST_SECRET), pool_min_size=1, pool_max_size=2)
    with TestClient(create_app(database, settings)) as client:
        yield client, database


def test_a_ranking_variant_changes_the_apis_ranking_for_its_users_only(
    ranking_client: tuple[TestClient, DatabaseSettings],
) -> None:
    client, database = ranking_client
    with db.connect(database) as conn:
        experiment = start(
            conn,
            name="national-first",
            surface="ranking",
            layer=(0, 60),
            variants=NATIONAL_FIRST,
        )
    arm = arms(experiment, RANKED)
    assert {"control", "national"} <= set(arm.values()) and len(arm) < len(RANKED)

    def ranked(user: int, headers: dict[str, str] | None = None) -> tuple[list[int], str]:
        answer = client.get(
            f"/v1/users/{user}/recommendations?k=2", headers=headers or token_for(user)
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return [r["project_id"] for r in body["recommendations"]], body["version"]

    for _ in range(2):  # twice the same day: one exposure
        for u in RANKED:
            order, version = ranked(u)
            if arm.get(u) == "national":
                assert (order, version) == ([1, 2], f"weighted-v1+{experiment.id}/national"), u
            else:
                assert (order, version) == ([2, 1], "weighted-v1"), u
    day = datetime.now(UTC).date().isoformat()
    with db.connect(database) as conn:
        assert exposures(conn) == [(u, arm[u], f"ranking:{day}") for u in sorted(arm)]
        # Staff looking sees the variant and exposes nobody; a paused experiment: defaults.
        outside = next(u for u in RANKED if u not in arm)
        treated = next(u for u, v in arm.items() if v == "national")
        conn.execute("DELETE FROM experiment_exposure")
        conn.commit()
        assert ranked(treated, token_for(1, staff=True))[0] == [1, 2]
        assert ranked(outside, token_for(1, staff=True))[0] == [2, 1]
        assert exposures(conn) == []
        experiments.transition(conn, "national-first", "pause", AT)
        conn.commit()
        assert ranked(treated) == ([2, 1], "weighted-v1")
        assert exposures(conn) == []


def test_digest_picks_follow_the_users_ranking_variant(
    loop_conn: psycopg.Connection, sink: tuple[SmtpSink, MailModule]
) -> None:
    collected, mail = sink
    conn = loop_conn
    users = range(7000, 7030)
    add_users(conn, list(users), frequency="daily")  # Paris
    catalog_load.store_organisations(conn, _lines([organisation(1)]), "test")
    catalog_load.store_projects(
        conn,
        _lines(
            [
                project(1, 1, national(), status="open"),
                project(2, 1, territories(("commune", "75056")), status="open"),
                project(3, 1, national(), status="open"),
            ]
        ),
        "test",
    )
    for u in users:
        add_inbox(conn, u, 3, AT - timedelta(hours=1))
    conn.commit()
    experiment = start(
        conn,
        name="picks-national",
        surface="ranking",
        variants=NATIONAL_FIRST,
    )
    arm = arms(experiment, users)
    weighted = load_weighted()
    picks = recommender_picks(weighted, RankingVariants(weighted))
    counts = digest_round(conn, "daily", AT, mail, LoopSettings(digest_picks=1), mail, picks)
    assert counts.picks == len(users)
    picked = dict(
        conn.execute("SELECT user_id, project_id FROM inbox WHERE kind = 'recommended'").fetchall()
    )
    for u in users:
        assert picked[u] == (1 if arm[u] == "national" else 2), u
    day = AT.date().isoformat()
    assert exposures(conn) == [(u, arm[u], f"ranking:{day}") for u in sorted(users)]
    assert len(collected.messages) == len(users)


def _item(title: str) -> Item:
    return Item(1, title, "Mairie", "consultation", "published", "r", "commune", None)


def test_subject_lines_of_the_three_templates() -> None:
    one, three = (_item("Budget participatif"),), tuple(_item(f"P{n}") for n in range(3))
    daily = DigestContent("daily", DAY, three)
    weekly = DigestContent("weekly", DAY, one)
    assert digest_subject(daily, "Bayonne", "standard") == (
        "Votre résumé du jour : 3 nouveautés près de chez vous"
    )
    assert digest_subject(weekly, "Bayonne", "question") == (
        "Votre avis compte : 1 projet près de chez vous"
    )
    assert digest_subject(weekly, "Le Havre", "local") == (
        "Votre résumé de la semaine au Havre : 1 nouveauté"
    )
    assert digest_subject(daily, None, "local") == digest_subject(daily, None, "standard")
    assert alert_subject(one, "Bayonne", "standard") == "Nouveau projet : Budget participatif"
    assert alert_subject(one, "Bayonne", "question") == "Votre avis compte : Budget participatif"
    assert alert_subject(one, "Les Mureaux", "local") == (
        "Nouveau projet aux Mureaux : Budget participatif"
    )
    assert alert_subject(three, "Bayonne", "question") == (
        "Votre avis compte : 3 projets près de chez vous"
    )
    assert [at_commune(n) for n in ("Paris", "La Rochelle", "Lesparre-Médoc")] == [
        "à Paris",
        "à La Rochelle",
        "à Lesparre-Médoc",
    ]


def test_the_budget_rule_keeps_the_reserve_for_deadlines() -> None:
    assert [within_budget(s, 1, 3) for s in (1, 2, 3)] == [True, True, False]
    assert [within_budget(s, 2, 3) for s in (1, 2, 3, 4)] == [True, True, True, False]
    assert not within_budget(1, 1, 0) and not within_budget(1, 2, 0)


def test_ranking_variants_are_built_once_and_refused_ones_rank_with_the_default() -> None:
    weighted = load_weighted()
    variants = RankingVariants(weighted)

    def assigned(name: str, **overrides: Any) -> experiments.Assignment:
        variant = Variant(name=name, share=0.5, overrides=Overrides(**overrides))
        return experiments.Assignment(7, variant, "1")

    control = variants.scorer_of(assigned("control"))
    assert control is weighted
    local = variants.scorer_of(assigned("local", weights={"proximity": 9.0}))
    assert local is not None and local.version == "weighted-v1+7/local"
    assert local.weights["proximity"] == 9.0
    assert local.weights["level:commune"] == weighted.weights["level:commune"]
    assert variants.scorer_of(assigned("local", weights={"proximity": 9.0})) is local  # cached
    assert variants.scorer_of(assigned("typo", weights={"proximty": 1.0})) is None
    assert variants.scorer_of(assigned("learned", scorer="learned")) is None  # none trained here
