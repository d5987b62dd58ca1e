"""Offline replay of candidate weights on the digests' logged clicks: would the candidate have
put what people clicked higher than the current weights do? It discards bad ideas before anyone
is exposed to them; what looks promising still goes to an online experiment.

Stages:

1. **Logged lists** (``replay.sql``): each digest mailed in [since, until), its projects in the
   order it showed them (``inbox.digest_rank``), then the rows it held but did not show, and
   which shown projects were clicked from that mail.
2. **Re-ranking**: each list's projects are ranked again by the current scorer and by the
   candidate, with the recommender's own features (:func:`recommender.features.group_features`),
   computed for many lists at once: a chunk of lists is one :class:`~recommender.facts.
   CandidateGroup` whose places are the lists (each its projects, with the inbox's level: why
   the project concerned the user). Ties keep the logged order. Features are those of **replay
   time, not logging time**: projects' participants and age, users' follows and interests as
   they are now. The user's own engagement with a list's projects is left out of that list's
   history: it is the outcome being predicted, and a click would otherwise recommend itself.
   Projects the anonymous viewer may no longer see (private, deleted) have no facts: both
   rankers place them last, in logged order (``unscored_items``).
3. **Estimates** (pure functions over the lists' arrays, below): inverse-propensity clicks per
   list, their bootstrap intervals, NDCG, team-draft interleaving, and a verdict in French.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import psycopg
from scipy import sparse, stats

from contracts.errors import InvalidInput
from contracts.growth import ReplayArm, ReplayReport
from geo_engine.db import load_sql
from geo_engine.engagement import user_signals
from recommender.batch import users_of
from recommender.coparticipation_index import CoParticipationIndex
from recommender.evaluation.metrics import ndcg_at_k
from recommender.facts import NOT_CANDIDATE, CandidateGroup, Users, level_index
from recommender.features import group_features
from recommender.ground import USER_PLACE, project_facts
from recommender.scorers import LinearScorer, load_weighted, with_overrides
from recommender.service import COPARTICIPATION_FILE
from recommender.settings import RecommenderSettings

LOGGED_LISTS = load_sql("growth", "replay.sql")
# Lists ranked together: (CHUNK × the union of their projects) float32 matrices per feature,
# most of it wasted when their projects differ (32 was twice as fast as 256 on the bench).
CHUNK = 32
SHARED = -1  # team-draft: an item both rankers picked next, credited to neither
CANDIDATE_VERSION = "candidat"
DEFAULT_DAYS = 28  # the default window: four weeks of digests, weekly ones included
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)

DISCARD = "à écarter"
PROMISING = "prometteur, à tester en ligne"
NO_EFFECT = "sans effet mesurable"

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ReplayParams:
    """``eta``: the examination propensities' exponent, p(k) = (1/k)^eta (≥ 0; 0: every rank
    is examined alike); ``clip``: the largest propensity ratio counted (≥ 1); ``ndcg_at``: NDCG's
    cut (≥ 1, and never past a digest's size); ``resamples`` of the bootstrap (10 to 100,000);
    ``seed`` of the bootstrap and of the interleaving's coin."""

    eta: float = 1.0
    clip: float = 10.0
    ndcg_at: int = 10
    resamples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if not np.isfinite(self.eta) or not 0.0 <= self.eta <= 10.0:
            raise InvalidInput(f"eta must be a number between 0 and 10, not {self.eta}")
        if not np.isfinite(self.clip) or self.clip < 1.0:
            raise InvalidInput(f"clip must be a finite number of at least 1, not {self.clip}")
        if not 1 <= self.ndcg_at <= 1000:
            raise InvalidInput(f"ndcg_at must be between 1 and 1000, not {self.ndcg_at}")
        if not 10 <= self.resamples <= 100_000:
            raise InvalidInput(f"resamples must be between 10 and 100000, not {self.resamples}")
        if not 0 <= self.seed < 2**63:
            raise InvalidInput(f"seed must be between 0 and {2**63 - 1}, not {self.seed}")


@dataclass(frozen=True)
class LoggedLists:
    """L logged lists as rows padded to the longest (S columns), each row in logged order (the
    shown projects first, by rank; then those the digest held but did not show).

    ``keys``: the digests' mail keys; ``users``: (L,) user ids; ``projects``: (L, S) project
    ids, -1 padding; ``levels``: (L, S) inbox levels (indices into
    :data:`geo_engine.audience.LEVELS`); ``clicked``: (L, S); ``shown``: (L,) how many the
    digest showed (its size: a ranker placing an item past it earns nothing)."""

    keys: list[str]
    users: Ints
    projects: Ints
    levels: Ints
    clicked: Bools
    shown: Ints

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def of(
        cls,
        keys: Sequence[str],
        users: Sequence[int],
        projects: Sequence[Sequence[int]],
        levels: Sequence[Sequence[int]],
        clicked: Sequence[Sequence[bool]],
        shown: Sequence[int],
    ) -> LoggedLists:
        """Lists from ragged per-list sequences (aligned within each list)."""
        width = max((len(p) for p in projects), default=0)

        def padded(rows: Sequence[Sequence[int]] | Sequence[Sequence[bool]], fill: int) -> Ints:
            out = np.full((len(rows), width), fill, dtype=np.int64)
            for r, row in enumerate(rows):
                out[r, : len(row)] = row
            return out

        return cls(
            keys=list(keys),
            users=np.array(users, dtype=np.int64),
            projects=padded(projects, -1),
            levels=padded(levels, 0),
            clicked=padded(clicked, 0).astype(bool),
            shown=np.array(shown, dtype=np.int64),
        )


def read_lists(conn: psycopg.Connection, since: datetime, until: datetime) -> LoggedLists:
    """The digests mailed in [since, until) that showed ranked rows (``replay.sql``), with
    their clicks in the same window."""
    rows = conn.execute(LOGGED_LISTS, {"since": since, "until": until}).fetchall()
    return LoggedLists.of(
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[3] for r in rows],
        [r[4] for r in rows],
        [r[6] for r in rows],
        [r[5] for r in rows],
    )


