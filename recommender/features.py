"""Features of (user, project) pairs, computed for a whole group of users at once.

A group shares its candidates (a commune's residents, a district's voters). Features that
depend only on the project are vectors over the group's candidates; features that depend on
the user too are (users × candidates) matrices built by matrix products, never by a loop over
pairs. Every value lies in [0, 1]; the scorers weigh them (:mod:`recommender.scorers`).

The names, in :data:`FEATURES`:

- ``level:<word>``: one-hot, why the project concerns the user (:data:`facts.MATCH_LEVELS`);
  in an XXL intercommunalité the EPCI match is ``level:epci_xxl``, whose weight is small, and
  the distance to the project's footprint (``proximity``) carries the geography instead.
- ``proximity``: exp(−d / scale), d the distance in km from home to the project's footprint
  (its point, or the edge of its area or circle, 0 inside); 0 when either is unknown.
- ``interest_declared``: the share of the project's themes the user declared.
- ``interest_learned``: cosine between the project's TF-IDF text and the profile of what the user
  took part in (scikit-learn's TfidfVectorizer, :mod:`recommender.texts`).
- ``co_participation``: mean, over what the user took part in, of the co-participation model's
  item-to-item score (people who took part in this also took part in that).
- ``followed``: the user follows or belongs to the project's organisation.
- ``theme_muted``: one of the project's themes is one the user asked for less of.
- ``popularity``: participants per person concerned, log-scaled to [0, 1]: a village's project
  that half the village joined outranks a metropole's that 1 % joined.
- ``freshness``: exp(−days open / 14). ``closing_soon``: closes within 7 days.
- ``space:loi``, ``space:idees``: the space (``territoires`` is the reference).
- ``tool_affinity``: the share of the user's participations made with the project's tool.
- ``place_affinity``: the share of the user's participations in projects naming the same
  territory as this one (where they take part, beyond where they live).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from recommender.facts import MATCH_LEVELS, Bools, CandidateGroup, Floats, Items, Users

LEVEL_FEATURES: tuple[str, ...] = tuple(f"level:{w}" for w in MATCH_LEVELS)
ITEM_FEATURES: tuple[str, ...] = (
    *LEVEL_FEATURES,
    "popularity",
    "freshness",
    "closing_soon",
    "space:loi",
    "space:idees",
)
PAIR_FEATURES: tuple[str, ...] = (
    "proximity",
    "interest_declared",
    "interest_learned",
    "co_participation",
    "followed",
    "theme_muted",
    "tool_affinity",
    "place_affinity",
)
FEATURES: tuple[str, ...] = (*ITEM_FEATURES, *PAIR_FEATURES)

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG), as PostGIS's spheroid-free distance
PROXIMITY_SCALE_KM = 5.0  # a project 5 km away keeps e⁻¹ of a next-door one's proximity
FRESHNESS_DAYS = 14.0
CLOSING_SOON_DAYS = 7.0
POPULARITY_SPAN = 1000.0  # 1 participant per 1,000 people concerned scores about 0.1


Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class GroupFeatures:
    """Features of one group: ``item`` name → float32 vector over the group's candidates,
    ``pair`` name → float32 (users × candidates) matrix; ``distance_km`` (users × candidates,
    NaN unknown) for the reasons."""

    item: dict[str, Matrix]
    pair: dict[str, Matrix]
    distance_km: Matrix

    def value(self, name: str, users: npt.NDArray[np.intp], cols: npt.NDArray[np.intp]) -> Matrix:
        """The feature ``name`` at (users[i], cols[i, j]) → shape of ``cols``."""
        if name in self.item:
            return self.item[name][cols]
        return self.pair[name][users[:, None], cols]


def distances_km(homes: Floats, places: Floats, reach_m: Floats) -> Matrix:
    """Great-circle distances in km from each home (m, 2) to each place (n, 2), less the
    place's reach (0 inside): (m, n) float32, NaN where either point is unknown."""
    lon1, lat1 = np.radians(homes[:, 0])[:, None], np.radians(homes[:, 1])[:, None]
    lon2, lat2 = np.radians(places[:, 0])[None, :], np.radians(places[:, 1])[None, :]
    h = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    metres = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    km: Matrix = (np.maximum(metres - reach_m[None, :], 0.0) / 1000.0).astype(np.float32)
    return km


def _row_normalised(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums, dtype=np.float64), where=sums > 0)
    return sparse.csr_matrix(sparse.diags(scale) @ matrix)


def item_features(items: Items, group: CandidateGroup) -> dict[str, Matrix]:
    """The features that depend only on the project, over the group's candidates."""
    c = group.items
    out: dict[str, Matrix] = {}
    for k, name in enumerate(LEVEL_FEATURES):
        out[name] = (group.levels == k).astype(np.float32)
    share = items.participants[c] / np.maximum(items.audience[c], 1.0)
    out["popularity"] = np.clip(
        np.log1p(POPULARITY_SPAN * share) / np.log1p(POPULARITY_SPAN), 0.0, 1.0
    ).astype(np.float32)
    age = items.age_days[c]
    out["freshness"] = np.where(
        np.isnan(age), 0.0, np.exp(-np.maximum(age, 0.0) / FRESHNESS_DAYS)
    ).astype(np.float32)
    left = items.closes_in_days[c]
    out["closing_soon"] = ((left >= 0) & (left <= CLOSING_SOON_DAYS)).astype(np.float32)
    space = np.asarray(items.space, dtype=object)[c]
    out["space:loi"] = (space == "loi").astype(np.float32)
    out["space:idees"] = (space == "idees").astype(np.float32)
    return out


