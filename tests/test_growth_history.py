"""The demo's synthetic growth history (``geo-engine fixtures growth``): the experiment is
created once and started, every placed user is assigned by the engine's own rule, the holdout
gets no mail, and the growth report finds the truth the simulation was given (open rates by
subject line) without a sample-ratio mismatch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.errors import InvalidInput
from fixtures.growth_history import DEMO, OPEN_RATE, demo_experiment, simulate
from geo_engine import db, experiments
from geo_engine.settings import DatabaseSettings
from growth.report import build_report
from tests.api_data import national, organisation, project, write

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
DAYS = 14
USERS = range(1, 4001)


@pytest.mark.slow
def test_the_demo_history_holds_the_truth_it_was_given(api_db: DatabaseSettings) -> None:
    write(
        api_db,
        users=USERS,
        organisations=[organisation(1)],
        projects=[project(p, 1, national()) for p in range(1, 6)],
    )
    with db.connect(api_db) as conn:
        # Signed up before the history (which starts from each user's sign-up).
        conn.execute("UPDATE app_user SET created_at = %s", (NOW - timedelta(days=90),))
        communes = [r[0] for r in conn.execute("SELECT code FROM commune ORDER BY code LIMIT 400")]
        conn.execute(
            """INSERT INTO user_place (user_id, commune_code)
               SELECT u, (%s::text[])[1 + u %% 400] FROM unnest(%s::bigint[]) AS u""",
            (communes, list(USERS)),
        )
        experiment = demo_experiment(conn, NOW)
        assert demo_experiment(conn, NOW).id == experiment.id  # created once
        assert experiment.status == "running"
        assigned = simulate(conn, experiment, DAYS, NOW, seed=7)
        assert assigned == len(USERS)  # a full layer: every placed user
        conn.commit()
        day = NOW.replace(hour=0)
        report = build_report(conn, experiment, day - timedelta(days=DAYS), day)
        exposures = conn.execute(
            "SELECT count(DISTINCT unit) FROM experiment_exposure WHERE experiment_id = %s",
            (experiment.id,),
        ).fetchone()
        experiments.transition(conn, DEMO.name, "stop", NOW)
        with pytest.raises(InvalidInput, match="simulate a running digest one"):
            simulate(conn, experiments.get(conn, DEMO.name), DAYS, NOW, seed=7)
    assert exposures is not None and exposures[0] == 400  # communes are the units
    variants = {v.variant: v for v in report.variants}
    assert set(variants) == {v.name for v in DEMO.variants}
    assert variants["holdout"].funnel.sent == 0 and variants["holdout"].users > 0
    for v in DEMO.variants:
        if v.holdout:
            continue
        rate = variants[v.name].open_rate.rate
        assert rate is not None
        assert abs(rate - OPEN_RATE[v.overrides.template or "standard"]) < 0.03, (v.name, rate)
    assert report.sample_ratio is not None and not report.sample_ratio.mismatch
    local = next(d for d in report.differences if d.metric == "open_rate" and d.variant == "local")
    assert local.significant and local.difference is not None and local.difference > 0