def candidate_scorer(current: LinearScorer, weights: Path | Mapping[str, object]) -> LinearScorer:
    """The candidate: a weights TOML file (:func:`recommender.scorers.load_weighted`) or
    feature → weight overrides merged over ``current``'s weights (version ``candidat``).
    InvalidInput naming unknown features and values that are not finite numbers."""
    if isinstance(weights, Path):
        return load_weighted(weights)
    return with_overrides(current, weights, CANDIDATE_VERSION)


# --------------------------------------------------------------------------------------------
# Re-ranking


def rerank(
    conn: psycopg.Connection,
    lists: LoggedLists,
    scorers: Sequence[LinearScorer],
    coparticipation: CoParticipationIndex | None = None,
) -> tuple[list[Ints], int]:
    """Each scorer's order of each list: (L, S) column indices into the list's own row, best
    first, -1 padding; and how many logged items had no facts (placed last by every scorer).
    Facts are read in four statements whatever L; features are computed by chunks of
    :data:`CHUNK` lists."""
    n_lists, width = lists.projects.shape
    rows = sorted(conn.execute(USER_PLACE, {"users": np.unique(lists.users).tolist()}).fetchall())
    uid = np.array([r[0] for r in rows], dtype=np.int64)
    signals = user_signals(conn, uid)
    logged = lists.projects[lists.projects >= 0]
    universe = np.unique(np.concatenate([logged, signals.e_project]))
    items, _ = project_facts(conn, universe.tolist(), None)
    per_user = users_of(rows, signals, items)
    take = np.searchsorted(uid, lists.users)  # replay.sql keeps lists of existing users only
    item_row = _index(items.ids, lists.projects)
    known = item_row >= 0
    unscored = int(((lists.projects >= 0) & ~known).sum())

    lines = np.repeat(np.arange(n_lists), width).reshape(n_lists, width)
    own = sparse.csr_matrix(
        (np.ones(int(known.sum()), dtype=np.float32), (lines[known], item_row[known])),
        shape=(n_lists, len(items)),
    )
    history = sparse.csr_matrix(per_user.history[take])
    history = sparse.csr_matrix(history - history.multiply(own))
    history.eliminate_zeros()
    users = Users(
        ids=per_user.ids[take],
        lonlat=per_user.lonlat[take],
        place_names=[per_user.place_names[i] for i in take],
        interests=per_user.interests[take],
        muted=per_user.muted[take],
        history=history,
        followed=sparse.csr_matrix(per_user.followed[take]),
        dismissed=sparse.csr_matrix(per_user.dismissed[take]),
    )
    xxl = np.array([bool(r[10]) for r in rows], dtype=bool)[take]
    match = lists.levels.copy()
    match[(match == level_index("epci")) & xxl[:, None]] = level_index("epci_xxl")
    block = coparticipation.block(items.ids) if coparticipation is not None else None

    orders = [np.full((n_lists, width), -1, dtype=np.int64) for _ in scorers]
    position = np.arange(width)
    # Neighbours' digests share their projects: chunks of one commune's lists stay narrow.
    commune = np.array([r[2] or "" for r in rows], dtype=object)[take]
    sequence = np.argsort(commune, kind="stable")
    for start in range(0, n_lists, CHUNK):
        part = sequence[start : start + CHUNK]
        rows_in = item_row[part]
        ok = known[part]
        union = np.unique(rows_in[ok])
        local = np.nonzero(ok)
        column = np.searchsorted(union, rows_in[ok])
        count = rows_in.shape[0]
        levels = np.full((count, len(union)), NOT_CANDIDATE, dtype=np.int64)
        levels[local[0], column] = match[part][ok]
        tier = np.where(ok, 0, np.where(lists.projects[part] >= 0, 1, 2))
        features = (
            group_features(
                items,
                users,
                CandidateGroup(
                    items=union,
                    levels=levels,
                    users=part.astype(np.int64),
                    places=np.arange(count, dtype=np.int64),
                ),
                block,
            )
            if len(union)
            else None
        )
        for scorer, order in zip(scorers, orders, strict=True):
            scores = np.zeros((count, width), dtype=np.float64)
            if features is not None:
                scores[ok] = scorer.score(features)[local[0], column]
            # Scored first, best first; ties keep the logged order; then the unscored; padding.
            ranked = np.lexsort((np.broadcast_to(position, scores.shape), -scores, tier), axis=1)
            order[part] = np.where(np.take_along_axis(tier, ranked, axis=1) < 2, ranked, -1)
    return orders, unscored


