"""The offline replay of candidate weights (growth/replay.py) on a small hand-made log of digests
in Bayonne, committed once in a cloned database (the CLI and the API read it through their own
connections): a hand-computed case, identical weights, a candidate that buries the clicks,
refused weights, and staff-only access."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from contracts.errors import InvalidInput
from geo_engine import db
from geo_engine.catalog import load as catalog_load
from geo_engine.settings import ApiSettings, DatabaseSettings
from growth import replay as engine
from growth.report import parse_instant
from recommender.scorers import DEFAULT_WEIGHTS, LinearScorer, load_weighted
from recommender.settings import RecommenderSettings
from tests.api_data import _lines, member, organisation, project, territories
from tests.cli import run_cli
from tests.conftest import token_for

pytestmark = pytest.mark.geodata

BAYONNE = "64102"
HOME = (-1.4748, 43.4929)
PLACE = (-1.4700, 43.4900)  # every project at the same spot: only the themes tell them apart
ORG, PRIVATE_ORG = 9300, 9310
PRIVATE = 9311  # a private project of PRIVATE_ORG, whose member E got it in a digest
E = 9221
PRIVATE_WEEK = datetime(2026, 11, 16, tzinfo=UTC)
P1, P2, P3 = 9301, 9302, 9303
THEME = {P1: "culture", P2: "mobilite", P3: "sport"}
A, B, C, D = 9201, 9202, 9203, 9204  # the hand-computed log
BURIED = (9211, 9212, 9213, 9214, 9215)  # the log a candidate buries
HAND_WEEK = datetime(2026, 11, 2, tzinfo=UTC)
BURY_WEEK = datetime(2026, 11, 9, tzinfo=UTC)
STAFF = token_for(1, staff=True)

# (user, interest, shown in order, held but not shown, clicked from the digest)
HAND = [
    (A, THEME[P3], [P1, P2, P3], [], [P3]),
    (B, THEME[P2], [P1, P2, P3], [], [P2]),
    (C, THEME[P1], [P1, P2, P3], [], [P1]),
    (D, THEME[P3], [P1, P2], [P3], [P2]),
]
BURY = [(u, THEME[P1], [P1, P2, P3], [], [P1]) for u in BURIED]


def _digest(
    conn: psycopg.Connection,
    user: int,
    week: datetime,
    shown: list[int],
    held: list[int],
    clicked: list[int],
    kind: str = "published",
) -> str:
    period = week.date()
    key = f"digest:{user}:weekly:{period.isoformat()}"
    sent = week + timedelta(hours=8)
    conn.execute(
        "INSERT INTO mail_delivery (key, user_id, kind, message_id, claimed_at, sent_at) "
        "VALUES (%s, %s, 'digest', %s, %s, %s)",
        (key, user, f"<{key}@test>", sent, sent),
    )
    for rank, pid in [(r, p) for r, p in enumerate(shown, start=1)] + [(None, p) for p in held]:
        conn.execute(
            """INSERT INTO inbox (user_id, project_id, kind, level, reason, created_at,
                                  digest_frequency, digest_period, digest_rank)
               VALUES (%s, %s, %s, 0, 'test', %s, 'weekly', %s, %s)""",
            (user, pid, kind, week, period, rank),
        )
    for pid in clicked:
        _event(conn, user, "clicked", pid, key, sent + timedelta(hours=1))
    return key


def _event(
    conn: psycopg.Connection, user: int, kind: str, pid: int, key: str, at: datetime
) -> None:
    conn.execute(
        """INSERT INTO engagement_event (event_id, user_id, kind, project_id, notification,
                                         occurred_at)
           VALUES (gen_random_uuid(), %s, %s, %s, %s, %s)""",
        (user, kind, pid, key, at),
    )


@pytest.fixture(scope="module")
def logged_db(clone_france: Callable[[], DatabaseSettings]) -> DatabaseSettings:
    settings = clone_france()
    with db.connect(settings) as conn:
        catalog_load.store_organisations(
            conn, _lines([organisation(ORG), organisation(PRIVATE_ORG)]), "test"
        )
        private = project(
            PRIVATE,
            PRIVATE_ORG,
            territories(("commune", BAYONNE)),
            location=PLACE,
            status="open",
            visibility="private",
            themes=[THEME[P1]],
        )
        public = [
            project(
                pid,
                ORG,
                territories(("commune", BAYONNE)),
                location=PLACE,
                status="open",
                themes=[THEME[pid]],
            )
            for pid in (P1, P2, P3)
        ]
        catalog_load.store_projects(conn, _lines([*public, private]), "test")
        for user, interest, *_ in [*HAND, *BURY, (E, THEME[P1])]:
            conn.execute("INSERT INTO app_user (id, interests) VALUES (%s, %s)", (user, [interest]))
            conn.execute(
                """INSERT INTO user_place (user_id, commune_code, home)
                   VALUES (%s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))""",
                (user, BAYONNE, *HOME),
            )
        for user, _, shown, held, clicked in HAND:
            _digest(conn, user, HAND_WEEK, shown, held, clicked)
        for user, _, shown, held, clicked in BURY:
            _digest(conn, user, BURY_WEEK, shown, held, clicked)
        catalog_load.store_members(conn, _lines([member(PRIVATE_ORG, E)]), "test")
        _digest(conn, E, PRIVATE_WEEK, [PRIVATE, P1], [], [PRIVATE])
        # What the replay must not count: a digest mailed before the window (clicked), an
        # open, a click from an alert, and a digest of the window that ranked nothing.
        early = _digest(conn, A, HAND_WEEK - timedelta(days=14), [P1, P2], [], [P1], "closing_soon")
        _event(conn, A, "opened", P1, early, HAND_WEEK + timedelta(hours=9))
        _event(conn, C, "clicked", P2, f"alert:{C}:{P2}:published:0:0", HAND_WEEK)
        _digest(conn, B, HAND_WEEK + timedelta(days=1), [], [P1], [], "results")
        conn.execute(
            "UPDATE inbox SET digest_rank = NULL WHERE user_id = %s AND digest_period = %s",
            (B, date(2026, 11, 3)),
        )
        conn.commit()
    return settings


@pytest.fixture(scope="module")
def zero_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Current weights that rank nothing: every list keeps its logged order."""
    path = tmp_path_factory.mktemp("weights") / "zero.toml"
    path.write_text('version = "zero"\n[weights]\ninterest_declared = 0.0\n', encoding="utf-8")
    return path


