"""The engine's scorers in the evaluation: an evaluation space goes through the engine's stages.

The city and its districts and local areas are the places of the evaluation space; a voter
lives in the district (and area) the city recorded, or, when the task hides it (task C), the
one their history points to. The adapter fills the same facts the ground fills for the
platform (:mod:`recommender.facts`), then the same stages rank: candidates by place, the
exclusions (a ballot a voter has filled takes no more of its projects), the features, the
scorer, MMR and the exposure floor.

- Candidates: projects of every ballot the voter may cast: city-wide ballots, and those of
  their district or area (``level:commune`` for the city, ``level:arrondissement`` for their
  district, ``level:area`` for their local area; a project of another district in a city-wide
  ballot concerns their city, ``level:epci``). A voter whose district is unknown may cast any.
- Facts: the project's categories are its themes; its text is its name and categories;
  ``audience`` is the training voters of its territory, ``participants`` those who supported
  it; co-participation is the item-to-item cosine of the training voters' ballots.
- Homes: the centroid of the voter's district (the mean of its projects' coordinates) or, when
  inferred, of what they supported.

``engine_weighted`` ranks with the weights file. ``engine_learned`` trains the learned ranker
on the training voters only (their ballots, one approval hidden per voter, against candidates
they did not support; co-participation and popularity for those examples come from the other
half of the training voters, so no example sees its own ballot) and ranks the test voters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from recommender.coparticipation import Ease, tune_ease
from recommender.evaluation.scorer import Scorer
from recommender.evaluation.space import EvaluationSpace
from recommender.evaluation.tasks import TaskData
from recommender.facts import CandidateGroup, Items, Users, level_index
from recommender.ranking import RankingConfig, rank_group, score_group
from recommender.scorers import LinearScorer, load_weighted
from recommender.texts import fit_idf, vectors

TOP = 20  # the engine's own ordering (re-ranked) decides the first TOP places: k ≤ 20 is measured


@dataclass(frozen=True)
class Place:
    """Where a voter lives in the space: district and area codes (None unknown)."""

    district: str | None
    area: str | None


def _items(
    space: EvaluationSpace, counted: sparse.csr_matrix, voters: npt.NDArray[np.int64]
) -> Items:
    """The space's projects as facts; popularity and audience from ``counted`` (ballots of
    ``voters``)."""
    n = len(space.item_keys)
    vocabulary = sorted({c for cats in space.item_categories for c in cats})
    index = {c: i for i, c in enumerate(vocabulary)}
    themes = np.zeros((n, len(vocabulary)), dtype=bool)
    for i, cats in enumerate(space.item_categories):
        for c in cats:
            themes[i, index[c]] = True
    docs = [
        f"{name} {' '.join(cats)}"
        for name, cats in zip(space.item_names, space.item_categories, strict=True)
    ]
    # The people a project concerns: the voters who may cast its ballot (all of them for a
    # city-wide ballot, the district's or area's for theirs), among those counted.
    district_of = np.array([d or "" for d in space.voter_district], dtype=object)[voters]
    area_of = np.array([a or "" for a in space.voter_area], dtype=object)[voters]
    people = Counter(district_of.tolist()) + Counter(area_of.tolist())
    ballot_people = np.array(
        [
            len(voters) if b.territory == space.city else people.get(b.territory, 0)
            for b in space.budgets
        ],
        dtype=np.float64,
    )
    audience = np.maximum(ballot_people[space.item_budget], 1.0)
    caps = np.array([-1 if b.cap is None else b.cap for b in space.budgets], dtype=np.int64)
    return Items(
        ids=np.arange(n, dtype=np.int64),
        organisation=space.item_budget.astype(np.int64),
        themes=themes,
        theme_names=tuple(vocabulary),
        tool=np.full(n, "budget_participatif", dtype=object),
        space=np.full(n, "territoires", dtype=object),
        lonlat=space.item_lonlat.astype(np.float64),
        reach_m=np.zeros(n),
        audience=audience,
        participants=np.asarray(counted.sum(axis=0)).ravel().astype(np.float64),
        age_days=np.full(n, np.nan),
        closes_in_days=np.full(n, np.nan),
        budget=space.item_budget.astype(np.int64),
        budget_cap=caps,
        text=vectors(docs, fit_idf(docs)),
        titles=list(space.item_names),
        territory=np.unique(np.asarray(space.item_territory, dtype=object), return_inverse=True)[
            1
        ].astype(np.int64),
    )


def _spent(
    space: EvaluationSpace, voters: npt.NDArray[np.int64], supported: sparse.csr_matrix
) -> sparse.csr_matrix:
    """``supported`` (voters × items, 1 = supported) weighted by the points each voter gave:
    what they spent of each ballot (1 per project in approval ballots)."""
    if space.ballot_points is None or not supported.shape[0]:
        return supported
    spent = sparse.csr_matrix(supported.multiply(space.ballot_points[voters]))
    spent.eliminate_zeros()
    return spent


def _inferred(space: EvaluationSpace, history: sparse.csr_matrix) -> list[Place]:
    """Each voter's district and area as their history shows them: the most supported."""
    places = []
    for row in range(history.shape[0]):
        items = history[row].indices
        districts: Counter[str] = Counter()
        areas: Counter[str] = Counter()
        for i in items:
            level, code = space.item_level[i], space.item_territory[i]
            if level == "district":
                districts[code] += 1
            elif level == "area":
                areas[code] += 1
                parent = space.territories[code].parent
                if parent:
                    districts[parent] += 1
        places.append(
            Place(
                min(districts, key=lambda d: (-districts[d], d)) if districts else None,
                min(areas, key=lambda a: (-areas[a], a)) if areas else None,
            )
        )
    return places


