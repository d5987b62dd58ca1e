"""The baselines the engine is measured against. Each learns from the training voters' ballots
only (``task.train_ballots``), and in task C from the given history; none reads a test voter's
targets. Scores are (n_test × len(task.items)); a large constant puts a group first
(``FIRST``), popularity orders within it.
"""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.sparse

from recommender.coparticipation import Ease, tune_ease, tune_item_knn
from recommender.evaluation.scorer import Scorer
from recommender.evaluation.tasks import Task, TaskData

FIRST = 1e9  # far above any popularity count: a group ranked before the rest


def _stream(task: TaskData, name: str) -> np.random.Generator:
    digest = hashlib.blake2b(f"{task.seed}:{task.dataset}:{task.task}:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def approvals(task: TaskData) -> np.ndarray:
    """Approvals of each ranked item by the training voters (len(items))."""
    counts: np.ndarray = np.asarray(task.train_ballots.sum(axis=0), dtype=np.float64).ravel()
    ranked: np.ndarray = counts[task.items]
    return ranked


def random_scores(task: TaskData) -> np.ndarray:
    """Uniform random scores, seeded by the task."""
    return _stream(task, "random").random((len(task.test_users), len(task.items)))


def popularity_scores(task: TaskData) -> np.ndarray:
    """Approvals by training voters (a test voter's own ballot never counts: leave-self-out)."""
    return np.tile(approvals(task), (len(task.test_users), 1))


def scope_popularity(task: TaskData) -> np.ndarray:
    """Approvals per training voter who could vote on the item (len(items)): a district's
    project is measured against its district's voters, not the whole city's."""
    eligible, place_of, located = task.space.places(task.train_users)
    if located.any():
        per_place = np.bincount(place_of[located], minlength=eligible.shape[0]).astype(np.float64)
        voters = (per_place @ eligible)[task.items]
    else:
        voters = np.zeros(len(task.items))
    voters = np.where(voters > 0, voters, float(len(task.train_users)) or 1.0)
    return approvals(task) / voters


def same_district_first_scores(task: TaskData) -> np.ndarray:
    """The projects the voter may vote on (city-wide, their district's, their area's) first,
    each group by approvals per voter of its scope."""
    rate = scope_popularity(task)
    if not task.districts_known:
        return np.tile(rate, (len(task.test_users), 1))
    eligible, place_of, _ = task.space.places(task.test_users)
    scores: np.ndarray = eligible[place_of][:, task.items] * FIRST + rate
    return scores


def _nearest_district(task: TaskData) -> list[str | None]:
    """The district whose projects' centre is nearest each ranked item (None without
    coordinates): where a city-wide project stands."""
    space = task.space
    districts = [
        t for t in space.territories.values() if t.level == "district" and t.lonlat is not None
    ]
    if not districts:
        return [None] * len(task.items)
    centres = np.array([t.lonlat for t in districts], dtype=np.float64)
    points = space.item_lonlat[task.items]
    scale = np.cos(np.radians(np.nanmean(centres[:, 1])))
    dx = (points[:, None, 0] - centres[None, :, 0]) * scale
    dy = points[:, None, 1] - centres[None, :, 1]
    nearest = np.argmin(np.nan_to_num(dx**2 + dy**2, nan=np.inf), axis=1)
    has = ~np.isnan(points).any(axis=1)
    return [districts[j].code if ok else None for j, ok in zip(nearest, has, strict=True)]


def own_district_first_scores(task: TaskData) -> np.ndarray:
    """City-wide projects standing in the voter's district first (nearest district centre to
    the project's coordinates), each group by popularity."""
    pop = approvals(task)
    where = _nearest_district(task)
    scores = np.tile(pop, (len(task.test_users), 1))
    if not task.districts_known:
        return scores
    for n, v in enumerate(task.test_users.tolist()):
        district = task.space.voter_district[v]
        if district is not None:
            scores[n] += FIRST * np.array([w == district for w in where], dtype=np.float64)
    return scores


def same_area_history_scores(task: TaskData) -> np.ndarray:
    """Projects of the districts and areas of the voter's history first (more history there,
    higher), then popularity: location inferred from behaviour."""
    space = task.space
    codes = sorted({t for t, lv in zip(space.item_territory, space.item_level, strict=True)})
    column = {c: j for j, c in enumerate(codes)}
    local = np.array([lv != "city" for lv in space.item_level], dtype=np.float64)
    item_terr = scipy.sparse.csr_matrix(
        (local, (np.arange(space.n_items), [column[t] for t in space.item_territory])),
        shape=(space.n_items, len(codes)),
    )
    per_territory = task.history @ item_terr  # n_test × territories
    same: np.ndarray = np.asarray((per_territory @ item_terr.T).todense(), dtype=np.float64)
    scores: np.ndarray = same[:, task.items] * FIRST + approvals(task)
    return scores


def item_knn_scores(task: TaskData) -> np.ndarray:
    """Cosine co-participation from the history, neighbours and shrink tuned on a seeded
    validation split of the training voters (``recommender.coparticipation``)."""
    train = task.train_ballots
    model = tune_item_knn(train, task.seed).model().fit(train)
    scores: np.ndarray = model.score(task.history)[:, task.items]
    return scores


def ease_scores(task: TaskData) -> np.ndarray:
    """Steck's EASE from the history, λ tuned on a seeded validation split of the training
    voters (``recommender.coparticipation``)."""
    train = task.train_ballots
    model = Ease(tune_ease(train, task.seed)).fit(train)
    scores: np.ndarray = model.score(task.history)[:, task.items]
    return scores


def baseline_scorers() -> list[Scorer]:
    """The baselines, with the tasks each is measured on."""
    a_d: frozenset[Task] = frozenset({"A", "D"})
    b: frozenset[Task] = frozenset({"B"})
    c: frozenset[Task] = frozenset({"C"})
    return [
        Scorer("random", "baseline", random_scores),
        Scorer("popularity", "baseline", popularity_scores),
        Scorer("same_district_first", "baseline", same_district_first_scores, a_d),
        Scorer("own_district_first", "baseline", own_district_first_scores, b),
        Scorer("same_area_history", "baseline", same_area_history_scores, c),
        Scorer("item_knn", "baseline", item_knn_scores, c),
        Scorer("ease", "baseline", ease_scores, c),
    ]