def _replay(
    settings: DatabaseSettings,
    current: LinearScorer,
    candidate: LinearScorer,
    week: datetime,
    params: engine.ReplayParams | None = None,
):  # type: ignore[no-untyped-def]
    with db.connect(settings) as conn:
        return engine.replay(conn, current, candidate, week, week + timedelta(days=7), params)


# --------------------------------------------------------------------------------------------
# Estimators, on arrays


def _lists(clicked: list[list[bool]], shown: list[int]) -> engine.LoggedLists:
    n = len(clicked)
    return engine.LoggedLists.of(
        [f"k{i}" for i in range(n)],
        list(range(n)),
        [list(range(len(c))) for c in clicked],
        [[0] * len(c) for c in clicked],
        clicked,
        shown,
    )


def test_propensity_ratios_clip_and_size() -> None:
    """A click at rank 4 moved to rank 1 earns (4/1)^eta: 4 at eta 1, 16 at eta 2, cut to 10;
    moved past the digest's size it earns nothing."""
    lists = _lists([[False, False, False, True], [False, True, False]], [4, 2])
    to_top = np.array([[3, 0, 1, 2], [0, 2, 1, -1]])
    values, clipped = engine.ips_clicks(lists, to_top, eta=1.0, clip=10.0)
    assert values.tolist() == [4.0, 0.0] and clipped == 0
    values, clipped = engine.ips_clicks(lists, to_top, eta=2.0, clip=10.0)
    assert values.tolist() == [10.0, 0.0] and clipped == 1
    logged = np.array([[0, 1, 2, 3], [0, 1, 2, -1]])
    assert engine.ips_clicks(lists, logged, eta=2.0, clip=10.0)[0].tolist() == [1.0, 1.0]


