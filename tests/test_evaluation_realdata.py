"""The evaluation on real Pabulib ballots (shared/realdata), through the command line.

Skipped when the data is absent; under CI (env ``CI`` set) its absence is a failure.
Two small editions keep it fast: Toulouse 2024 (no voter location, sector-scoped projects) and
Katowice 2021 (city-wide projects with coordinates, voters' districts).
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from recommender.evaluation.run import all_scorers
from recommender.evaluation.space import build
from recommender.evaluation.tasks import build_tasks, split
from recommender.settings import EvaluationSettings
from tests.cli import run_cli, run_parallel

DATASETS = "toulouse_2024,katowice_2021"


@pytest.fixture(scope="module")
def realdata_dir() -> Path:
    settings = EvaluationSettings()
    if settings.realdata_dir is None or not settings.realdata_dir.is_dir():
        if os.environ.get("CI"):
            pytest.fail("GEO_ENGINE_REALDATA_DIR is not set or missing, and CI needs the real data")
        pytest.skip("the Pabulib ballots (shared/realdata) are absent: set GEO_ENGINE_REALDATA_DIR")
    return settings.realdata_dir


@pytest.fixture(scope="module")
def results(realdata_dir: Path) -> list[dict[str, Any]]:
    run = run_cli(
        "recommend",
        "evaluate",
        "--pabulib",
        str(realdata_dir),
        "--datasets",
        DATASETS,
        "--json",
        "--seed",
        "5",
        env={},
    )
    assert run.returncode == 0, run.stderr
    document = orjson.loads(run.stdout)
    assert set(document) == {"results"}
    rows: list[dict[str, Any]] = document["results"]
    return rows


def _row(rows: list[dict[str, Any]], dataset: str, task: str, scorer: str) -> dict[str, Any]:
    found = [r for r in rows if (r["dataset"], r["task"], r["scorer"]) == (dataset, task, scorer)]
    assert len(found) == 1, (dataset, task, scorer)
    return found[0]


@pytest.mark.slow  # one evaluation of two editions through the CLI, ~25 s
def test_tasks_are_read_from_the_data(results: list[dict[str, Any]]) -> None:
    tasks = {(r["dataset"], r["task"]) for r in results}
    # Toulouse: no voter location, so no task B; Katowice 2021: city-wide projects with
    # coordinates and voters' districts, so B; nobody declared interests, so no D.
    assert tasks == {
        ("toulouse_2024", "A"),
        ("toulouse_2024", "C"),
        ("katowice_2021", "A"),
        ("katowice_2021", "B"),
        ("katowice_2021", "C"),
    }
    scorers = {(r["task"], r["scorer"]) for r in results if r["dataset"] == "katowice_2021"}
    assert {("A", "same_district_first"), ("B", "own_district_first")} <= scorers
    assert {("C", "same_area_history"), ("A", "popularity"), ("A", "random")} <= scorers
    assert {("C", "item_knn"), ("C", "ease")} <= scorers
    assert ("A", "ease") not in scorers  # nothing to learn from without a history


@pytest.mark.slow  # one evaluation of two editions through the CLI, ~25 s
def test_json_shape_and_bounds(results: list[dict[str, Any]]) -> None:
    required = {
        "dataset",
        "task",
        "scorer",
        "kind",
        "users",
        "recall@5",
        "recall@10",
        "recall@20",
        "ndcg@10",
        "out_of_scope@10",
        "ci95",
    }
    for row in results:
        assert required <= set(row), row
        assert row["kind"] in {"engine", "baseline"}
        assert row["users"] >= 20
        assert ("hit@10" in row) == (row["task"] == "C")
        for name, value in row.items():
            if "@" in name and isinstance(value, float):
                assert 0.0 <= value <= 1.0, (name, value)
        for name, interval in row["ci95"].items():
            if interval is None:
                continue
            low, high = interval
            assert 0.0 <= low <= row[name] <= high <= 1.0, (name, interval, row[name])
    toulouse = _row(results, "toulouse_2024", "A", "popularity")
    assert toulouse["out_of_scope@10"] is None  # no voter location: undefined
    assert _row(results, "katowice_2021", "A", "popularity")["out_of_scope@10"] is not None


@pytest.mark.slow  # one evaluation of two editions through the CLI, ~25 s
def test_popularity_beats_random(results: list[dict[str, Any]]) -> None:
    for dataset in ("toulouse_2024", "katowice_2021"):
        popular = _row(results, dataset, "A", "popularity")
        random = _row(results, dataset, "A", "random")
        assert popular["recall@10"] > random["recall@10"]
        # well apart: the intervals do not overlap
        assert popular["ci95"]["recall@10"][0] > random["ci95"]["recall@10"][1]


@pytest.mark.slow  # one evaluation of two editions through the CLI, ~25 s
def test_co_participation_finds_the_hidden_approval(results: list[dict[str, Any]]) -> None:
    """Task C: the collaborative filters, tuned on training voters only, find the hidden
    approval far more often than popularity."""
    for dataset in ("toulouse_2024", "katowice_2021"):
        popular = _row(results, dataset, "C", "popularity")
        for name in ("item_knn", "ease"):
            learned = _row(results, dataset, "C", name)
            assert learned["ci95"]["hit@10"][0] > popular["ci95"]["hit@10"][1], (dataset, name)


@pytest.mark.slow  # one evaluation of two editions through the CLI, ~25 s
def test_eligibility_and_geography_show(results: list[dict[str, Any]]) -> None:
    """Katowice: putting what a voter may vote on first never ranks what they could not, and
    finds more; a random ranking is mostly out of scope."""
    eligible = _row(results, "katowice_2021", "A", "same_district_first")
    popular = _row(results, "katowice_2021", "A", "popularity")
    random = _row(results, "katowice_2021", "A", "random")
    assert eligible["out_of_scope@10"] == 0.0
    assert eligible["recall@10"] > popular["recall@10"]
    assert random["out_of_scope@10"] > 0.5
    assert 0.0 < eligible["coverage@10"] <= 1.0
    assert set(eligible["coverage_by_district@10"]) >= {"katowice", "bogucice"}


def test_split_is_seeded_disjoint_and_order_free(realdata_dir: Path) -> None:
    space = build(realdata_dir / "toulouse_2024")
    train, test = split(space, seed=5, test_share=0.2)
    assert not set(train.tolist()) & set(test.tolist())
    assert len(train) + len(test) == space.n_voters
    assert 0.18 < len(test) / space.n_voters < 0.22
    again_train, again_test = split(space, seed=5, test_share=0.2)
    assert np.array_equal(test, again_test)
    other = split(space, seed=6, test_share=0.2)[1]
    assert not np.array_equal(test, other)


def test_task_c_hides_one_approval_and_gives_the_rest(realdata_dir: Path) -> None:
    space = build(realdata_dir / "toulouse_2024")
    (task_a, task_c) = build_tasks(space, seed=5)
    assert (task_a.task, task_c.task) == ("A", "C")
    assert not task_c.districts_known
    rows = space.ballots[task_c.test_users]
    assert np.array_equal((task_c.history + task_c.targets).toarray(), rows.toarray())
    assert np.diff(task_c.targets.indptr).tolist() == [1] * len(task_c.test_users)
    assert not set(task_c.test_users.tolist()) & set(task_c.train_users.tolist())
    assert task_a.history.nnz == 0
    assert math.isclose(task_a.targets.sum(), space.ballots[task_a.test_users].sum())


BAD_ARGUMENTS = {
    "no folder": (
        ["--pabulib", "/nonexistent-folder"],
        "error: /nonexistent-folder is not a folder",
    ),
    "outside": (["--datasets", "../x"], "error: no dataset folder '../x' under"),
    "non-ASCII seed": (["--seed", "٣"], "is not an integer (ASCII digits"),
    "negative seed": (["--seed", "-1"], "-1 is negative"),
}


@pytest.mark.slow  # four command lines at once, ~30 s on 2 shared cores
def test_bad_arguments_are_refused_clearly(tmp_path: Path) -> None:
    def cli(*args: str) -> Any:
        return run_cli("recommend", "evaluate", "--pabulib", str(tmp_path), *args, env={})

    runs = run_parallel(cli, {name: args for name, (args, _) in BAD_ARGUMENTS.items()})
    for name, (_, message) in BAD_ARGUMENTS.items():
        run = runs[name]
        assert run.returncode == 2, (name, run.stderr)
        assert message in " ".join(run.stderr.split()), (name, run.stderr)
        assert "Traceback" not in run.stderr


def test_a_malformed_file_is_refused_naming_folder_file_and_line(tmp_path: Path) -> None:
    edition = tmp_path / "town_2024"
    edition.mkdir()
    (edition / "town.pb").write_text(
        "META\nkey;value\nunit;Town\nPROJECTS\nproject_id;cost\n1;2;3\nVOTES\nvoter_id;vote\n",
        encoding="utf-8",
    )
    run = run_cli("recommend", "evaluate", "--pabulib", str(tmp_path), "--json", env={})
    assert run.returncode == 2
    assert f"{edition}: town.pb:6: PROJECTS row has 3 fields, the header has 2" in run.stderr
    assert run.stdout == ""


@pytest.mark.parametrize("dataset", ["toulouse_2024", "katowice_2021"])
def test_scorers_never_learn_from_test_voters(realdata_dir: Path, dataset: str) -> None:
    """Every scorer gives the same scores when the test voters' ballots are erased from the
    space (only the task's own history, in C, may speak for them)."""
    space = build(realdata_dir / dataset)
    for task in build_tasks(space, seed=5):
        ballots = space.ballots.tolil()
        ballots[task.test_users] = 0
        blind = replace(task, space=replace(space, ballots=ballots.tocsr()))
        for scorer in all_scorers():
            if task.task in scorer.tasks:
                assert np.array_equal(scorer(task), scorer(blind)), (task.task, scorer.name)


def test_declared_interests_make_task_d(realdata_dir: Path) -> None:
    """Zurich: every participant declared topic points summing to 100 and a preferred district;
    projects repeat across the six ballot formats, each kept as its own (file, id)."""
    space = build(realdata_dir / "zurich_experiment_2023")
    assert space.voter_interests is not None
    assert all(sum(points.values()) == 100 for points in space.voter_interests)
    assert set(space.voter_interests[0]) == {"transport", "culture", "nature"}
    assert set(space.voter_district) == {"nord", "sud", "ost", "west"}
    assert space.n_items == 6 * 24 == len(set(space.item_keys))
    assert [t.task for t in build_tasks(space, seed=5)] == ["A", "C", "D"]