def group_features(
    items: Items,
    users: Users,
    group: CandidateGroup,
    coparticipation: sparse.csr_matrix | npt.NDArray[np.float32] | None,
) -> GroupFeatures:
    """Every feature of the group's users × candidates.

    ``coparticipation``: the item-to-item model over :class:`Items` rows, (n, n), or None when
    no model is loaded (the feature is then 0).
    """
    c = group.items
    u = users.take(group.users.astype(np.intp))
    m, n_c = len(u), len(c)
    pair: dict[str, Matrix] = {}

    distance = distances_km(u.lonlat, items.lonlat[c], items.reach_m[c])
    pair["proximity"] = np.where(
        np.isnan(distance), 0.0, np.exp(-distance / PROXIMITY_SCALE_KM)
    ).astype(np.float32)

    themes_c = items.themes[c].astype(np.float32)  # (n_c, T)
    n_themes = np.maximum(themes_c.sum(axis=1), 1.0)
    pair["interest_declared"] = (u.interests.astype(np.float32) @ themes_c.T) / n_themes
    pair["theme_muted"] = ((u.muted.astype(np.float32) @ themes_c.T) > 0).astype(np.float32)

    history = _row_normalised(u.history)  # (m, n), rows sum to 1
    if history.nnz:
        profile = history @ items.text  # (m, V)
        norms = np.sqrt(np.asarray(profile.multiply(profile).sum(axis=1)).ravel())
        profile = (
            sparse.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ profile
        )
        pair["interest_learned"] = _dense(profile @ items.text[c].T)
    else:
        pair["interest_learned"] = np.zeros((m, n_c), dtype=np.float32)

    if coparticipation is not None and history.nnz:
        pair["co_participation"] = _dense(history @ coparticipation[:, c])
    else:
        pair["co_participation"] = np.zeros((m, n_c), dtype=np.float32)

    pair["followed"] = _dense(u.followed[:, c])

    _, tool_of = np.unique(np.asarray(items.tool, dtype=object), return_inverse=True)
    pair["tool_affinity"] = _shares(history, tool_of.astype(np.int64), c)
    pair["place_affinity"] = _shares(history, items.territory, c)

    return GroupFeatures(item_features(items, group), pair, distance)


def _shares(
    history: sparse.csr_matrix, labels: npt.NDArray[np.int64], c: npt.NDArray[np.int64]
) -> Matrix:
    """(m, n_c): the share of each user's (row-normalised) history whose label equals the
    candidate's; -1 labels match nothing."""
    known = labels >= 0
    if not known.any():
        return np.zeros((history.shape[0], len(c)), dtype=np.float32)
    _, code = np.unique(labels[known], return_inverse=True)
    onehot = sparse.csr_matrix(
        (np.ones(int(known.sum())), (np.flatnonzero(known), code)),
        shape=(len(labels), int(code.max()) + 1),
    )
    per_label = _dense(history @ onehot)
    full = np.full(len(labels), -1, dtype=np.int64)
    full[known] = code
    label_c = full[c]
    out = np.where(label_c[None, :] >= 0, per_label[:, np.maximum(label_c, 0)], 0.0)
    shares: Matrix = out.astype(np.float32)
    return shares


def _dense(matrix: object) -> Matrix:
    array = matrix.toarray() if sparse.issparse(matrix) else matrix  # type: ignore[attr-defined]
    dense: Matrix = np.asarray(array, dtype=np.float32)
    return dense


def budget_full(items: Items, users: Users, group: CandidateGroup) -> Bools:
    """(users × candidates): the candidate belongs to a ballot in which the user has already
    supported as many projects as allowed (a full ballot takes no more)."""
    c = group.items
    caps = items.budget_cap
    if not len(caps) or not (caps >= 0).any():
        return np.zeros((len(group.users), len(c)), dtype=bool)
    joined = users.history[group.users.astype(np.intp)] >= 1.0
    has_budget = items.budget >= 0
    onehot = sparse.csr_matrix(
        (
            np.ones(int(has_budget.sum())),
            (np.flatnonzero(has_budget), items.budget[has_budget]),
        ),
        shape=(len(items), len(caps)),
    )
    used = _dense(sparse.csr_matrix(joined, dtype=np.float32) @ onehot)  # (m, budgets)
    budget_c = items.budget[c]
    cap_c = np.where(budget_c >= 0, caps[np.maximum(budget_c, 0)], -1)
    used_c = np.where(budget_c >= 0, used[:, np.maximum(budget_c, 0)], 0.0)
    result: Bools = (cap_c[None, :] >= 0) & (used_c >= cap_c[None, :])
    return result