def test_team_draft_takes_turns_and_shares_common_picks() -> None:
    coin = np.random.default_rng(7)
    placed, teams = engine.team_draft([0, 1, 2, 3], [0, 1, 2, 3], 4, coin)
    assert placed == [0, 1, 2, 3] and teams == [engine.SHARED] * 4
    for _ in range(20):
        placed, teams = engine.team_draft([0, 1, 2, 3], [3, 2, 1, 0], 4, coin)
        assert sorted(placed) == [0, 1, 2, 3]
        assert teams.count(0) == teams.count(1) == 2  # picks alternate
        assert {placed[0], placed[1]} == {0, 3}  # each team's best first
    placed, teams = engine.team_draft([0, 1, 2, 3], [0, 2, 1, 3], 3, coin)
    assert placed[0] == 0 and teams[0] == engine.SHARED  # the common prefix
    assert sorted(placed[1:]) == [1, 2] and sorted(teams[1:]) == [0, 1]


def test_verdict_follows_the_interval() -> None:
    assert engine.verdict(-0.3, -0.1) == "à écarter"
    assert engine.verdict(0.1, 0.3) == "prometteur, à tester en ligne"
    assert engine.verdict(-0.1, 0.3) == "sans effet mesurable"


# --------------------------------------------------------------------------------------------
# On the logged digests


def test_hand_computed_case(logged_db: DatabaseSettings, zero_weights: Path) -> None:
    """Current weights keep the logged order; the candidate puts the user's theme first.

    A clicked P3 at rank 3, the candidate shows it first: 3/1 = 3. B clicked P2 at rank 2,
    now first: 2. C's click stays first: 1. D's digest showed two: the candidate puts the
    held P3 first, pushing the clicked P2 to rank 3, past the size: 0. Current: 1 each.
    """
    current = load_weighted(zero_weights)
    candidate = engine.candidate_scorer(current, {"interest_declared": 5.0})
    report = _replay(logged_db, current, candidate, HAND_WEEK)
    assert (report.lists, report.clicks) == (4, 4)
    assert report.current.clicks_per_list == 1.0
    assert report.candidate.clicks_per_list == 1.5
    assert report.difference == 0.5
    assert report.ci_low <= 0.5 <= report.ci_high
    assert report.verdict == engine.verdict(report.ci_low, report.ci_high)
    # NDCG at the digest's size: A's click at 3, B's and D's at 2, C's at 1; the candidate
    # puts three first and D's out.
    at = 1 / np.log2(np.arange(2, 5))
    assert report.current.ndcg == pytest.approx((at[2] + at[1] + 1 + at[1]) / 4)
    assert report.candidate.ndcg == pytest.approx(0.75)
    # Interleaving: A and B go to the candidate whatever the coin; C's rankings agree; D's
    # click is past the interleaved digest.
    assert (report.interleaving_wins, report.interleaving_losses) == (2, 0)
    assert report.interleaving_ties == 2
    assert report.interleaving_p_value == pytest.approx(0.5)
    assert (report.current.version, report.candidate.version) == ("zero", "candidat")
    assert report.unscored_items == 0 and report.eta == 1.0


def test_eta_changes_the_estimate(logged_db: DatabaseSettings, zero_weights: Path) -> None:
    """At eta = 2: A earns (3/1)² = 9, B (2/1)² = 4, C 1, D 0."""
    current = load_weighted(zero_weights)
    candidate = engine.candidate_scorer(current, {"interest_declared": 5.0})
    report = _replay(logged_db, current, candidate, HAND_WEEK, engine.ReplayParams(eta=2.0))
    assert report.candidate.clicks_per_list == pytest.approx(14 / 4)
    params = engine.ReplayParams(eta=3.0, clip=10.0)
    clipped = _replay(logged_db, current, candidate, HAND_WEEK, params)
    assert clipped.candidate.clipped == 1  # A's 27 is cut to 10
    assert clipped.candidate.clicks_per_list == pytest.approx((10 + 8 + 1) / 4)


