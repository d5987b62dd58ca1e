"""The platform's co-participation index: cosine computed by hand, neighbours, blocks by id,
files that run no code, and the seeded halves of training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contracts.errors import InvalidInput
from recommender.coparticipation_index import CoParticipationIndex
from recommender.training import _half, cosine_index

# Users 1, 2, 3; projects 10, 20, 30. User 1: 10, 20. User 2: 10, 20, 30. User 3: 30.
USERS = np.array([1, 1, 2, 2, 2, 3], dtype=np.int64)
PROJECTS = np.array([10, 20, 10, 20, 30, 30], dtype=np.int64)


def test_cosine_by_hand() -> None:
    index = cosine_index(USERS, PROJECTS, neighbours=5)
    assert index.ids.tolist() == [10, 20, 30]
    s = index.similarity.toarray()
    # 10 and 20: both users 1, 2 → 2 / √(2·2) = 1. 10 and 30: user 2 → 1 / √(2·2) = 0.5.
    assert s[0, 1] == pytest.approx(1.0) and s[1, 0] == pytest.approx(1.0)
    assert s[0, 2] == pytest.approx(0.5) and s[1, 2] == pytest.approx(0.5)
    assert np.diag(s).tolist() == [0.0, 0.0, 0.0]


def test_neighbours_keep_the_best_and_leave_history_out() -> None:
    index = cosine_index(USERS, PROJECTS, neighbours=1)
    assert index.similarity.getnnz(axis=1).tolist() == [1, 1, 1]
    full = cosine_index(USERS, PROJECTS, neighbours=5)
    assert full.neighbours(np.array([10]), 5).tolist() == [20, 30]
    assert full.neighbours(np.array([10, 20]), 5).tolist() == [30]
    assert full.neighbours(np.array([99]), 5).tolist() == []


def test_block_follows_the_ids_asked_and_zeroes_the_unknown() -> None:
    index = cosine_index(USERS, PROJECTS, neighbours=5)
    block = index.block(np.array([30, 99, 10])).toarray()
    assert block.shape == (3, 3)
    assert block[0, 2] == pytest.approx(0.5) and block[2, 0] == pytest.approx(0.5)
    assert not block[1].any() and not block[:, 1].any()


def test_the_file_round_trips_and_a_foreign_one_is_refused(tmp_path: Path) -> None:
    index = cosine_index(USERS, PROJECTS, neighbours=5)
    path = tmp_path / "coparticipation.npz"
    index.save(path)
    again = CoParticipationIndex.load(path)
    assert again.ids.tolist() == index.ids.tolist()
    assert (again.similarity != index.similarity).nnz == 0
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, something=np.arange(3))
    with pytest.raises(InvalidInput, match="not a co-participation model"):
        CoParticipationIndex.load(foreign)
    with pytest.raises(InvalidInput, match="does not exist"):
        CoParticipationIndex.load(tmp_path / "absent.npz")


def test_seeded_halves_are_balanced_independent_and_order_free() -> None:
    ids = np.arange(1, 100_001, dtype=np.int64)
    a, b = _half(ids, 0), _half(ids, 1)
    assert abs(a.mean() - 0.5) < 0.01 and abs((a & b).mean() - 0.25) < 0.01
    shuffled = np.random.default_rng(3).permutation(ids)
    assert _half(shuffled, 0).tolist() == _half(ids, 0)[shuffled - 1].tolist()
