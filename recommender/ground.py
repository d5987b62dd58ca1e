"""The platform's side of the ranking: candidates, projects and users read from the ground.

Stages, as gorse names them:

- **candidates**: ``geo/<level>`` from the ground's ``project_candidates`` (the one hierarchy
  and the one visibility rule: commune, arrondissement, EPCI, drawn area or circle, département,
  région, national), which also brings what the user's organisations publish for their
  members; ``followed`` (organisations followed or belonged to, wherever they act), ``nearby``
  (projects and participatory-map contributions within 10 km of home) and ``popular`` (the
  département's most joined commune projects), from ``sql/more_candidates.sql`` through the
  same rule; ``co-participation``: what people who took part in the user's projects also took
  part in (only when the user may see it, checked by the same rule);
- **exclusions**: closed projects, what the user joined or dismissed
  (:func:`recommender.ranking.exclusions`);
- **ranking and re-ranking**: :func:`recommender.ranking.rank_group`.

Projects are read through ``visible_projects(viewer)`` (``sql/project_facts.sql``): a project
the user may not see is never a fact here, so it can be neither candidate nor reason.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from scipy import sparse

from contracts.errors import NotFound
from contracts.themes import Theme
from geo_engine import audience
from geo_engine.db import load_sql
from geo_engine.engagement import PARTICIPATION, UserSignals, project_participants, user_signals
from recommender.coparticipation_index import CoParticipationIndex
from recommender.explain import Recommendation, explain
from recommender.facts import Bools, CandidateGroup, Items, Users, level_index
from recommender.ranking import RankingConfig, rank_group
from recommender.scorers import LinearScorer
from recommender.texts import N_FEATURES, documents, vectors

PROJECT_FACTS = load_sql("recommender", "sql/project_facts.sql")
USER_PLACE = load_sql("recommender", "sql/user_place.sql")
MORE_CANDIDATES = load_sql("recommender", "sql/more_candidates.sql")

THEMES: tuple[str, ...] = tuple(t.value for t in Theme)
OPEN = ("open", "upcoming")
CLICK_WEIGHT = 0.3  # a click says less than a participation (which weighs 1)
CO_PARTICIPATION_CANDIDATES = 50  # most projects the co-participation generator adds
NEARBY_M = 10_000.0  # the `nearby` generator's radius around home
POPULAR_CANDIDATES = 20  # most projects the `popular` (département) generator adds


@dataclass(frozen=True)
class Place:
    """Where a user lives: ``commune`` INSEE code or None (still to choose), ``home`` (lon,
    lat) or None, ``names`` level → name, ``xxl`` whether their EPCI is XXL, ``interests``,
    ``departement`` code or None; ``pending``: the communes a user still choosing hesitates
    between (a postal code shared by several)."""

    commune: str | None
    home: tuple[float, float] | None
    names: dict[str, str]
    xxl: bool
    interests: tuple[str, ...]
    departement: str | None
    pending: tuple[str, ...] = ()


def user_place(conn: psycopg.Connection, user_id: int) -> Place:
    """The user's place; NotFound when there is no such user."""
    row = conn.execute(USER_PLACE, {"users": [user_id]}).fetchone()
    if row is None:
        raise NotFound(f"user {user_id} not found")
    _, interests, commune, lon, lat, *names, xxl, departement, pending = row
    levels = ("commune", "arrondissement", "epci", "departement", "region")
    return Place(
        commune,
        None if lon is None else (float(lon), float(lat)),
        {k: v for k, v in zip(levels, names, strict=True) if v},
        bool(xxl),
        tuple(interests or ()),
        departement,
        tuple(pending or ()),
    )


FactRow = tuple[Any, ...]


def fact_rows(
    conn: psycopg.Connection, ids: Sequence[int], viewer: int | None
) -> dict[int, tuple[FactRow, sparse.csr_matrix]]:
    """The facts (``sql/project_facts.sql``, then participants) and text vector of each project
    ``viewer`` may see among ``ids``, by id."""
    rows = conn.execute(PROJECT_FACTS, {"ids": list(ids), "viewer": viewer}).fetchall()
    if not rows:
        return {}
    found = [int(r[0]) for r in rows]
    participants = project_participants(conn, found)
    texts = vectors(
        documents([r[6] for r in rows], [r[7] for r in rows], [r[2] or () for r in rows])
    )
    return {
        pid: ((*row, int(count)), texts[i])
        for i, (pid, row, count) in enumerate(zip(found, rows, participants, strict=True))
    }


