"""What the ranking knows of projects and people: plain arrays, whatever their source.

Two sources fill them: the ground (PostGIS, :mod:`recommender.ground`) for the platform, and
the evaluation space of real participatory-budgeting ballots
(:mod:`recommender.evaluation.engine`). Everything after them (features, scorers, re-ranking,
reasons) is the same code for both.

Items are the projects a ranking may touch (candidates, and what users already joined), rows
``0..n-1``. Users are rows ``0..m-1``. Sparse user × item matrices are ``scipy.sparse``
CSR matrices of shape (m, n).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from contracts.catalog import CONCERN_LEVELS

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

#: Why a project concerns a user, narrowest first (the ground's words), plus ``epci_xxl``: an
#: intercommunalité so large that belonging to it says little (GeoSettings.xxl_min_communes).
MATCH_LEVELS: tuple[str, ...] = (*CONCERN_LEVELS, "epci_xxl")


def level_index(word: str) -> int:
    """Index of a level word in :data:`MATCH_LEVELS`; ValueError for an unknown word."""
    return MATCH_LEVELS.index(word)


@dataclass(frozen=True)
class Items:
    """Facts of n projects, one row each.

    ``ids``: int64 project ids (unique). ``organisation``: int64 organisation ids.
    ``themes``: bool (n, T) over ``theme_names``; ``theme_names``: the theme vocabulary (slugs).
    ``tool``, ``space``: the words (object arrays, so that a group's columns are a cheap
    take). ``lonlat``: (n, 2) degrees WGS84, NaN when the project has no place.
    ``reach_m``: metres its area or circle spreads around ``lonlat`` (0 for a point).
    ``audience``: people the project concerns (≥ 1); ``participants``: people who took part.
    ``age_days``: days since it opened (NaN unknown); ``closes_in_days``: days until it closes
    (NaN: no end). ``budget``: int64 index into ``budget_cap`` or -1 (a ballot the project
    belongs to); ``budget_cap``: most projects one person may support in that ballot (-1: no cap).
    ``text``: CSR (n, V) L2-normalised TF-IDF rows of title, description and themes.
    ``titles``: for reasons. ``territory``: int64 id of the territory the project names
    (its commune, district…; equal ids, same territory), -1 for none (national, drawn areas).
    """

    ids: Ints
    organisation: Ints
    themes: Bools
    theme_names: tuple[str, ...]
    tool: npt.NDArray[np.object_]
    space: npt.NDArray[np.object_]
    lonlat: Floats
    reach_m: Floats
    audience: Floats
    participants: Floats
    age_days: Floats
    closes_in_days: Floats
    budget: Ints
    budget_cap: Ints
    text: sparse.csr_matrix
    titles: Sequence[str]
    territory: Ints

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Users:
    """Facts of m users, one row each.

    ``ids``: int64 user ids. ``lonlat``: (m, 2) home in degrees, NaN when unknown.
    ``place_names``: per user, level word → the name of their territory at that level (for
    reasons: "Concerne votre commune, Bayonne"). ``interests``: bool (m, T) declared themes.
    ``muted``: bool (m, T) themes the user asked for less of. ``history``: CSR (m, n) weights of
    what each user took part in or clicked (1 = took part). ``followed``: CSR (m, n), 1 where
    the user follows or belongs to the project's organisation. ``dismissed``: CSR (m, n)
    projects the user said were of no interest, or not of their commune (never shown again).
    """

    ids: Ints
    lonlat: Floats
    place_names: Sequence[dict[str, str]]
    interests: Bools
    muted: Bools
    history: sparse.csr_matrix
    followed: sparse.csr_matrix
    dismissed: sparse.csr_matrix

    def __len__(self) -> int:
        return len(self.ids)


NOT_CANDIDATE = -2  # in per-user levels: the project is no candidate of that user


@dataclass(frozen=True)
class CandidateGroup:
    """Projects ranked together for some users, with why each concerns them.

    ``items``: int64 indices into :class:`Items` (n_c). ``users``: int64 rows of
    :class:`Users` (m). ``levels``: int64 indices into :data:`MATCH_LEVELS`, -1 for no
    geographic reason: (n_c,) shared by all the users (a commune's residents), or, with
    ``places``, (P, n_c) per place (the communes of a département ranked together), where
    :data:`NOT_CANDIDATE` marks a project that is no candidate there; ``places`` (m,) gives
    each user's row of ``levels``.
    """

    items: Ints
    levels: Ints
    users: Ints
    places: Ints | None = None

    def user_levels(self) -> Ints:
        """(n_c,) when shared, else (m, n_c): each user's levels."""
        return self.levels if self.places is None else self.levels[self.places]

    def only(self, rows: npt.NDArray[np.intp] | slice) -> CandidateGroup:
        """The group with only its users at ``rows`` (positions in ``users``)."""
        places = None if self.places is None else self.places[rows]
        return CandidateGroup(self.items, self.levels, self.users[rows], places)