@pytest.mark.parametrize("same", ["overrides", "file"])
def test_same_weights_change_nothing(logged_db: DatabaseSettings, same: str) -> None:
    current = load_weighted()
    candidate = engine.candidate_scorer(current, {} if same == "overrides" else DEFAULT_WEIGHTS)
    report = _replay(logged_db, current, candidate, HAND_WEEK)
    assert report.difference == 0.0
    assert report.ci_low == 0.0 and report.ci_high == 0.0
    assert report.current.clicks_per_list == report.candidate.clicks_per_list
    assert report.interleaving_ties == report.lists == 4
    assert report.interleaving_p_value is None
    assert report.verdict == "sans effet mesurable"


def test_burying_the_clicks_is_discarded(logged_db: DatabaseSettings) -> None:
    """Five users clicked the first item, which matches their interest; a candidate that
    hates declared interests puts it last: 1/3 each instead of 1."""
    current = load_weighted()
    candidate = engine.candidate_scorer(current, {"interest_declared": -50.0})
    report = _replay(logged_db, current, candidate, BURY_WEEK)
    assert report.lists == 5
    assert report.current.clicks_per_list == 1.0
    assert report.candidate.clicks_per_list == pytest.approx(1 / 3)
    assert report.ci_high < 0
    assert report.verdict == "à écarter"
    assert report.interleaving_losses == 5 and report.interleaving_wins == 0
    assert report.interleaving_p_value == pytest.approx(2 / 32)


def test_own_clicks_do_not_feed_the_history(logged_db: DatabaseSettings) -> None:
    """The replay removes a list's own projects from its user's history: with the click in
    the history, `interest_learned` (the text of what one clicked) would favour the clicked
    item by itself. Here a candidate weighing only history features changes nothing."""
    with db.connect(logged_db) as conn:
        conn.execute(
            "INSERT INTO engagement (user_id, project_id, kind, first_at, last_at, count) "
            "VALUES (%s, %s, 'click', %s, %s, 1)",
            (A, P3, HAND_WEEK + timedelta(hours=9), HAND_WEEK + timedelta(hours=9)),
        )
        zero = LinearScorer("weighted", "zero", {})
        history = LinearScorer("weighted", "history", {"interest_learned": 5.0})
        report = engine.replay(conn, zero, history, HAND_WEEK, HAND_WEEK + timedelta(days=7))
        conn.rollback()
    assert report.difference == 0.0


def test_private_projects_are_left_unscored(logged_db: DatabaseSettings) -> None:
    """E's digest showed a private project of E's organisation first, and E clicked it: the
    replay reads facts as anyone may see them, so neither ranker scores it; both place it
    last (the click then earns 1/2 in both arms)."""
    current = load_weighted()
    candidate = engine.candidate_scorer(current, {"interest_declared": 50.0})
    report = _replay(logged_db, current, candidate, PRIVATE_WEEK)
    assert (report.lists, report.clicks, report.unscored_items) == (1, 1, 1)
    assert report.current.clicks_per_list == report.candidate.clicks_per_list == 0.5
    assert report.difference == 0.0


def test_refused_weights_and_windows(logged_db: DatabaseSettings) -> None:
    current = load_weighted()
    with pytest.raises(InvalidInput, match="unknown features nope"):
        engine.candidate_scorer(current, {"nope": 1.0})
    with pytest.raises(InvalidInput, match="finite numbers between -1000 and 1000: proximity"):
        engine.candidate_scorer(current, {"proximity": float("nan")})
    with pytest.raises(InvalidInput, match="eta"):
        engine.ReplayParams(eta=float("inf"))
    with pytest.raises(InvalidInput, match="nothing to replay"):
        _replay(logged_db, current, current, HAND_WEEK + timedelta(days=100))
    with db.connect(logged_db) as conn, pytest.raises(InvalidInput, match="before"):
        engine.replay(conn, current, current, BURY_WEEK, HAND_WEEK)
    now = datetime(2026, 11, 30, tzinfo=UTC)
    assert engine.window(None, None, now) == (now - timedelta(days=28), now)
    for since, until in [
        (None, datetime(1, 1, 1, tzinfo=UTC)),
        (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))), now),
        (datetime(2026, 11, 1), now),
    ]:
        with pytest.raises(InvalidInput):
            engine.window(since, until, now)


# --------------------------------------------------------------------------------------------
# The command line and the API