def items_of(facts: Sequence[tuple[FactRow, sparse.csr_matrix]]) -> tuple[Items, Bools]:
    """:class:`Items` of fact rows (in their order), and whether each is open (or upcoming)."""
    rows = [f[0] for f in facts]
    n = len(rows)
    themes = np.zeros((n, len(THEMES)), dtype=bool)
    index = {t: i for i, t in enumerate(THEMES)}
    for r, row in enumerate(rows):
        for t in row[2] or ():
            if t in index:
                themes[r, index[t]] = True
    col = list(zip(*rows, strict=True)) if rows else [()] * 16
    named = np.array([t or "" for t in col[14]], dtype=object)
    _, territory = np.unique(named, return_inverse=True)

    def floats(values: Sequence[Any]) -> npt.NDArray[np.float64]:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)

    items = Items(
        ids=np.array(col[0], dtype=np.int64),
        organisation=np.array(col[1], dtype=np.int64),
        themes=themes,
        theme_names=THEMES,
        tool=np.array(col[3], dtype=object),
        space=np.array(col[4], dtype=object),
        lonlat=np.column_stack([floats(col[8]), floats(col[9])]) if n else np.zeros((0, 2)),
        reach_m=floats(col[10]),
        audience=floats(col[11]),
        participants=floats(col[15]),
        age_days=floats(col[12]),
        closes_in_days=floats(col[13]),
        budget=np.full(n, -1, dtype=np.int64),
        budget_cap=np.zeros(0, dtype=np.int64),
        text=_stacked([f[1] for f in facts]),
        titles=list(col[6]),
        territory=np.where(named == "", -1, territory).astype(np.int64),
    )
    is_open: Bools = np.isin(np.array(col[5], dtype=object), OPEN)
    return items, is_open


