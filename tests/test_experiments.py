"""Experiments: deterministic, balanced assignment (users, communes, EPCIs), the same in Python
and in PostgreSQL; one experiment per surface and unit; the life cycle; refused specs; the
staff-only API and the command line."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from scipy.stats import chisquare

from contracts.errors import Conflict, NotFound
from contracts.experiments import (
    BUCKETS,
    Experiment,
    ExperimentSpec,
    bucket,
    cumulative_edges,
)
from geo_engine import experiments
from geo_engine.settings import DatabaseSettings
from tests.cli import run_cli
from tests.conftest import token_for

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SRM_ALPHA = 0.001  # the usual sample-ratio-mismatch threshold


def spec(name: str = "poids-proximite", **changes: Any) -> ExperimentSpec:
    document: dict[str, Any] = {
        "name": name,
        "surface": "ranking",
        "unit": "user",
        "variants": [
            {"name": "control", "share": 0.5},
            {"name": "proche", "share": 0.3, "overrides": {"weights": {"proximity": 3.0}}},
            {"name": "appris", "share": 0.2, "overrides": {"scorer": "learned"}},
        ],
    }
    document.update(changes)
    return ExperimentSpec.model_validate(document)


def running(conn: psycopg.Connection, s: ExperimentSpec) -> Experiment:
    experiments.create(conn, s)
    return experiments.transition(conn, s.name, "start", NOW)


def assert_balanced(counts: Counter[str], s: ExperimentSpec, tolerance: float) -> None:
    total = sum(counts.values())
    observed = [counts[v.name] for v in s.variants]
    expected = [v.share * total for v in s.variants]
    assert chisquare(observed, expected).pvalue > SRM_ALPHA, (observed, expected)
    for v in s.variants:
        assert abs(counts[v.name] / total - v.share) < tolerance, (v.name, counts, total)


def test_the_bucket_is_the_same_in_python_and_postgresql(conn: psycopg.Connection) -> None:
    units = [str(i) for i in range(0, 20_000, 7)] + ["2A004", "97411", "200054781", "é٧²", ""]
    rows = conn.execute(
        "SELECT u, experiment_bucket('layer:digest', u) FROM unnest(%s::text[]) AS u",
        (units,),
    ).fetchall()
    assert dict(rows) == {u: bucket("layer:digest", u) for u in units}
    assert all(0 <= b < 2**32 for _, b in rows)


def test_100000_users_are_assigned_alike_in_sql_and_python_and_balanced(
    conn: psycopg.Connection,
) -> None:
    s = spec()
    experiment = running(conn, s)
    users = list(range(1, 100_001))
    assigned = experiments.assignments(conn, "ranking", users)
    assert len(assigned) == len(users)  # a full layer takes everyone
    assert {u: a.variant.name for u, a in assigned.items()} == {
        u: v.name for u in users if (v := experiment.variant_of(str(u))) is not None
    }
    assert all(a.unit == str(u) and a.experiment_id == experiment.id for u, a in assigned.items())
    assert_balanced(Counter(a.variant.name for a in assigned.values()), s, tolerance=0.01)
    # Deterministic: the same again, and the same after a pause and a restart.
    experiments.transition(conn, s.name, "pause", NOW)
    assert experiments.assignments(conn, "ranking", users[:1000]) == {}
    experiments.transition(conn, s.name, "start", NOW)
    again = experiments.assignments(conn, "ranking", users)
    assert {u: a.variant for u, a in again.items()} == {u: a.variant for u, a in assigned.items()}


def test_a_new_salt_reshuffles_the_units(conn: psycopg.Connection) -> None:
    first = running(conn, spec("sel-a", salt="a"))
    second = spec("sel-b", salt="b").model_copy()
    users = [str(u) for u in range(1, 20_001)]
    same = sum(
        first.variant_of(u)
        == Experiment(id=0, spec=second, status="running", created_at=NOW).variant_of(u)
        for u in users
    )
    # Independent draws agree with probability Σ share² = 0.38: far from always.
    assert 0.35 < same / len(users) < 0.41


def test_communes_are_balanced_and_every_resident_shares_the_variant(
    conn: psycopg.Connection,
) -> None:
    s = spec(
        "par-commune",
        surface="digest",
        unit="commune",
        variants=[
            {"name": "control", "share": 0.45},
            {"name": "question", "share": 0.45, "overrides": {"template": "question"}},
            {"name": "holdout", "share": 0.1, "holdout": True},
        ],
    )
    experiment = running(conn, s)
    codes = [r[0] for r in conn.execute("SELECT code FROM commune").fetchall()]
    assert len(codes) > 30_000
    by_commune = {c: experiment.variant_of(c) for c in codes}
    assert_balanced(
        Counter(v.name for v in by_commune.values() if v is not None), s, tolerance=0.01
    )
    # 3,000 residents in 60 communes: a commune's residents all get its variant, in SQL too.
    chosen = codes[:: len(codes) // 60][:60]
    users = list(range(500_001, 503_001))
    conn.execute("INSERT INTO app_user (id) SELECT unnest(%s::bigint[])", (users,))
    conn.execute(
        """INSERT INTO user_place (user_id, commune_code)
           SELECT u, (%s::text[])[1 + (u %% 60)] FROM unnest(%s::bigint[]) AS u""",
        (chosen, users),
    )
    assigned = experiments.assignments(conn, "digest", [*users, 999_999_999])
    assert 999_999_999 not in assigned  # no commune: in no commune experiment
    for u, a in assigned.items():
        commune = chosen[u % 60]
        assert a.unit == commune
        assert a.variant == by_commune[commune]
    assert {a.unit for a in assigned.values()} == set(chosen)


def test_epcis_are_the_unit_of_an_epci_experiment(conn: psycopg.Connection) -> None:
    s = spec(
        "par-epci",
        surface="alerts",
        unit="epci",
        variants=[
            {"name": "control", "share": 0.5},
            {"name": "budget-2", "share": 0.5, "overrides": {"weekly_budget": 2}},
        ],
    )
    experiment = running(conn, s)
    sirens = [r[0] for r in conn.execute("SELECT siren FROM epci").fetchall()]
    assert_balanced(
        Counter(v.name for c in sirens if (v := experiment.variant_of(c)) is not None),
        s,
        tolerance=0.03,  # about 1,250 EPCIs
    )
    row = conn.execute(
        "SELECT code, epci_siren FROM commune WHERE epci_siren IS NOT NULL LIMIT 1"
    ).fetchone()
    assert row is not None
    conn.execute("INSERT INTO app_user (id) VALUES (600001)")
    conn.execute("INSERT INTO user_place (user_id, commune_code) VALUES (600001, %s)", (row[0],))
    got = experiments.assignments(conn, "alerts", [600001])[600001]
    assert (got.unit, got.variant) == (row[1], experiment.variant_of(row[1]))


def test_a_unit_is_in_at_most_one_experiment_per_surface(conn: psycopg.Connection) -> None:
    running(conn, spec("gauche", layer=(0, 40)))
    experiments.create(conn, spec("chevauche", layer=(30, 60)))
    with pytest.raises(Conflict, match=r"overlaps 'gauche' \[0, 40\); stop that one"):
        experiments.transition(conn, "chevauche", "start", NOW)
    right = running(conn, spec("droite", layer=(40, 100)))
    users = list(range(1, 50_001))
    assigned = experiments.assignments(conn, "ranking", users)
    assert len(assigned) == len(users)  # the two slices cover the layer
    in_right = sum(a.experiment_id == right.id for a in assigned.values())
    assert abs(in_right / len(users) - 0.60) < 0.01
    # Another surface is another layer: the same users may be in an experiment there too.
    running(
        conn,
        spec(
            "autre-surface",
            surface="digest",
            variants=[
                {"name": "control", "share": 0.5},
                {"name": "court", "share": 0.5, "overrides": {"digest_size": 5}},
            ],
        ),
    )
    assert len(experiments.assignments(conn, "digest", users)) == len(users)
    # Another unit kind cannot run beside them, even in a free slice, nor beside a paused one
    # (whose units would drift to it).
    experiments.create(conn, spec("par-commune-ensuite", unit="commune", layer=(0, 100)))
    with pytest.raises(Conflict, match="randomises the ranking surface by user"):
        experiments.transition(conn, "par-commune-ensuite", "start", NOW)
    for name in ("gauche", "droite"):
        experiments.transition(conn, name, "pause", NOW)
    with pytest.raises(Conflict, match="by commune cannot run beside it"):
        experiments.transition(conn, "par-commune-ensuite", "start", NOW)
    for name in ("gauche", "droite"):
        experiments.transition(conn, name, "stop", NOW)
    started = experiments.transition(conn, "par-commune-ensuite", "start", NOW)
    assert started.status == "running"


def test_the_life_cycle_refuses_what_does_not_follow(conn: psycopg.Connection) -> None:
    experiments.create(conn, spec("cycle"))
    with pytest.raises(Conflict, match="already exists"):
        experiments.create(conn, spec("cycle"))
    with pytest.raises(Conflict, match="is draft: pause applies to running"):
        experiments.transition(conn, "cycle", "pause", NOW)
    started = experiments.transition(conn, "cycle", "start", NOW)
    assert (started.status, started.started_at) == ("running", NOW)
    assert experiments.transition(conn, "cycle", "pause", NOW).status == "paused"
    later = datetime(2026, 12, 1, tzinfo=UTC)
    resumed = experiments.transition(conn, "cycle", "start", later)
    assert resumed.started_at == NOW  # resuming keeps the start
    stopped = experiments.transition(conn, "cycle", "stop", later)
    assert (stopped.status, stopped.stopped_at) == ("stopped", later)
    with pytest.raises(Conflict, match="is stopped"):
        experiments.transition(conn, "cycle", "start", later)
    with pytest.raises(NotFound, match="no experiment named 'absent'"):
        experiments.transition(conn, "absent", "start", later)
    assert [e.spec.name for e in experiments.listing(conn, "ranking", ["stopped"])] == ["cycle"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.4}]},
            "add up to 1, not 0.9",
        ),
        (
            {"variants": [{"name": "a", "share": 0.5}, {"name": "a", "share": 0.5}]},
            "names must differ",
        ),
        ({"variants": [{"name": "a", "share": 1.0}]}, "at least 2"),
        (
            {
                "variants": [
                    {"name": "a", "share": 0.5},
                    {"name": "b", "share": 0.5, "overrides": {"digest_size": 3}},
                ]
            },
            "digest_size do nothing on the ranking surface",
        ),
        (
            {
                "variants": [
                    {"name": "a", "share": 0.5},
                    {"name": "b", "share": 0.5, "holdout": True},
                ]
            },
            "holdout is for the digest or alerts",
        ),
        ({"layer": (50, 50)}, "0 <= lo < hi <= 100"),
        (
            {
                "variants": [
                    {"name": "a", "share": 0.49995},
                    {"name": "b", "share": 0.49995},
                    {"name": "c", "share": 0.0001},
                ]
            },
            None,
        ),
        (
            {
                "variants": [
                    {"name": "a", "share": 0.99996},
                    {"name": "c", "share": 0.00004},
                ]
            },
            "variant c would get no unit",
        ),
        ({"name": "Avec Espaces"}, "should match pattern"),
        ({"unit": "quartier"}, "'user', 'commune' or 'epci'"),
        (
            {
                "variants": [
                    {"name": "a", "share": 0.5},
                    {"name": "b", "share": 0.5, "overrides": {"colour": "red"}},
                ]
            },
            "Extra inputs are not permitted",
        ),
    ],
)
def test_a_spec_that_does_not_hold_is_refused_with_its_reason(
    changes: dict[str, Any], reason: str | None
) -> None:
    if reason is None:  # holds: every variant gets units
        edges = [0, *cumulative_edges(spec(**changes).variants)]
        assert all(hi - lo >= 1 for lo, hi in zip(edges, edges[1:], strict=False)), edges
        return
    with pytest.raises(ValidationError, match=reason):
        spec(**changes)


def test_edges_honour_the_shares() -> None:
    s = spec()
    assert cumulative_edges(s.variants) == [5_000, 8_000, BUCKETS]


def _body(name: str) -> dict[str, Any]:
    return spec(name).model_dump(mode="json", exclude_none=True)


def test_the_api_is_for_staff_only(client: TestClient) -> None:
    staff, citizen = token_for(1, staff=True), token_for(2)
    created = client.post("/v1/growth/experiments", json=_body("api-poids"), headers=staff)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "draft"
    calls = [
        ("GET", "/v1/growth/experiments", None),
        ("POST", "/v1/growth/experiments", _body("api-autre")),
        ("GET", "/v1/growth/experiments/api-poids", None),
        ("POST", "/v1/growth/experiments/api-poids/start", None),
    ]
    for method, path, body in calls:
        refused = client.request(method, path, json=body, headers=citizen)
        assert refused.status_code == 403, (path, refused.text)
        assert "not a staff token" in refused.json()["detail"]
        anonymous = client.request(method, path, json=body)
        assert anonymous.status_code == 401, (path, anonymous.text)
    started = client.post("/v1/growth/experiments/api-poids/start", headers=staff)
    assert started.json()["status"] == "running"
    again = client.post("/v1/growth/experiments/api-poids/start", headers=staff)
    assert again.status_code == 409
    assert "is running: start applies to draft or paused" in again.json()["detail"]
    listed = client.get("/v1/growth/experiments?surface=ranking", headers=staff).json()
    assert [e["spec"]["name"] for e in listed] == ["api-poids"]
    assert client.get("/v1/growth/experiments/absent", headers=staff).status_code == 404
    duplicate = client.post("/v1/growth/experiments", json=_body("api-poids"), headers=staff)
    assert duplicate.status_code == 409
    bad = {**_body("api-mauvais"), "layer": [10, 5]}
    refused = client.post("/v1/growth/experiments", json=bad, headers=staff)
    assert refused.status_code == 422
    assert "0 <= lo < hi <= 100" in refused.text
    assert client.post("/v1/growth/experiments/api-poids/jump", headers=staff).status_code == 422
    typo = spec(
        "api-typo",
        variants=[
            {"name": "control", "share": 0.5},
            {"name": "b", "share": 0.5, "overrides": {"weights": {"proximite": 2.0}}},
        ],
    ).model_dump(mode="json", exclude_none=True)
    refused = client.post("/v1/growth/experiments", json=typo, headers=staff)
    assert refused.status_code == 422
    assert "variant b's weights: unknown features proximite" in refused.json()["detail"]


def test_the_command_line_creates_starts_and_lists(
    api_db: DatabaseSettings, tmp_path: Path
) -> None:
    env = {"GEO_ENGINE_DATABASE_URL": api_db.database_url}
    path = tmp_path / "exp.json"
    # The API's test holds the whole ranking layer: this one tests the digest's subject line.
    body = spec(
        "cli-poids",
        surface="digest",
        variants=[
            {"name": "control", "share": 0.5},
            {"name": "question", "share": 0.5, "overrides": {"template": "question"}},
        ],
    ).model_dump(mode="json", exclude_none=True)
    path.write_text(json.dumps(body), encoding="utf-8")
    created = run_cli("growth", "experiment", "create", str(path), env=env)
    assert created.returncode == 0, created.stderr
    assert "cli-poids created (draft" in created.stdout
    assert run_cli("growth", "experiment", "start", "cli-poids", env=env).returncode == 0
    listed = run_cli("growth", "experiment", "list", "--json", env=env)
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["spec"]["name"], r["status"]) for r in rows if r["spec"]["name"] == "cli-poids"] == [
        ("cli-poids", "running")
    ]
    table = run_cli("growth", "experiment", "list", env=env)
    assert "cli-poids" in table.stdout and "control 50%" in table.stdout
    path.write_text('{"name": "x", "surface": "ranking", "variants": []}', encoding="utf-8")
    refused = run_cli("growth", "experiment", "create", str(path), env=env)
    assert refused.returncode != 0
    assert "variants: List should have at least 2 items" in refused.stderr
    missing = run_cli("growth", "experiment", "stop", "absent", env=env)
    assert missing.returncode != 0 and "no experiment named 'absent'" in missing.stderr
