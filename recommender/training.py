"""``geo-engine recommend train``: learn from the platform's engagement.

1. The co-participation model: cosine between projects' participant sets over every
   engagement since ``since`` (participations and clicks), each project keeping its
   ``neighbours`` most similar; saved as ``coparticipation.npz`` (:mod:`coparticipation_index`).
2. The learned ranker: users with at least two participations are split in two by a seeded
   hash of their id. For half of them one participation is hidden and becomes the positive, the
   others stay their history; their candidates (the ground's, by commune) give the negatives.
   The features of those examples use a co-participation model fitted on the other half only,
   so no example sees its own answer. Then :func:`recommender.learned.train`, saved with
   :func:`recommender.model_file.save` (``ranker.skops`` and its metadata).
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
from recommender.learned import train, training_examples
from recommender.model_file import save
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
    """A seeded split of users independent of their order: True for the example half."""
    golden = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: neighbouring ids spread out
    mixed = (user_ids.astype(np.uint64) * golden + np.uint64(seed)) >> np.uint64(33)
    half: npt.NDArray[np.bool_] = (mixed % np.uint64(2)) == 0
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
    progress("training examples")
    X, y, _, _ = training_examples(
        batch.items,
        users_facts,
        batch.groups,
        sparse.csr_matrix(positives),
        held_out_index.block(batch.items.ids),
        negatives=negatives,
        seed=seed,
    )
    progress(f"training on {len(y):,} examples")
    window = (
        since or datetime.fromtimestamp(0, UTC),
        datetime.now(UTC),
    )
    model = train(X, y, window=window, seed=seed)
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
        metrics=dict(model.metrics),
    )