def _stacked(rows: Sequence[sparse.csr_matrix]) -> sparse.csr_matrix:
    """One CSR of single-row CSRs, built from their arrays (scipy's vstack of hundreds of
    one-row matrices costs more than the rest of a request)."""
    if not rows:
        return sparse.csr_matrix((0, N_FEATURES), dtype=np.float32)
    lengths = np.array([r.nnz for r in rows], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    return sparse.csr_matrix(
        (np.concatenate([r.data for r in rows]), np.concatenate([r.indices for r in rows]), indptr),
        shape=(len(rows), N_FEATURES),
    )


def shared_by_all(found: audience.Candidates, communes: int) -> audience.Candidates:
    """What concerns every one of the ``communes`` asked (national projects, and territories
    they share: a user hesitating between two communes of one département gets its projects),
    each at its widest level among them; all of ``found`` for one commune."""
    if communes <= 1:
        return found
    national = found.commune == -1
    ids, counts = np.unique(found.project_id[~national], return_counts=True)
    everywhere = ids[counts == communes]
    keep = national | np.isin(found.project_id, everywhere)
    order = np.lexsort((-found.level[keep], found.project_id[keep]))
    kept = np.flatnonzero(keep)[order]
    _, once = np.unique(found.project_id[kept], return_index=True)
    rows = kept[once]
    return audience.Candidates(
        found.communes,
        found.commune[rows],
        found.project_id[rows],
        found.level[rows],
        found.distance_m[rows],
    )


def project_facts(
    conn: psycopg.Connection, ids: Sequence[int], viewer: int | None
) -> tuple[Items, Bools]:
    """Facts of the projects ``viewer`` may see among ``ids``, in id order, and whether each is
    open (or upcoming)."""
    found = fact_rows(conn, ids, viewer)
    return items_of([found[p] for p in sorted(found)])


@dataclass
class FactsCache:
    """Facts of projects kept ``ttl_s`` seconds, so that a request reads only those it has not
    seen lately (the SQL of the audience sums and the text vectors are most of a cold
    request). Safe to share between users because it is only ever asked for ids the caller
    has already passed through the visibility rule for the current viewer; facts of a project
    nobody may see never enter it. At most ``size`` projects (then it starts over)."""

    ttl_s: float = 60.0
    size: int = 200_000
    _facts: dict[int, tuple[float, tuple[FactRow, sparse.csr_matrix]]] = field(default_factory=dict)

    def facts(
        self, conn: psycopg.Connection, visible_ids: Sequence[int], viewer: int | None
    ) -> tuple[Items, Bools]:
        """Facts of ``visible_ids`` (ids the rule let ``viewer`` see), in id order."""
        now = time.monotonic()
        wanted = sorted(set(visible_ids))
        stale = [p for p in wanted if now - self._facts.get(p, (-np.inf, None))[0] > self.ttl_s]
        if stale:
            if len(self._facts) + len(stale) > self.size:
                self._facts.clear()
            for pid, fact in fact_rows(conn, stale, viewer).items():
                self._facts[pid] = (now, fact)
        return items_of([self._facts[p][1] for p in wanted if p in self._facts])


def recommend_for_user(
    conn: psycopg.Connection,
    user_id: int,
    scorer: LinearScorer,
    config: RankingConfig,
    coparticipation: CoParticipationIndex | None = None,
    cache: FactsCache | None = None,
) -> list[Recommendation]:
    """The top ``config.k`` open projects ``user_id`` may see, best first (``cache``: facts
    of projects seen lately, shared between requests).

    A user with only an address (no engagement, no interests) gets the geographic order:
    commune, EPCI, département, région, national. NotFound when the user does not exist.
    """
    place = user_place(conn, user_id)
    communes = [place.commune] if place.commune else list(place.pending)
    found = shared_by_all(
        audience.candidates(conn, communes, viewer=user_id, home=place.home), len(communes)
    )
    more = conn.execute(
        MORE_CANDIDATES,
        {
            "viewer": user_id,
            "lon": place.home[0] if place.home else None,
            "lat": place.home[1] if place.home else None,
            "radius_m": NEARBY_M,
            "departement": place.departement,
            "popular": POPULAR_CANDIDATES,
        },
    ).fetchall()
    signals = user_signals(conn, [user_id])
    history_ids = signals.e_project
    co_ids = (
        coparticipation.neighbours(history_ids, CO_PARTICIPATION_CANDIDATES)
        if coparticipation is not None and len(history_ids)
        else np.zeros(0, dtype=np.int64)
    )
    geo_ids = np.concatenate([found.project_id, np.array([r[0] for r in more], dtype=np.int64)])
    # What the rule did not hand over itself (history, co-participation, feedback) goes through
    # it now: facts of what the user may not see never reach the ranking or its reasons.
    others = np.setdiff1d(np.concatenate([history_ids, co_ids, signals.f_project]), geo_ids)
    allowed = conn.execute(
        "SELECT id FROM visible_projects(%s) WHERE id = ANY(%s)", (user_id, others.tolist())
    ).fetchall()
    universe = np.union1d(geo_ids, np.array([r[0] for r in allowed], dtype=np.int64))
    items, is_open = (cache or FactsCache(ttl_s=0.0)).facts(conn, universe.tolist(), user_id)
    row_of = {int(p): r for r, p in enumerate(items.ids)}

    level_of: dict[int, int] = {}
    for p, lv in zip(found.project_id, found.level, strict=True):
        word = audience.LEVELS[lv]
        if word == "epci" and place.xxl:
            word = "epci_xxl"
        level_of[int(p)] = level_index(word)
    for r in more:
        # Followed, nearby or popular in the département, without a geographic match of the
        # user's commune: no level (-1: none of the level features fires); proximity and
        # followed tell the rest.
        level_of.setdefault(int(r[0]), -1)
    for p in co_ids:
        # Reached by co-participation alone: no geographic reason (the national level's
        # one-hot would claim one), so the least of the levels, which weighs nothing.
        level_of.setdefault(int(p), -1)
    cand = [
        (row_of[p], lv) for p, lv in sorted(level_of.items()) if p in row_of and is_open[row_of[p]]
    ]
    users = _one_user(items, row_of, place, signals)
    if not cand:
        return []
    group = CandidateGroup(
        items=np.array([c for c, _ in cand], dtype=np.int64),
        levels=np.array([lv for _, lv in cand], dtype=np.int64),
        users=np.zeros(1, dtype=np.int64),
    )
    matrix = coparticipation.block(items.ids) if coparticipation is not None else None
    ranked = rank_group(items, users, group, scorer, config, matrix)
    return explain(items, users, ranked, 0, matrix, config.min_contribution)


def _one_user(items: Items, row_of: dict[int, int], place: Place, signals: UserSignals) -> Users:
    """One user's facts over ``items`` from their place and signals."""
    n = len(items)

    def over_items(
        project_ids: npt.NDArray[np.int64], values: npt.NDArray[np.float32]
    ) -> sparse.csr_matrix:
        rows = np.array([row_of.get(int(p), -1) for p in project_ids], dtype=np.int64)
        keep = rows >= 0
        matrix = sparse.csr_matrix(
            (values[keep], (np.zeros(int(keep.sum()), dtype=np.int64), rows[keep])), shape=(1, n)
        )
        matrix.sum_duplicates()
        return matrix

    # A participation weighs 1, a click less; the greater wins for a project with both.
    weights = np.where(signals.e_kind == PARTICIPATION, 1.0, CLICK_WEIGHT).astype(np.float32)
    history = (
        over_items(signals.e_project, np.zeros(0, dtype=np.float32)) if not len(weights) else None
    )
    if history is None:
        order = np.argsort(-weights, kind="stable")
        projects, first = np.unique(signals.e_project[order], return_index=True)
        history = over_items(projects, weights[order][first])
    organisations = np.isin(items.organisation, signals.o_organisation)
    followed = sparse.csr_matrix(organisations[None, :].astype(np.float32))
    theme_rows = signals.f_theme >= 0
    muted = np.zeros((1, len(THEMES)), dtype=bool)
    muted[0, signals.f_theme[theme_rows]] = True
    dismissed_ids = np.unique(signals.f_project[~theme_rows])
    dismissed = over_items(dismissed_ids, np.ones(len(dismissed_ids), dtype=np.float32))
    return Users(
        ids=np.zeros(1, dtype=np.int64),
        lonlat=np.array([place.home if place.home else (np.nan, np.nan)], dtype=np.float64),
        place_names=[dict(place.names)],
        interests=np.isin(np.array(THEMES), list(place.interests))[None, :],
        muted=muted,
        history=history,
        followed=followed,
        dismissed=dismissed,
    )
