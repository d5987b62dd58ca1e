"""Recommendations on the real territories, through the ground: geographic order for a user
with only an address, the XXL rule in the Pays Basque, private projects, feedback, and the HTTP
face. Every test but the HTTP ones writes in a transaction rolled back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from contracts.engagement import FeedbackWrite
from geo_engine import writes
from geo_engine.catalog import load as catalog_load
from recommender.ranking import RankingConfig
from recommender.scorers import load_weighted
from recommender.service import Recommender
from recommender.settings import RecommenderSettings
from tests.api_data import _lines, member, national, organisation, project, territories
from tests.conftest import token_for

pytestmark = pytest.mark.geodata

BAYONNE, BAIGORRY = "64102", "64477"
PAYS_BASQUE = "200067106"  # CA du Pays Basque: 158 communes, XXL
HOME = (-1.4748, 43.4929)  # Bayonne, near the cathedral
NEAR_BAYONNE = (-1.4700, 43.4900)  # 600 m away
IN_BAIGORRY = (-1.3540, 43.1794)  # 36 km south, same intercommunalité
ANGLET = (-1.5150, 43.4850)  # the next commune, 3 km west
ORG, PRIVATE_ORG = 8101, 8102
USER, MEMBER, STRANGER = 9101, 9102, 9103
CONFIG = RankingConfig(k=10, mmr_lambda=1.0, exposure_floor=False)


def _users(conn: psycopg.Connection) -> None:
    for uid in (USER, MEMBER, STRANGER):
        conn.execute("INSERT INTO app_user (id) VALUES (%s)", (uid,))
        conn.execute(
            """INSERT INTO user_place (user_id, commune_code, home)
               VALUES (%s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))""",
            (uid, BAYONNE, *HOME),
        )


def _catalogue(conn: psycopg.Connection, projects: list[Any]) -> None:
    catalog_load.store_organisations(
        conn, _lines([organisation(ORG), organisation(PRIVATE_ORG)]), "test"
    )
    catalog_load.store_members(conn, _lines([member(PRIVATE_ORG, MEMBER)]), "test")
    catalog_load.store_projects(conn, _lines(projects), "test")


def _open(**more: Any) -> dict[str, Any]:
    return {"status": "open", **more}


@pytest.fixture
def basque(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    _users(conn)
    _catalogue(
        conn,
        [
            project(1, ORG, national(), **_open(themes=["mobilite"])),
            project(2, ORG, territories(("commune", BAYONNE)), **_open(themes=["culture"])),
            project(3, ORG, territories(("epci", PAYS_BASQUE)), location=NEAR_BAYONNE, **_open()),
            project(4, ORG, territories(("epci", PAYS_BASQUE)), location=IN_BAIGORRY, **_open()),
            project(5, ORG, territories(("departement", "64")), **_open()),
            project(6, ORG, territories(("region", "75")), **_open()),
            project(
                7, PRIVATE_ORG, territories(("commune", BAYONNE)), visibility="private", **_open()
            ),
            project(8, ORG, territories(("commune", BAYONNE)), status="closed"),
        ],
    )
    yield conn


def _ranked(conn: psycopg.Connection, user: int, scorer: Any = None) -> list[Any]:
    from recommender.ground import recommend_for_user

    return recommend_for_user(conn, user, scorer or load_weighted(), CONFIG)


def test_the_pays_basque_is_xxl_in_the_real_data(basque: psycopg.Connection) -> None:
    row = basque.execute("SELECT xxl, member_count FROM epci WHERE siren = %s", (PAYS_BASQUE,))
    assert row.fetchone() == (True, 158)


def test_a_user_with_only_an_address_gets_the_geographic_order(
    basque: psycopg.Connection,
) -> None:
    ids = [r.project_id for r in _ranked(basque, USER)]
    # Commune first; the EPCI project next door; then département, région, national; the
    # EPCI project 36 km away in the XXL intercommunalité is not local: below the département.
    assert ids[:2] == [2, 3]
    assert ids.index(5) < ids.index(4)
    assert ids.index(5) < ids.index(6) < ids.index(1)
    assert 8 not in ids  # closed


def test_reasons_name_the_commune_and_the_distance(basque: psycopg.Connection) -> None:
    by_id = {r.project_id: r for r in _ranked(basque, USER)}
    assert "Concerne votre commune, Bayonne" in by_id[2].reasons
    assert "Concerne votre intercommunalité, CA du Pays Basque" in by_id[3].reasons
    assert "À 500 m de chez vous" in by_id[3].reasons or "À 600 m de chez vous" in by_id[3].reasons
    assert not any("km de chez vous" in r for r in by_id[4].reasons)
    assert by_id[1].reasons == ["Concerne toute la France"]


def test_a_private_project_reaches_members_only(basque: psycopg.Connection) -> None:
    assert 7 in [r.project_id for r in _ranked(basque, MEMBER)]
    assert 7 not in [r.project_id for r in _ranked(basque, STRANGER)]


def test_feedback_changes_the_next_ranking(basque: psycopg.Connection) -> None:
    actor = writes.Actor(user_id=USER)
    before = [r.project_id for r in _ranked(basque, USER)]
    assert before[0] == 2
    writes.give_feedback(
        basque,
        actor,
        USER,
        FeedbackWrite.model_validate({"kind": "not_interested", "project_id": 2}),
    )
    after = [r.project_id for r in _ranked(basque, USER)]
    assert 2 not in after
    # Less of a theme: the national mobility project sinks below the région's.
    writes.give_feedback(
        basque,
        actor,
        USER,
        FeedbackWrite.model_validate({"kind": "less_of_theme", "theme": "mobilite"}),
    )
    muted = [r.project_id for r in _ranked(basque, USER)]
    assert muted.index(1) == len(muted) - 1


def test_participations_are_left_out_and_teach_the_profile(basque: psycopg.Connection) -> None:
    from contracts.engagement import EngagementWrite

    writes.record_engagement(
        basque,
        writes.Actor(user_id=USER),
        USER,
        EngagementWrite.model_validate({"project_id": 2, "kind": "participation"}),
    )
    ranked = _ranked(basque, USER)
    assert 2 not in [r.project_id for r in ranked]


def test_followed_and_nearby_projects_beyond_the_commune(basque: psycopg.Connection) -> None:
    # A project of Anglet (next to Bayonne, 3 km from home) and one in Lille by an association
    # far away: neither concerns Bayonne. The first is nearby; the second comes once followed.
    far_org = PRIVATE_ORG + 1
    catalog_load.store_organisations(basque, _lines([organisation(far_org)]), "test")
    catalog_load.store_projects(
        basque,
        _lines(
            [
                project(21, ORG, territories(("commune", "64024")), location=ANGLET, **_open()),
                project(22, far_org, territories(("commune", "59350")), **_open()),
            ]
        ),
        "test",
    )
    by_id = {r.project_id: r for r in _ranked(basque, USER)}
    assert 21 in by_id and 22 not in by_id
    assert any(r.startswith("À ") and r.endswith(" de chez vous") for r in by_id[21].reasons)
    writes.follow(basque, writes.Actor(user_id=USER), USER, far_org)
    by_id = {r.project_id: r for r in _ranked(basque, USER)}
    assert "Proposé par une organisation que vous suivez" in by_id[22].reasons


def test_a_user_still_choosing_gets_what_concerns_both_communes(
    basque: psycopg.Connection,
) -> None:
    pending = 9104
    basque.execute("INSERT INTO app_user (id) VALUES (%s)", (pending,))
    basque.execute(
        """INSERT INTO user_place (user_id, candidate_communes, postal_code)
           VALUES (%s, ARRAY[%s, '64024'], '64100')""",
        (pending, BAYONNE),
    )
    ids = {r.project_id for r in _ranked(basque, pending)}
    # Bayonne or Anglet: the Pays Basque's, the département's, the région's and the national
    # projects concern both; Bayonne's own does not.
    assert {3, 4, 5, 6, 1} <= ids
    assert 2 not in ids


def test_an_unknown_user_is_not_found(basque: psycopg.Connection) -> None:
    from contracts.errors import NotFound

    with pytest.raises(NotFound):
        _ranked(basque, 424242)


def test_recommendations_over_http(client: TestClient, api_db: Any) -> None:
    from geo_engine import db

    with db.connect(api_db) as conn:
        _users(conn)
        _catalogue(
            conn,
            [
                project(11, ORG, territories(("commune", BAYONNE)), **_open()),
                project(12, ORG, national(), **_open()),
            ],
        )
        conn.commit()
    answer = client.get(f"/v1/users/{USER}/recommendations?k=2", headers=token_for(USER))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["scorer"] == "weighted" and body["version"] == "weighted-v1"
    assert [r["project_id"] for r in body["recommendations"]] == [11, 12]
    assert body["recommendations"][0]["reasons"][0] == "Concerne votre commune, Bayonne"
    # Someone else's list answers exactly like a missing user's.
    other = client.get(f"/v1/users/{USER}/recommendations", headers=token_for(STRANGER))
    missing = client.get("/v1/users/777777/recommendations", headers=token_for(STRANGER))
    assert other.status_code == missing.status_code == 404
    assert other.content == missing.content
    for bad in ("0", "101", "٣", "abc"):
        refused = client.get(f"/v1/users/{USER}/recommendations?k={bad}", headers=token_for(USER))
        assert refused.status_code == 422, bad


def test_the_service_refuses_a_k_beyond_its_bound(basque: psycopg.Connection) -> None:
    from contracts.errors import InvalidInput

    recommender = Recommender.load(RecommenderSettings(k_max=5))
    with pytest.raises(InvalidInput, match="k must be between 1 and 5"):
        recommender.for_user(basque, USER, 6)


def test_recommend_for_user_from_the_command_line(api_db: Any) -> None:
    from geo_engine import db
    from tests.cli import run_cli

    user = 9201
    with db.connect(api_db) as conn:
        conn.execute("INSERT INTO app_user (id) VALUES (%s)", (user,))
        conn.execute(
            """INSERT INTO user_place (user_id, commune_code, home)
               VALUES (%s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))""",
            (user, BAYONNE, *HOME),
        )
        catalog_load.store_organisations(conn, _lines([organisation(8201)]), "test")
        catalog_load.store_projects(
            conn, _lines([project(31, 8201, territories(("commune", BAYONNE)), **_open())]), "test"
        )
        conn.commit()
    env = {"GEO_ENGINE_DATABASE_URL": api_db.database_url}
    done = run_cli("recommend", "for-user", str(user), "--k", "3", env=env)
    assert done.returncode == 0, done.stderr

    listed = {r["project_id"]: r for r in json.loads(done.stdout)}
    # Bayonne's projects (this test's, and any the module's other tests committed) come first.
    ours = listed[31]
    assert ours["reasons"][0] == "Concerne votre commune, Bayonne"
    assert set(ours) == {"project_id", "score", "reasons", "contributions"}
    missing = run_cli("recommend", "for-user", "424242", env=env)
    assert missing.returncode == 4 and "user 424242 not found" in missing.stderr
    bad = run_cli("recommend", "for-user", str(user), "--k", "0", env=env)
    assert bad.returncode == 2 and "k must be between 1 and 100" in bad.stderr
    learned = run_cli(
        "recommend",
        "for-user",
        str(user),
        env={
            **env,
            "GEO_ENGINE_RECOMMENDER_SCORER": "learned",
            "GEO_ENGINE_RECOMMENDER_MODEL_DIR": "/nonexistent/models",
        },
    )
    assert learned.returncode == 2 and "does not exist" in learned.stderr
