"""The evaluation tasks A–D cut from one evaluation space.

Voters are split once per edition into training and test voters by a seeded hash of their id
(so the split does not depend on file or row order). Scorers learn from the training voters'
ballots only; each task gives, for its test users, the items to rank, a ``history`` (task C
only) and the ``targets`` to find. Which tasks apply is read from the data, never from names:

* A, full ranking: every edition; all of a test voter's approvals hidden, every project ranked.
* B, city-wide choice: editions whose city-wide projects have coordinates and whose voters have
  a recorded district; only city-wide projects ranked.
* C, leave-one-out: editions with voters of at least two approvals; one approval hidden, the
  others given as history; the voter's district is not given (``districts_known`` False).
* D, declared interests: editions whose voters declared topic points.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse

from recommender.evaluation.space import EvaluationSpace

Task = Literal["A", "B", "C", "D"]
TASKS: tuple[Task, ...] = ("A", "B", "C", "D")
MIN_USERS = 20  # fewer test users than this and a task's figures mean nothing
MIN_CITY_ITEMS_WITH_COORDS = 2


@dataclass(frozen=True)
class TaskData:
    dataset: str
    task: Task
    space: EvaluationSpace
    items: np.ndarray  # int64 item indices ranked in this task
    train_users: np.ndarray  # int64 voter indices scorers may learn from
    test_users: np.ndarray  # int64 voter indices, one row of history / targets each
    history: scipy.sparse.csr_matrix  # n_test × n_items (C only, else empty)
    targets: scipy.sparse.csr_matrix  # n_test × n_items, the hidden approvals to find
    districts_known: bool  # False: the voter's location must be inferred from behaviour
    seed: int = 0

    @property
    def train_ballots(self) -> scipy.sparse.csr_matrix:
        """The training voters' ballots (n_train × n_items): all a scorer may learn from."""
        return self.space.ballots[self.train_users]


def split(space: EvaluationSpace, seed: int, test_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Training and test voter indices: a voter is a test voter when a seeded hash of their id
    falls under ``test_share``; independent of the voters' order."""
    draws = np.array(
        [
            int.from_bytes(hashlib.blake2b(f"{seed}:{vid}".encode(), digest_size=8).digest(), "big")
            / 2.0**64
            for vid in space.voter_ids
        ],
        dtype=np.float64,
    )
    test = draws < test_share
    return np.flatnonzero(~test), np.flatnonzero(test)


def _rows(matrix: scipy.sparse.csr_matrix, rows: np.ndarray) -> scipy.sparse.csr_matrix:
    return scipy.sparse.csr_matrix(matrix[rows])


def _keep_columns(matrix: scipy.sparse.csr_matrix, columns: np.ndarray) -> scipy.sparse.csr_matrix:
    mask = np.zeros(matrix.shape[1], dtype=np.float64)
    mask[columns] = 1.0
    out = scipy.sparse.csr_matrix(matrix @ scipy.sparse.diags(mask))
    out.eliminate_zeros()
    return out


def build_tasks(
    space: EvaluationSpace, seed: int, test_share: float = 0.2, only: Sequence[Task] = TASKS
) -> list[TaskData]:
    """Every task that applies to this edition, in order A, B, C, D."""
    train, test = split(space, seed, test_share)
    ballots = space.ballots
    n_items = space.n_items
    counts = np.diff(ballots.indptr)
    all_items = np.arange(n_items, dtype=np.int64)
    empty = scipy.sparse.csr_matrix((0, n_items))
    located = np.array([d is not None for d in space.voter_district], dtype=bool)
    out: list[TaskData] = []

    def add(
        task: Task,
        items: np.ndarray,
        users: np.ndarray,
        history: scipy.sparse.csr_matrix,
        targets: scipy.sparse.csr_matrix,
        districts_known: bool,
    ) -> None:
        if task in only and len(users) >= MIN_USERS:
            out.append(
                TaskData(
                    space.dataset,
                    task,
                    space,
                    items,
                    train,
                    users,
                    history if history.shape[0] else scipy.sparse.csr_matrix((len(users), n_items)),
                    targets,
                    districts_known,
                    seed,
                )
            )

    # A: every approval hidden, every project ranked.
    users_a = test[counts[test] >= 1]
    add("A", all_items, users_a, empty, _rows(ballots, users_a), True)

    # B: city-wide projects only, for voters with a recorded district.
    city_items = np.flatnonzero(np.array([lv == "city" for lv in space.item_level], dtype=bool))
    with_coords = ~np.isnan(space.item_lonlat[city_items]).any(axis=1)
    if int(with_coords.sum()) >= MIN_CITY_ITEMS_WITH_COORDS and located.any():
        city_ballots = _keep_columns(ballots, city_items)
        city_counts = np.diff(city_ballots.indptr)
        users_b = test[(city_counts[test] >= 1) & located[test]]
        add("B", city_items.astype(np.int64), users_b, empty, _rows(city_ballots, users_b), True)

    # C: one approval hidden (seeded), the others given as history.
    users_c = test[counts[test] >= 2]
    if len(users_c):
        rng = np.random.default_rng(seed)
        rows_c = _rows(ballots, users_c)
        hidden = np.empty(len(users_c), dtype=np.int64)
        for r in range(len(users_c)):
            chosen = rows_c.indices[rows_c.indptr[r] : rows_c.indptr[r + 1]]
            hidden[r] = chosen[rng.integers(len(chosen))]
        target_c = scipy.sparse.csr_matrix(
            (np.ones(len(users_c)), (np.arange(len(users_c)), hidden)), shape=rows_c.shape
        )
        history_c = scipy.sparse.csr_matrix(rows_c - target_c)
        history_c.eliminate_zeros()
        add("C", all_items, users_c, history_c, target_c, False)

    # D: voters who declared their interests.
    if space.voter_interests is not None:
        declared = np.array([bool(i) for i in space.voter_interests], dtype=bool)
        users_d = test[(counts[test] >= 1) & declared[test]]
        add("D", all_items, users_d, empty, _rows(ballots, users_d), True)
    return out