def _index(ids: Ints, wanted: Ints) -> Ints:
    """Position of each ``wanted`` id in the sorted ``ids`` (any shape), -1 when absent."""
    if not len(ids):
        return np.full(wanted.shape, -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
    return np.where(ids[pos] == wanted, pos, -1).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Estimates


def ranks_of(order: Ints) -> Floats:
    """(L, S): the 1-based rank each column of a list gets from ``order`` (inf: not placed)."""
    n_lists, width = order.shape
    ranks = np.full((n_lists, width), np.inf)
    placed = order >= 0
    lines = np.repeat(np.arange(n_lists), width).reshape(n_lists, width)
    ranks[lines[placed], order[placed]] = np.tile(np.arange(1, width + 1), (n_lists, 1))[placed]
    return ranks


def propensity_ratio(logged: Floats, new: Floats, eta: float) -> Floats:
    """p(new) / p(logged) = (logged / new)^eta, with p(k) = (1/k)^eta the chance that rank k
    is examined (position-based model; Joachims, Swaminathan & Schnabel 2017, "Unbiased
    Learning-to-Rank with Biased Feedback", WSDM). 0 where ``new`` is inf (not shown)."""
    with np.errstate(divide="ignore"):
        ratio: Floats = np.where(
            np.isfinite(new), (logged / np.where(np.isfinite(new), new, 1.0)) ** eta, 0.0
        )
    return ratio


def ips_clicks(lists: LoggedLists, order: Ints, eta: float, clip: float) -> tuple[Floats, int]:
    """Inverse-propensity estimate of each list's clicks under the ranker giving ``order``,
    and how many ratios were clipped.

    A logged click at rank k estimates a relevance of 1/p(k); the ranker placing that item at
    rank k' (within the digest's size) has it examined with probability p(k'), so it earns
    p(k')/p(k); past the size, 0 (the inverse-propensity-scored estimator of Joachims,
    Swaminathan & Schnabel 2017, with the propensities of their position-based model; the
    unshown rows were never examined, so their relevance counts as 0 for both rankers).
    Ratios over ``clip`` are cut to it (a little bias for a bounded variance: Strehl,
    Langford, Li & Kakade 2010, "Learning from Logged Implicit Exploration Data")."""
    ranks = ranks_of(order)
    ranks[ranks > lists.shown[:, None]] = np.inf
    logged = np.tile(np.arange(1, lists.projects.shape[1] + 1, dtype=np.float64), (len(lists), 1))
    ratio = propensity_ratio(logged, ranks, eta)
    clipped = int((lists.clicked & (ratio > clip)).sum())
    values: Floats = (np.minimum(ratio, clip) * lists.clicked).sum(axis=1)
    return values, clipped


def ndcg(lists: LoggedLists, order: Ints, k: int) -> Floats:
    """NDCG at min(k, the digest's size) of each list against its logged clicks (binary
    relevance, :func:`recommender.evaluation.metrics.ndcg_at_k`); NaN for a list without a
    click."""
    n_lists, width = order.shape
    safe = np.where(order >= 0, order, 0)
    hits = np.take_along_axis(lists.clicked, safe, axis=1) & (order >= 0)
    hits &= np.arange(width)[None, :] < np.minimum(k, lists.shown)[:, None]
    values: Floats = ndcg_at_k(hits, lists.clicked.sum(axis=1), k)
    return values


def team_draft(
    a: Sequence[int], b: Sequence[int], size: int, coin: np.random.Generator
) -> tuple[list[int], list[int]]:
    """Team-draft interleaving of rankings ``a`` and ``b`` (Radlinski, Kurup & Joachims 2008,
    "How does clickthrough data reflect retrieval quality?", CIKM, algorithm 2): the team with
    fewer picks (a coin flip when even) adds its best item not yet placed, up to ``size``
    items. Returns the items and each one's team: 0 for ``a``, 1 for ``b``, :data:`SHARED` for
    the rankings' common prefix, placed first and credited to neither (both put those items at
    the same ranks, so a click there prefers neither; identical rankings then tie on every list,
    where the original draws would credit a coin flip)."""
    common = 0
    while common < min(len(a), len(b), size) and a[common] == b[common]:
        common += 1
    placed: list[int] = list(a[:common])
    teams: list[int] = [SHARED] * common
    taken: set[int] = set(placed)
    ia = ib = picks_a = picks_b = 0
    while len(placed) < size:
        while ia < len(a) and a[ia] in taken:
            ia += 1
        while ib < len(b) and b[ib] in taken:
            ib += 1
        if ia == len(a) or ib == len(b):
            break
        if picks_a < picks_b or (picks_a == picks_b and coin.random() < 0.5):
            item, team, picks_a = a[ia], 0, picks_a + 1
        else:
            item, team, picks_b = b[ib], 1, picks_b + 1
        placed.append(item)
        teams.append(team)
        taken.add(item)
    return placed, teams


def interleaving(
    lists: LoggedLists, current: Ints, candidate: Ints, eta: float, clip: float, seed: int
) -> tuple[int, int, int]:
    """Team-draft interleaving of current and candidate on each list, the logged clicks
    credited by propensity: a click at logged rank k on an item the interleaved list shows at
    rank k'' earns its team min(p(k'')/p(k), clip). The candidate wins a list when its team
    earns more. Returns (wins, losses, ties); lists without a click are ties."""
    coin = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    wins = losses = 0
    clicked_lists = np.flatnonzero(lists.clicked.any(axis=1))
    for line in clicked_lists:
        a = [int(c) for c in current[line] if c >= 0]
        b = [int(c) for c in candidate[line] if c >= 0]
        placed, teams = team_draft(a, b, int(lists.shown[line]), coin)
        credit = [0.0, 0.0]
        for rank, (column, team) in enumerate(zip(placed, teams, strict=True), start=1):
            if team != SHARED and lists.clicked[line, column]:
                ratio = propensity_ratio(np.array(column + 1.0), np.array(float(rank)), eta)
                credit[team] += min(float(ratio), clip)
        wins += credit[1] > credit[0]
        losses += credit[1] < credit[0]
    return wins, losses, len(lists) - wins - losses


def bootstrap(values: Floats, resamples: int, seed: int) -> tuple[Floats, Floats]:
    """Percentile 95 % intervals of the means of the columns of ``values`` (L × A), resampling
    the lists (rows) with replacement, the same rows for every column (a paired difference
    keeps its pairing); Efron & Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[0])
    n = len(values)
    means = np.empty((resamples, values.shape[1]))
    step = max(1, 5_000_000 // max(n, 1))  # resamples drawn at once: ≤ 5 M indices in memory
    for start in range(0, resamples, step):
        stop = min(resamples, start + step)
        picks = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5], axis=0)
    return low, high


def verdict(ci_low: float, ci_high: float) -> str:
    """In French, by the difference's interval: below 0 « à écarter », above 0 « prometteur, à
    tester en ligne » (an offline estimate is no proof: the online experiment decides), else
    « sans effet mesurable »."""
    if ci_high < 0:
        return DISCARD
    if ci_low > 0:
        return PROMISING
    return NO_EFFECT


def estimate(
    lists: LoggedLists,
    current: Ints,
    candidate: Ints,
    versions: tuple[str, str],
    params: ReplayParams,
) -> ReplayReport:
    """The report of two rankers' orders (:func:`rerank`) of ``lists`` (at least one).
    Clicks per list and the difference are means over all the lists, clicked or not."""
    if not len(lists):
        raise InvalidInput("no logged list to replay")
    cur, cur_clipped = ips_clicks(lists, current, params.eta, params.clip)
    cand, cand_clipped = ips_clicks(lists, candidate, params.eta, params.clip)
    per_list = np.column_stack([cur, cand, cand - cur])
    low, high = bootstrap(per_list, params.resamples, params.seed)
    wins, losses, ties = interleaving(
        lists, current, candidate, params.eta, params.clip, params.seed
    )
    decided = wins + losses
    p_value = float(stats.binomtest(wins, decided, 0.5).pvalue) if decided else None

    def arm(
        name: str, version: str, values: Floats, order: Ints, clipped: int, a: int
    ) -> ReplayArm:
        scores = ndcg(lists, order, params.ndcg_at)
        return ReplayArm(
            name=name,
            version=version,
            clicks_per_list=float(values.mean()),
            ci_low=float(low[a]),
            ci_high=float(high[a]),
            ndcg=float(np.nanmean(scores)) if np.isfinite(scores).any() else None,
            clipped=clipped,
        )

    return ReplayReport(
        method=(
            f"IPS par position (p(k) = k^-{params.eta:g}, ratios plafonnés à {params.clip:g}), "
            f"bootstrap de {params.resamples} tirages des listes, interleaving team-draft"
        ),
        lists=len(lists),
        clicks=int(lists.clicked.sum()),
        current=arm("actuel", versions[0], cur, current, cur_clipped, 0),
        candidate=arm("candidat", versions[1], cand, candidate, cand_clipped, 1),
        difference=float(per_list[:, 2].mean()),
        ci_low=float(low[2]),
        ci_high=float(high[2]),
        interleaving_wins=wins,
        interleaving_losses=losses,
        interleaving_ties=ties,
        interleaving_p_value=p_value,
        verdict=verdict(float(low[2]), float(high[2])),
        eta=params.eta,
        clip=params.clip,
        ndcg_at=params.ndcg_at,
        resamples=params.resamples,
        seed=params.seed,
    )


def replay(
    conn: psycopg.Connection,
    current: LinearScorer,
    candidate: LinearScorer,
    since: datetime,
    until: datetime,
    params: ReplayParams | None = None,
    coparticipation: CoParticipationIndex | None = None,
) -> ReplayReport:
    """Replay the digests mailed in [since, until) under ``current`` and ``candidate`` (see the
    module's stages). InvalidInput when the window is refused (:func:`window`) or when no
    digest of the period has ranked rows (``inbox.digest_rank``)."""
    params = params or ReplayParams()
    since, until = window(since, until, until)
    lists = read_lists(conn, since, until)
    if not len(lists):
        raise InvalidInput(
            f"no digest mailed between {since.isoformat()} and {until.isoformat()} has ranked "
            "items (inbox.digest_rank): nothing to replay"
        )
    (cur, cand), unscored = rerank(conn, lists, [current, candidate], coparticipation)
    report = estimate(lists, cur, cand, (current.version, candidate.version), params)
    return report.model_copy(update={"since": since, "until": until, "unscored_items": unscored})


def window(
    since: datetime | None, until: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """[since, until): ``until`` defaults to ``now``, ``since`` to :data:`DEFAULT_DAYS` before
    ``until``. InvalidInput when either lacks a time zone, lies outside [1970, 9000), or
    since is not before until."""
    end = until or now
    try:
        start = since or end - timedelta(days=DEFAULT_DAYS)
        if start.tzinfo is None or end.tzinfo is None:
            raise InvalidInput("since and until need a time zone (e.g. 2026-11-01T00:00:00+00:00)")
        inside = start.astimezone(UTC) >= EARLIEST and end.astimezone(UTC) < LATEST
    except OverflowError:
        inside = False
    if not inside:
        raise InvalidInput("since and until must lie between 1970 and 9000")
    if start >= end:
        raise InvalidInput(f"since ({start.isoformat()}) must be before until ({end.isoformat()})")
    return start, end


def current_of(settings: RecommenderSettings) -> tuple[LinearScorer, CoParticipationIndex | None]:
    """The current scorer (the weighted scorer of ``settings.weights``, which the candidate's
    overrides are merged over) and the co-participation model when ``recommend train`` wrote
    one. InvalidInput when the weights file is missing or refused."""
    path = settings.model_dir / COPARTICIPATION_FILE
    return load_weighted(settings.weights), (
        CoParticipationIndex.load(path) if path.is_file() else None
    )