def _recorded(space: EvaluationSpace, voters: npt.NDArray[np.int64]) -> list[Place]:
    return [Place(space.voter_district[v], space.voter_area[v]) for v in voters]


def _groups(
    space: EvaluationSpace, universe: npt.NDArray[np.int64], places: Sequence[Place]
) -> list[CandidateGroup]:
    """Voters sharing a place share candidates: the projects of the ballots they may cast."""
    by_place: dict[Place, list[int]] = {}
    for row, place in enumerate(places):
        by_place.setdefault(place, []).append(row)
    groups = []
    for place, rows in sorted(
        by_place.items(), key=lambda kv: (kv[0].district or "", kv[0].area or "")
    ):
        items, levels = [], []
        for i in universe:
            budget = space.budgets[space.item_budget[i]]
            ballot_level = (
                space.territories[budget.territory].level
                if budget.territory in space.territories
                else "city"
            )
            territory, level = space.item_territory[i], space.item_level[i]
            if (
                ballot_level == "district"
                and place.district is not None
                and budget.territory != place.district
            ):
                continue
            if ballot_level == "area" and place.area is not None and budget.territory != place.area:
                continue
            if ballot_level == "area" and place.area is None and place.district is not None:
                parent = space.territories[budget.territory].parent
                if parent != place.district:
                    continue
            if level == "city":
                word = "commune"
            elif level == "area" and territory == place.area:
                word = "area"
            elif (
                level == "district"
                and territory == place.district
                or (
                    level == "area"
                    and place.district is not None
                    and space.territories[territory].parent == place.district
                )
            ):
                word = "arrondissement"
            else:
                word = "epci"
            items.append(int(i))
            levels.append(level_index(word))
        groups.append(
            CandidateGroup(
                items=np.array(items, dtype=np.int64),
                levels=np.array(levels, dtype=np.int64),
                users=np.array(rows, dtype=np.int64),
            )
        )
    return groups


def _users(
    space: EvaluationSpace,
    items: Items,
    voters: npt.NDArray[np.int64],
    places: Sequence[Place],
    history: sparse.csr_matrix,
) -> Users:
    m, n = len(voters), len(items)
    homes = np.full((m, 2), np.nan)
    for row, place in enumerate(places):
        code = place.area or place.district
        territory = space.territories.get(code) if code else None
        if territory is not None and territory.lonlat is not None:
            homes[row] = territory.lonlat
        elif history.shape[0] and history[row].nnz:
            points = items.lonlat[history[row].indices]
            points = points[~np.isnan(points).any(axis=1)]
            if len(points):
                homes[row] = points.mean(axis=0)
    interests = np.zeros((m, len(items.theme_names)), dtype=bool)
    if space.voter_interests is not None:
        for row, v in enumerate(voters):
            declared = space.voter_interests[v]
            total = sum(declared.values()) or 1.0
            for t, name in enumerate(items.theme_names):
                # Above an even share of the points: a declared preference.
                interests[row, t] = declared.get(name, 0.0) / total > 1.0 / max(len(declared), 1)
    empty = sparse.csr_matrix((m, n), dtype=np.float32)
    return Users(
        ids=voters.astype(np.int64),
        lonlat=homes,
        place_names=[{} for _ in range(m)],
        interests=interests,
        muted=np.zeros((m, len(items.theme_names)), dtype=bool),
        history=sparse.csr_matrix(history, dtype=np.float32) if history.shape[0] else empty,
        followed=empty,
        dismissed=empty,
    )


