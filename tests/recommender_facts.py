"""Small hand-built :class:`Items` and :class:`Users` for the recommender's tests.

Every field has a plain default (a territoires-space consultation, no theme, no place, no end,
no ballot); a test passes only what it is about. Sparse user × item matrices are given as
``{user_row: {item_row: weight}}`` or as arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

import numpy as np
from scipy import sparse

from recommender.facts import CandidateGroup, Items, Users, level_index

THEMES: tuple[str, ...] = ("mobilite", "environnement", "culture", "sport")

Sparse: TypeAlias = Mapping[int, Mapping[int, float]] | np.ndarray | sparse.csr_matrix | None
Floats: TypeAlias = Sequence[float] | np.ndarray


def user_item(value: Sparse, m: int, n: int) -> sparse.csr_matrix:
    """A CSR (m, n) from ``{row: {col: weight}}``, an array or a sparse matrix (None: empty)."""
    if value is None:
        return sparse.csr_matrix((m, n), dtype=np.float64)
    if isinstance(value, Mapping):
        rows, cols, data = [], [], []
        for r, entries in value.items():
            for c, w in entries.items():
                rows.append(r)
                cols.append(c)
                data.append(w)
        return sparse.csr_matrix((data, (rows, cols)), shape=(m, n), dtype=np.float64)
    matrix = sparse.csr_matrix(value, dtype=np.float64)
    assert matrix.shape == (m, n)
    return matrix


def make_items(
    n: int,
    *,
    lonlat: np.ndarray | None = None,
    themes: Sequence[Sequence[str]] | None = None,
    organisation: Sequence[int] | None = None,
    tool: Sequence[str] | None = None,
    space: Sequence[str] | None = None,
    reach_m: Floats | None = None,
    audience: Floats | None = None,
    participants: Floats | None = None,
    age_days: Floats | None = None,
    closes_in_days: Floats | None = None,
    budget: Sequence[int] | None = None,
    budget_cap: Sequence[int] = (),
    territory: Sequence[int] | None = None,
) -> Items:
    """n projects, ids 1..n; ``themes`` per project as theme slugs of :data:`THEMES`. Their
    text is their themes (one-hot rows, L2-normalised), enough for ``interest_learned``."""
    onehot = np.zeros((n, len(THEMES)), dtype=bool)
    for i, words in enumerate(themes or [()] * n):
        for word in words:
            onehot[i, THEMES.index(word)] = True
    norms = np.sqrt(onehot.sum(axis=1, keepdims=True))
    text = sparse.csr_matrix(np.divide(onehot, norms, out=np.zeros(onehot.shape), where=norms > 0))

    def floats(value: Floats | None, default: float) -> np.ndarray:
        return np.full(n, default) if value is None else np.asarray(value, dtype=np.float64)

    return Items(
        ids=np.arange(1, n + 1, dtype=np.int64),
        organisation=np.asarray(organisation if organisation is not None else range(n), np.int64),
        themes=onehot,
        theme_names=THEMES,
        tool=np.array(list(tool) if tool is not None else ["consultation"] * n, dtype=object),
        space=np.array(list(space) if space is not None else ["territoires"] * n, dtype=object),
        lonlat=np.full((n, 2), np.nan) if lonlat is None else np.asarray(lonlat, np.float64),
        reach_m=floats(reach_m, 0.0),
        audience=floats(audience, 1000.0),
        participants=floats(participants, 0.0),
        age_days=floats(age_days, np.nan),
        closes_in_days=floats(closes_in_days, np.nan),
        budget=np.full(n, -1, np.int64) if budget is None else np.asarray(budget, np.int64),
        budget_cap=np.asarray(budget_cap, dtype=np.int64),
        text=text,
        titles=[f"Projet {i + 1}" for i in range(n)],
        territory=np.full(n, -1, np.int64)
        if territory is None
        else np.asarray(territory, np.int64),
    )


def make_users(
    m: int,
    n_items: int,
    *,
    lonlat: np.ndarray | None = None,
    interests: Sequence[Sequence[str]] | None = None,
    muted: Sequence[Sequence[str]] | None = None,
    history: Sparse = None,
    followed: Sparse = None,
    dismissed: Sparse = None,
) -> Users:
    """m users, ids 101..100+m, over ``n_items`` projects."""

    def themes(value: Sequence[Sequence[str]] | None) -> np.ndarray:
        out = np.zeros((m, len(THEMES)), dtype=bool)
        for u, words in enumerate(value or [()] * m):
            for word in words:
                out[u, THEMES.index(word)] = True
        return out

    return Users(
        ids=np.arange(101, 101 + m, dtype=np.int64),
        lonlat=np.full((m, 2), np.nan) if lonlat is None else np.asarray(lonlat, np.float64),
        place_names=[{"commune": "Bayonne"} for _ in range(m)],
        interests=themes(interests),
        muted=themes(muted),
        history=user_item(history, m, n_items),
        followed=user_item(followed, m, n_items),
        dismissed=user_item(dismissed, m, n_items),
    )


def make_group(
    items: Sequence[int], users: Sequence[int], levels: Sequence[str] | str = "commune"
) -> CandidateGroup:
    """A group of ``users`` rows sharing ``items`` rows, each matched at ``levels``."""
    words = [levels] * len(items) if isinstance(levels, str) else list(levels)
    return CandidateGroup(
        items=np.asarray(items, dtype=np.int64),
        levels=np.asarray([level_index(w) for w in words], dtype=np.int64),
        users=np.asarray(users, dtype=np.int64),
    )
