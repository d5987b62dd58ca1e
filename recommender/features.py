"""Features of (user, project) pairs, computed for a whole group of users at once.

A group shares its candidates (a commune's residents, a district's voters). Features that
depend only on the project are vectors over the group's candidates; features that depend on
the user too are (users × candidates) matrices built by matrix products, never by a loop over
pairs. Every value lies in [0, 1]; the scorers weigh them (:mod:`recommender.scorers`).

The names, in :data:`FEATURES`:

- ``level:<word>``: one-hot, why the project concerns the user (:data:`facts.MATCH_LEVELS`);
  in an XXL intercommunalité the EPCI match is ``level:epci_xxl``, whose weight is small, and
  the distance to the project's footprint (``proximity``) carries the geography instead.
- ``proximity``: exp(−d / 5 km), d the distance in km from home to the project's footprint
  (its point, or the edge of its area or circle, 0 inside); 0 when either is unknown.
  ``proximity_wide``: the same at 25 km, the scale of a city or an intercommunalité.
- ``interest_declared``: the share of the project's themes the user declared.
- ``interest_learned``: the mean cosine between the project's text and the texts of what the
  user took part in (TF-IDF vectors, :mod:`recommender.texts`).
- ``co_participation``: mean, over what the user took part in, of the co-participation model's
  item-to-item score (people who took part in this also took part in that).
- ``followed``: the user follows or belongs to the project's organisation.
- ``theme_muted``: the share of the project's themes the user asked for less of.
- ``popularity``: participants per person concerned, log-scaled to [0, 1]: a village's project
  that half the village joined outranks a metropole's that 1 % joined.
- ``freshness``: exp(−days open / 14). ``closing_soon``: closes within 7 days.
- ``space:loi``, ``space:idees``: the space (``territoires`` is the reference).
- ``tool_affinity``: the share of the user's participations made with the project's tool.
- ``theme_affinity``: the mean, over what the user took part in, of the share of the
  project's themes that it shares.
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
    "proximity_wide",
    "interest_declared",
    "interest_learned",
    "co_participation",
    "followed",
    "theme_muted",
    "tool_affinity",
    "place_affinity",
    "theme_affinity",
)
FEATURES: tuple[str, ...] = (*ITEM_FEATURES, *PAIR_FEATURES)

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG), as PostGIS's spheroid-free distance
PROXIMITY_SCALE_KM = 5.0  # a project 5 km away keeps e⁻¹ of a next-door one's proximity
WIDE_SCALE_KM = 25.0  # the same across an intercommunalité or a city: 25 km keeps e⁻¹
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
    """Distances in km from each home (m, 2) to each place (n, 2) (degrees), less the place's
    reach (0 inside): (m, n) float32, NaN where either point is unknown.

    On a local plane (equirectangular at the homes' mean latitude), computed as
    |h|² + |p|² − 2 h·p so that the m × n part is one matrix product: within 100 km of the
    homes the error is under 0.5 % (e.g. 2.30 km for 2.31), which the reasons round away;
    far places are far either way.
    """
    known = ~np.isnan(homes).any(axis=1)
    lat0 = np.radians(np.mean(homes[known, 1])) if known.any() else 0.0
    scale = np.array([np.cos(lat0), 1.0]) * np.radians(1.0) * EARTH_RADIUS_M / 1000.0
    # Centred on the homes, in km: float32 keeps metres within the hundred km that matter.
    origin = np.mean(homes[known], axis=0) * scale if known.any() else np.zeros(2)
    h = np.nan_to_num(homes * scale - origin).astype(np.float32)
    p = np.nan_to_num(places * scale - origin).astype(np.float32)
    squared = (h * h).sum(axis=1)[:, None] + (p * p).sum(axis=1)[None, :] - 2.0 * (h @ p.T)
    km = np.sqrt(np.maximum(squared, 0.0)) - (reach_m / 1000.0).astype(np.float32)[None, :]
    out: Matrix = np.maximum(km, np.float32(0.0))
    out[~known] = np.nan
    out[:, np.isnan(places).any(axis=1)] = np.nan
    return out


def _row_normalised(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums, dtype=np.float64), where=sums > 0)
    return sparse.csr_matrix(sparse.diags(scale) @ matrix)


def item_features(items: Items, group: CandidateGroup) -> dict[str, Matrix]:
    """The features that depend only on the project, over the group's candidates."""
    c = group.items
    out: dict[str, Matrix] = {}
    if group.places is None:
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
    rows = group.users.astype(np.intp)
    n_c = len(c)
    pair: dict[str, Matrix] = {}

    distance = distances_km(users.lonlat[rows], items.lonlat[c], items.reach_m[c])
    for name, scale in (("proximity", PROXIMITY_SCALE_KM), ("proximity_wide", WIDE_SCALE_KM)):
        pair[name] = np.where(
            np.isnan(distance), 0.0, np.exp(-distance / np.float32(scale))
        ).astype(np.float32)

    themes_c = items.themes[c].astype(np.float32)  # (n_c, T)
    share_c = themes_c.T / np.maximum(themes_c.sum(axis=1), 1.0)  # (T, n_c)
    pair["interest_declared"] = users.interests[rows].astype(np.float32) @ share_c
    pair["theme_muted"] = users.muted[rows].astype(np.float32) @ share_c

    # What the group's users took part in: the h projects any of them did. Relations of those
    # to the candidates are (h × n_c); the features average them over each user's history.
    history = users.history[rows]
    seen = np.unique(history.indices)
    h = _row_normalised(sparse.csr_matrix(history[:, seen], dtype=np.float32))  # rows sum to 1
    # Each is a product through the users' (m × ·) profile rather than through the
    # (seen × candidates) relation: a département's users took part in thousands of projects.
    profile = sparse.csr_matrix(h @ items.text[seen])  # (m, V), mean of texts
    pair["interest_learned"] = _dense(profile @ items.text[c].T)
    pair["co_participation"] = (
        np.asarray(h @ _dense(coparticipation[seen][:, c]), dtype=np.float32)
        if coparticipation is not None and len(seen)
        else np.zeros((len(rows), n_c), dtype=np.float32)
    )
    _, tool = np.unique(np.asarray(items.tool, dtype=object)[np.r_[seen, c]], return_inverse=True)
    pair["tool_affinity"] = _shares(h, tool[: len(seen)], tool[len(seen) :])
    pair["place_affinity"] = _shares(h, items.territory[seen], items.territory[c])
    themes_c = items.themes[c].astype(np.float32)
    per_theme = _dense(h @ items.themes[seen].astype(np.float32))  # (m, T)
    pair["theme_affinity"] = per_theme @ (themes_c.T / np.maximum(themes_c.sum(axis=1), 1.0))
    pair["followed"] = _dense(users.followed[rows][:, c])

    if group.places is not None:  # per place: the level features are pair features
        levels = group.user_levels()
        for k, name in enumerate(LEVEL_FEATURES):
            pair[name] = (levels == k).astype(np.float32)
    return GroupFeatures(item_features(items, group), pair, distance)


def _shares(
    h: sparse.csr_matrix, seen_labels: npt.NDArray[np.int64], labels: npt.NDArray[np.int64]
) -> Matrix:
    """(m, n_c): the share of each user's history (``h``, rows summing to 1, over the seen
    projects) whose label is the candidate's; -1 labels match nothing."""
    codes, seen_code = np.unique(seen_labels, return_inverse=True)
    onehot = sparse.csr_matrix(
        (np.ones(len(seen_labels), dtype=np.float32), (np.arange(len(seen_labels)), seen_code)),
        shape=(len(seen_labels), len(codes)),
    )
    per_label = np.concatenate([_dense(h @ onehot), np.zeros((h.shape[0], 1), np.float32)], axis=1)
    pos = np.searchsorted(codes, labels)
    found = (pos < len(codes)) & (labels >= 0)
    found[found] &= codes[pos[found]] == labels[found]
    out: Matrix = per_label[:, np.where(found, pos, len(codes))]
    return out


def _dense(matrix: object) -> Matrix:
    array = matrix.toarray() if sparse.issparse(matrix) else matrix  # type: ignore[attr-defined]
    dense: Matrix = np.asarray(array, dtype=np.float32)
    return dense


def budget_full(items: Items, users: Users, group: CandidateGroup) -> Bools:
    """(users × candidates): the candidate belongs to a ballot in which the user has already
    spent what it allows (its cap: projects, or points in a cumulative ballot): a full ballot
    takes no more."""
    c = group.items
    caps = items.budget_cap
    if not len(caps) or not (caps >= 0).any():
        return np.zeros((len(group.users), len(c)), dtype=bool)
    # What a user spent in each ballot: their participations' weights (1 each on the platform;
    # the points they gave, in a cumulative participatory budget). Clicks (< 1) spend nothing.
    history = users.history[group.users.astype(np.intp)]
    joined = history.multiply(history >= 1.0)
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
