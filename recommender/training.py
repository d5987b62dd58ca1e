"""``geo-engine recommend train``: learn from the platform's engagement.

1. The co-participation model: cosine between projects' participant sets over every
   engagement since ``since`` (participations and clicks), each project keeping its
   ``neighbours`` most similar; saved as ``coparticipation.npz`` (:mod:`coparticipation_index`).
2. The learned ranker: users with at least two participations are split in two by a seeded
   hash of their id. For half of them one participation is hidden and becomes the positive, the
   others stay their history; their candidates (the ground's, by commune) give the negatives.
   The features of those examples use a co-participation model fitted on the other half only,
   so no example sees its own answer. Then :func:`recommender.learned.train` on pairs of a
   user's positive and negatives (:func:`recommender.learned.pairwise`), saved with
   :func:`recommender.model_file.save` (``ranker.skops`` and its metadata).
3. The measure, on the simulated or real engagement at hand: a fifth of those users is kept
   out of training, and hit@10 of their hidden participation is reported for the weighted
   scorer and the learned ranker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import psycopg
from scipy import sparse

from contracts.errors import InvalidInput
from geo_engine.engagement import PARTICIPATION, interactions
from recommender.batch import load_batch
from recommender.coparticipation_index import CoParticipationIndex
from recommender.facts import CandidateGroup, Items, Users
from recommender.learned import pairwise, train, training_examples
from recommender.model_file import save
from recommender.ranking import RankingConfig, rank_group
from recommender.scorers import LinearScorer, load_weighted
from recommender.service import COPARTICIPATION_FILE, RANKER_FILE

NEIGHBOURS = 50


@dataclass(frozen=True)
class TrainingReport:
    """What ``train`` wrote and measured."""

    ranker: Path
    coparticipation: Path
    interactions: int
    example_users: int
    examples: int
    metrics: dict[str, float]


def cosine_index(
    user_ids: npt.NDArray[np.int64], project_ids: npt.NDArray[np.int64], neighbours: int
) -> CoParticipationIndex:
    """Cosine co-participation of projects (users who engaged with both over the geometric
    mean of their numbers of users), the ``neighbours`` best per project, as a sparse index."""
    projects, col = np.unique(project_ids, return_inverse=True)
    _, row = np.unique(user_ids, return_inverse=True)
    x = sparse.csr_matrix(
        (np.ones(len(row), dtype=np.float32), (row, col)),
        shape=(int(row.max(initial=-1)) + 1, len(projects)),
    )
    x.data[:] = 1.0  # a user engaged with a project, however many ways
    gram = sparse.csr_matrix(x.T @ x)
    degree = gram.diagonal().astype(np.float64)
    gram.setdiag(0)
    gram.eliminate_zeros()
    coo = gram.tocoo()
    values = coo.data / np.sqrt(degree[coo.row] * degree[coo.col])
    keep = np.zeros(len(values), dtype=bool)
    order = np.lexsort((-values, coo.row))
    starts = np.searchsorted(coo.row[order], np.arange(len(projects)))
    rank = np.arange(len(order)) - starts[coo.row[order]]
    keep[order[rank < neighbours]] = True
    similarity = sparse.csr_matrix(
        (values[keep].astype(np.float32), (coo.row[keep], coo.col[keep])),
        shape=(len(projects), len(projects)),
    )
    return CoParticipationIndex(projects.astype(np.int64), similarity)


def _half(user_ids: npt.NDArray[np.int64], seed: int) -> npt.NDArray[np.bool_]:
    """A seeded split of users independent of their order: True for one half. The bits of
    splitmix64 (Steele et al. 2014) of id + seed: two seeds give independent halves."""
    with np.errstate(over="ignore"):
        x = user_ids.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    half: npt.NDArray[np.bool_] = (x & np.uint64(1)) == 1
    return half


def train_from_engagement(
    conn: psycopg.Connection,
    model_dir: Path,
    *,
    since: datetime | None,
    seed: int,
    max_users: int,
    negatives: int,
    progress: Callable[[str], None] = lambda _: None,
) -> TrainingReport:
    """Fit and save both models (see the module). InvalidInput when there is too little
    engagement to learn from."""
    progress("reading engagement")
    users, projects, kinds = interactions(conn, since)
    if not len(users):
        raise InvalidInput(
            "no engagement to learn from" + (f" since {since:%Y-%m-%d}" if since else "")
        )
    example_half = _half(users, seed)
    progress("co-participation model")
    index = cosine_index(users, projects, NEIGHBOURS)
    held_out_index = cosine_index(users[~example_half], projects[~example_half], NEIGHBOURS)

    participated = kinds == PARTICIPATION
    candidates, counts = np.unique(users[participated & example_half], return_counts=True)
    eligible = candidates[counts >= 2]
    rng = np.random.default_rng(seed)
    if len(eligible) > max_users:
        eligible = np.sort(rng.choice(eligible, max_users, replace=False))
    progress(f"candidates and facts of {len(eligible):,} users")
    batch = load_batch(conn, eligible.tolist())
    history = batch.users.history.tolil(copy=True)
    positives = sparse.lil_matrix(history.shape, dtype=np.float32)
    joined = batch.users.history >= 1.0
    for row in range(joined.shape[0]):
        chosen = joined[row].indices
        if len(chosen) >= 2:
            hidden = int(rng.choice(chosen))
            history[row, hidden] = 0.0
            positives[row, hidden] = 1.0
    history_csr = sparse.csr_matrix(history)
    history_csr.eliminate_zeros()
    users_facts = dataclasses.replace(batch.users, history=history_csr)
    # A fifth of the example users is kept out of training, to measure both scorers on what
    # they would have been recommended: their hidden participation in the top 10 or not.
    tested = ~_half(batch.users.ids, seed + 1) & ~_half(batch.users.ids, seed + 2)
    positives_csr = sparse.csr_matrix(positives)
    co_block = held_out_index.block(batch.items.ids)
    progress("training examples")
    X, y, _, rows = training_examples(
        batch.items,
        users_facts,
        _only(batch.groups, ~tested),
        positives_csr,
        co_block,
        negatives=negatives,
        seed=seed,
    )
    X, y = pairwise(X, y, rows, seed=seed)
    progress(f"training on {len(y):,} pairs")
    window = (
        since or datetime.fromtimestamp(0, UTC),
        datetime.now(UTC),
    )
    model = train(X, y, window=window, seed=seed)
    progress("measuring on held-out users")
    held_out = _only(batch.groups, tested)
    measured = {
        f"hit@10_{name}": hit_rate(
            batch.items, users_facts, held_out, positives_csr, scorer, co_block
        )
        for name, scorer in (("weighted", load_weighted()), ("learned", model.scorer()))
    }
    model_dir.mkdir(parents=True, exist_ok=True)
    ranker = model_dir / RANKER_FILE
    save(model, ranker)
    co_path = model_dir / COPARTICIPATION_FILE
    index.save(co_path)
    return TrainingReport(
        ranker=ranker,
        coparticipation=co_path,
        interactions=len(users),
        example_users=len(eligible),
        examples=len(y),
        metrics={**model.metrics, **measured, "held_out_users": float(tested.sum())},
    )


def _only(groups: list[CandidateGroup], keep: npt.NDArray[np.bool_]) -> list[CandidateGroup]:
    """The groups with only their users whose row is kept."""
    return [g.only(np.flatnonzero(keep[g.users])) for g in groups]


def hit_rate(
    items: Items,
    users: Users,
    groups: list[CandidateGroup],
    positives: sparse.csr_matrix,
    scorer: LinearScorer,
    coparticipation: sparse.csr_matrix,
) -> float:
    """Share of the groups' users with a positive whose positive is in their top 10 (the
    ranking as served: exclusions, MMR, exposure floor)."""
    hits = total = 0
    for group in groups:
        if not len(group.users):
            continue
        ranked = rank_group(items, users, group, scorer, RankingConfig(k=10), coparticipation)
        wanted = positives[group.users]
        has = np.diff(wanted.indptr) > 0
        total += int(has.sum())
        for row in np.flatnonzero(has):
            hits += bool(np.isin(wanted[row].indices, ranked.items[row]).any())
    return hits / total if total else float("nan")