def _env(settings: DatabaseSettings, weights: Path, tmp: Path) -> dict[str, str]:
    return {
        "GEO_ENGINE_DATABASE_URL": settings.database_url,
        "GEO_ENGINE_RECOMMENDER_WEIGHTS": str(weights),
        "GEO_ENGINE_RECOMMENDER_MODEL_DIR": str(tmp),
    }


@pytest.mark.slow
def test_cli(logged_db: DatabaseSettings, zero_weights: Path, tmp_path: Path) -> None:
    env = _env(logged_db, zero_weights, tmp_path)
    candidate = tmp_path / "candidate.toml"
    candidate.write_text('version = "c1"\n[weights]\ninterest_declared = 5.0\n', "utf-8")
    window = ["--since", "2026-11-02", "--until", "2026-11-09T00:00:00+00:00"]
    done = run_cli("growth", "replay", "--weights", str(candidate), *window, "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["candidate"]["clicks_per_list"] == 1.5
    assert report["candidate"]["version"] == "c1" and report["lists"] == 4
    shown = run_cli("growth", "replay", "--weights", str(candidate), *window, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "verdict" in shown.stdout and "1.500" in shown.stdout

    candidate.write_text('version = "c2"\n[weights]\nnope = 1.0\n', "utf-8")
    refused = run_cli("growth", "replay", "--weights", str(candidate), *window, env=env)
    assert refused.returncode == 2
    assert "unknown features nope" in refused.stderr


def test_instants_are_paris_time_between_1970_and_9000() -> None:
    # One parser for the report and the replay (growth.report.parse_instant).
    assert parse_instant("2026-11-02", "since") == datetime(2026, 11, 1, 23, tzinfo=UTC)
    assert parse_instant("2026-11-02T01:00:00+01:00", "since") == datetime(2026, 11, 2, tzinfo=UTC)
    with pytest.raises(InvalidInput, match="since: 'demain' is not a date"):
        parse_instant("demain", "since")
    with pytest.raises(InvalidInput, match="until: '0001-01-01' must lie between 1970 and 9000"):
        parse_instant("0001-01-01", "until")
    with pytest.raises(InvalidInput, match="does not exist in Paris time"):
        parse_instant("2026-03-29T02:30", "since")


@pytest.fixture(scope="module")
def replay_client(
    logged_db: DatabaseSettings,
    api_settings: ApiSettings,
    zero_weights: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TestClient]:
    settings = RecommenderSettings(
        weights=zero_weights, model_dir=tmp_path_factory.mktemp("models")
    )
    app = create_app(logged_db, api_settings, recommender_settings=settings)
    with TestClient(app) as client:
        yield client


WINDOW = {"since": "2026-11-02T00:00:00Z", "until": "2026-11-09T00:00:00Z"}


def test_api(replay_client: TestClient) -> None:
    body = {"weights": {"interest_declared": 5.0}, "eta": 1, **WINDOW}
    answer = replay_client.post("/v1/growth/replay", json=body, headers=STAFF)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["candidate"]["clicks_per_list"] == 1.5
    assert report["current"]["version"] == "zero"
    assert report["interleaving_wins"] == 2


def test_api_refuses_bad_weights(replay_client: TestClient) -> None:
    unknown = replay_client.post(
        "/v1/growth/replay", json={"weights": {"nope": 1.0}, **WINDOW}, headers=STAFF
    )
    assert unknown.status_code == 422
    assert "unknown features nope" in unknown.json()["detail"]
    infinite = replay_client.post(
        "/v1/growth/replay",
        content='{"weights": {"proximity": Infinity}}',
        headers={**STAFF, "Content-Type": "application/json"},
    )
    assert infinite.status_code == 422
    assert "proximity" in infinite.json()["detail"]
    naive = replay_client.post(
        "/v1/growth/replay",
        json={"weights": {}, "since": "2026-11-02T00:00:00", "until": "2026-11-09T00:00:00"},
        headers=STAFF,
    )
    assert naive.status_code == 422 and "time zone" in naive.json()["detail"]


def test_api_is_for_staff(replay_client: TestClient) -> None:
    body = {"weights": {}, **WINDOW}
    assert replay_client.post("/v1/growth/replay", json=body).status_code == 401
    member = replay_client.post("/v1/growth/replay", json=body, headers=token_for(A))
    assert member.status_code == 403