def rank(
    task: TaskData,
    scorer: LinearScorer,
    config: RankingConfig,
    counted_voters: npt.NDArray[np.int64],
    voters: npt.NDArray[np.int64],
    history: sparse.csr_matrix,
    districts_known: bool,
    l2: float,
) -> np.ndarray:
    """Scores (len(voters) × len(task.items)) by the engine: its re-ranked top ``TOP`` first,
    then the rest by score; -inf for what it would never show. ``l2``: EASE's λ."""
    space = task.space
    counted = space.ballots[counted_voters]
    items = _items(space, counted, counted_voters)
    places = _recorded(space, voters) if districts_known else _inferred(space, history)
    users = _users(space, items, voters, places, _spent(space, voters, history))
    co = _coparticipation(counted, l2)
    column = np.full(len(items), -1, dtype=np.int64)
    column[task.items] = np.arange(len(task.items))
    out = np.full((len(voters), len(task.items)), -np.inf)
    for group in _groups(space, task.items, places):
        scored = score_group(items, users, group, scorer, co)
        ranked = rank_group(items, users, group, scorer, config, co, scored)
        rows = group.users
        out[rows[:, None], column[group.items][None, :]] = scored[1]
        for j in range(ranked.items.shape[1]):
            ok = ranked.items[:, j] >= 0
            out[rows[ok], column[ranked.items[ok, j]]] = 1e6 - j
    return out


def _coparticipation(counted: sparse.csr_matrix, l2: float) -> npt.NDArray[np.float32]:
    """Steck's EASE item-to-item weights over the counted ballots."""
    x = sparse.csr_matrix(counted)
    weights: npt.NDArray[np.float32] = Ease(l2).fit(x).weights.astype(np.float32)
    return weights


def _l2(task: TaskData) -> float:
    """EASE's λ, tuned once on a validation split of the training ballots: the model the
    ranker learns from and the one it ranks with must weigh alike (λ sets the scale)."""
    return tune_ease(sparse.csr_matrix(task.train_ballots), task.seed)


def _weighted(task: TaskData) -> np.ndarray:
    return rank(
        task,
        load_weighted(),
        RankingConfig(k=TOP),
        task.train_users,
        task.test_users,
        task.history,
        task.districts_known,
        _l2(task),
    )


EXAMPLE_VOTERS = 8000  # training voters whose ballots become examples (the rest count)
NEGATIVES = 30


def _learned(task: TaskData) -> np.ndarray:
    """Train the ranker on training voters only, then rank the test voters with it.

    Task C: each example voter has one approval hidden (the positive) and keeps the others as
    history; the co-participation model and popularity of the examples come from all training
    ballots without the hidden approvals, so no example sees its answer and the model has the
    size it will have when ranking. Other tasks: half the training voters are examples, the
    other half count (popularity leaves the examples out).
    """
    from recommender.learned import pairwise, train, training_examples  # noqa: PLC0415

    rng = np.random.default_rng(task.seed)
    space = task.space
    train_users = np.sort(task.train_users)
    in_task = np.zeros(len(space.item_keys), dtype=np.float32)
    in_task[task.items] = 1.0
    ballots = sparse.csr_matrix(
        sparse.csr_matrix(space.ballots[train_users]).multiply(in_task[None, :])
    )
    ballots.eliminate_zeros()
    if task.task == "C":
        sizes = np.diff(ballots.indptr)
        candidates = np.flatnonzero(sizes >= 2)
        rows = np.sort(rng.choice(candidates, min(EXAMPLE_VOTERS, len(candidates)), replace=False))
        hidden = np.array([int(rng.choice(ballots[r].indices)) for r in rows], dtype=np.int64)
        removed = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, hidden)), shape=ballots.shape
        )
        counted = sparse.csr_matrix(ballots - removed)
        counted.eliminate_zeros()
        counted_voters = train_users
        example_voters = train_users[rows]
        history = counted[rows]
        positives = removed[rows]
    else:
        fold = rng.random(len(train_users)) < 0.5
        example_rows = np.flatnonzero(fold)
        if len(example_rows) > EXAMPLE_VOTERS:
            example_rows = np.sort(rng.choice(example_rows, EXAMPLE_VOTERS, replace=False))
        counted = ballots[~fold]
        counted_voters = train_users[~fold]
        example_voters = train_users[example_rows]
        positives = ballots[example_rows]
        history = sparse.csr_matrix(positives.shape, dtype=np.float32)
    items = _items(space, counted, counted_voters)
    places = _recorded(space, example_voters) if task.districts_known else _inferred(space, history)
    users = _users(space, items, example_voters, places, _spent(space, example_voters, history))
    l2 = _l2(task)
    co = _coparticipation(counted, l2)
    X, y, _, rows = training_examples(
        items,
        users,
        _groups(space, task.items, places),
        positives,
        co,
        negatives=NEGATIVES,
        seed=task.seed,
    )
    X, y = pairwise(X, y, rows, seed=task.seed)
    model = train(X, y, window=f"pabulib:{space.dataset}:{task.task}", seed=task.seed)
    return rank(
        task,
        model.scorer(),
        RankingConfig(k=TOP),
        task.train_users,
        task.test_users,
        task.history,
        task.districts_known,
        l2,
    )


def engine_scorers() -> list[Scorer]:
    """The engine's scorers (kind ``"engine"``), evaluated beside the baselines."""
    return [
        Scorer("engine_weighted", "engine", _weighted),
        Scorer("engine_learned", "engine", _learned),
    ]
