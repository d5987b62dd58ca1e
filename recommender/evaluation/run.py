"""The evaluation run: every edition folder, every task that applies, every scorer; metrics with
bootstrap intervals, as result rows (the ``--json`` shape of ``geo-engine recommend evaluate``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from contracts.errors import InvalidInput
from recommender.evaluation import metrics
from recommender.evaluation.baselines import baseline_scorers
from recommender.evaluation.engine import engine_scorers
from recommender.evaluation.scorer import Scorer
from recommender.evaluation.space import build
from recommender.evaluation.tasks import TaskData, build_tasks
from recommender.settings import EvaluationSettings

KS = (5, 10, 20)


def dataset_folders(root: Path, datasets: Sequence[str] | None = None) -> list[Path]:
    """The edition folders under ``root`` (those holding ``.pb`` files), or the ``datasets``
    named, each checked."""
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a folder")
    if datasets:
        folders = []
        for name in datasets:
            folder = root / name
            if name in {"", ".", ".."} or "/" in name or not folder.is_dir():
                raise InvalidInput(f"no dataset folder {name!r} under {root}")
            folders.append(folder)
    else:
        folders = sorted(p for p in root.iterdir() if p.is_dir())
    found = [f for f in folders if any(f.glob("*.pb"))]
    if datasets and len(found) != len(folders):
        empty = sorted(set(folders) - set(found))
        raise InvalidInput(f"no .pb file in {', '.join(str(f) for f in empty)}")
    if not found:
        raise InvalidInput(f"no folder of .pb files under {root}")
    return found


def all_scorers() -> list[Scorer]:
    """The engine's scorers, then the baselines; each name once."""
    scorers = engine_scorers() + baseline_scorers()
    names = [s.name for s in scorers]
    if len(set(names)) != len(names):
        raise InvalidInput(f"two scorers share a name: {names}")
    return scorers


def evaluate_scores(task: TaskData, scores: np.ndarray, weights: np.ndarray) -> dict[str, Any]:
    """The metrics of one scorer's scores on one task (without the dataset/scorer names);
    ``weights`` are the task's bootstrap resamples (:func:`metrics.bootstrap_weights`)."""
    n_test, n_cols = len(task.test_users), len(task.items)
    if scores.shape != (n_test, n_cols):
        raise InvalidInput(f"scores of shape {scores.shape}, expected {(n_test, n_cols)}")
    scores = np.array(scores, dtype=np.float64)
    if task.history.nnz:  # what the voter already supported is never ranked again
        history = task.history[:, task.items].tocoo()
        scores[history.row, history.col] = -np.inf
    scores[np.isnan(scores)] = -np.inf
    top = metrics.top_k(scores, max(KS))
    relevant = task.targets[:, task.items].tocsr()
    n_relevant = np.diff(relevant.indptr)
    hits = metrics.hits_of(top, relevant)
    per_user: dict[str, np.ndarray] = {}
    for k in KS:
        per_user[f"recall@{k}"] = metrics.recall_at_k(hits, n_relevant, k)
    for k in KS:
        per_user[f"ndcg@{k}"] = metrics.ndcg_at_k(hits, n_relevant, k)
    if task.task == "C":
        per_user["hit@10"] = metrics.hit_at_k(hits, n_relevant, 10)
    space = task.space
    eligible, place_of, located = space.places(task.test_users)
    per_user["out_of_scope@10"] = metrics.out_of_scope_at_k(
        top, eligible[place_of][:, task.items], located, 10
    )
    means, cis = metrics.summarise(per_user, weights)
    district_of = [
        t if space.territories[t].level != "area" else (space.territories[t].parent or t)
        for t in (space.item_territory[i] for i in task.items.tolist())
    ]
    return {
        "users": n_test,
        **means,
        "coverage@10": metrics.coverage_at_k(top, n_cols, 10),
        "coverage_by_district@10": metrics.coverage_by_group(top, district_of, 10),
        "ci95": cis,
    }


def evaluate(
    root: Path,
    seed: int,
    settings: EvaluationSettings | None = None,
    datasets: Sequence[str] | None = None,
    scorers: Sequence[Scorer] | None = None,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Result rows for every edition under ``root`` (or the ``datasets`` named), every task
    that applies and every scorer measured on it."""
    settings = settings or EvaluationSettings()
    chosen = list(scorers) if scorers is not None else all_scorers()
    folders = dataset_folders(root, datasets)
    bar = progress.add_task("evaluating", total=len(folders)) if progress else None
    rows: list[dict[str, Any]] = []
    for folder in folders:
        if progress is not None and bar is not None:
            progress.update(bar, description=f"{folder.name}: reading")
        weights: dict[str, np.ndarray] = {}
        for task, scorer in _units(folder, seed, settings, chosen):
            if progress is not None and bar is not None:
                progress.update(bar, description=f"{folder.name} {task.task} {scorer.name}")
            if task.task not in weights:
                weights[task.task] = metrics.bootstrap_weights(
                    len(task.test_users), seed, settings.bootstrap_resamples
                )
            figures = evaluate_scores(task, scorer(task), weights[task.task])
            rows.append(
                {
                    "dataset": task.dataset,
                    "task": task.task,
                    "scorer": scorer.name,
                    "kind": scorer.kind,
                    **figures,
                }
            )
        if progress is not None and bar is not None:
            progress.advance(bar)
    return rows


def _units(
    folder: Path, seed: int, settings: EvaluationSettings, scorers: Sequence[Scorer]
) -> Iterator[tuple[TaskData, Scorer]]:
    space = build(folder)
    for task in build_tasks(space, seed, settings.test_share):
        for scorer in scorers:
            if task.task in scorer.tasks:
                yield task, scorer


# The targets: (task, metric, baselines compared with, how).
TARGETS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "A": ("recall@10", ("same_district_first",), "≥ 0.98 × baseline, out_of_scope@10 no higher"),
    "B": ("recall@5", ("own_district_first",), "≥ 1.05 × baseline"),
    "C": ("hit@10", ("same_area_history", "item_knn", "ease"), "≥ 1.05 × the strongest baseline"),
    "D": ("ndcg@10", ("popularity",), "> baseline"),
}


def target_checks(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each engine scorer on each dataset and task, the issue's target: the figure, the
    bar it must reach (from the baselines' rows) and whether it does."""
    by_key = {(r["dataset"], r["task"], r["scorer"]): r for r in rows}
    checks: list[dict[str, Any]] = []
    for row in rows:
        if row["kind"] != "engine" or row["task"] not in TARGETS:
            continue
        metric, names, rule = TARGETS[row["task"]]
        base = [by_key.get((row["dataset"], row["task"], n)) for n in names]
        figures = [b[metric] for b in base if b is not None and b.get(metric) is not None]
        value = row.get(metric)
        if not figures or value is None:
            continue
        strongest = max(figures)
        if row["task"] == "A":
            bar = 0.98 * strongest
            oos = row.get("out_of_scope@10")
            base_oos = base[0].get("out_of_scope@10") if base[0] is not None else None
            met = value >= bar and (oos is None or base_oos is None or oos <= base_oos)
        elif row["task"] == "D":
            bar = strongest
            met = value > bar
        else:
            bar = 1.05 * strongest
            met = value >= bar
        checks.append(
            {
                "dataset": row["dataset"],
                "task": row["task"],
                "scorer": row["scorer"],
                "metric": metric,
                "value": value,
                "bar": bar,
                "rule": rule,
                "met": bool(met),
            }
        )
    return checks
