"""Many users at once, from the ground: the daily digests' scoring and the ranker's training.

Users are grouped by département; each commune's candidates are read once
(``project_candidates`` for all the communes in one statement, anonymous viewer: public
projects only; private ones reach their members through the fan-out, which checks membership)
and shared by its residents (a commune is a place of its département's group, with its own
levels). Users' signals come in one statement
(:func:`geo_engine.engagement.user_signals`), projects' facts in one more. Then
:func:`recommender.ranking.rank_group` per département, by chunks of residents: array
operations over its residents × its candidates.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from scipy import sparse

from geo_engine import audience
from geo_engine.db import load_sql
from geo_engine.engagement import PARTICIPATION, UserSignals, user_signals
from recommender.facts import NOT_CANDIDATE, CandidateGroup, Items, Users, level_index
from recommender.ground import CLICK_WEIGHT, THEMES, project_facts
from recommender.ranking import Ranked, RankingConfig, rank_group
from recommender.scorers import LinearScorer

USER_PLACE = load_sql("recommender", "sql/user_place.sql")
_LEVELS = ("commune", "arrondissement", "epci", "departement", "region")
CHUNK = 512  # residents ranked together: (CHUNK × candidates) float32 matrices stay small


@dataclass(frozen=True)
class Batch:
    """``items`` and ``users`` facts, and ``groups``: one per département (users still choosing
    their commune are left out: they get the national list from the API)."""

    items: Items
    users: Users
    groups: list[CandidateGroup]


def _index(ids: npt.NDArray[np.int64], wanted: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Position of each ``wanted`` id in the sorted ``ids``, -1 when absent."""
    pos = np.searchsorted(ids, wanted)
    pos = np.minimum(pos, max(len(ids) - 1, 0))
    found = (ids[pos] == wanted) if len(ids) else np.zeros(len(wanted), dtype=bool)
    return np.where(found, pos, -1).astype(np.int64)


def _matrix(
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    values: npt.NDArray[np.float32],
    shape: tuple[int, int],
) -> sparse.csr_matrix:
    """CSR of ``values`` at (rows, cols), pairs with a -1 left out, duplicates summed."""
    keep = (rows >= 0) & (cols >= 0)
    return sparse.csr_matrix((values[keep], (rows[keep], cols[keep])), shape=shape)


def load_batch(conn: psycopg.Connection, user_ids: Sequence[int]) -> Batch:
    """Facts and per-département candidate groups of ``user_ids`` (unknown ids are skipped)."""
    rows = sorted(conn.execute(USER_PLACE, {"users": list(user_ids)}).fetchall())
    rows = [r for r in rows if r[2] is not None]
    uid = np.array([r[0] for r in rows], dtype=np.int64)
    commune_of = [r[2] for r in rows]
    communes = sorted(set(commune_of))
    found = audience.candidates(conn, communes)
    signals = user_signals(conn, uid)
    universe = np.unique(np.concatenate([found.project_id, signals.e_project, signals.f_project]))
    items, is_open = project_facts(conn, universe.tolist(), None)
    users = users_of(rows, signals, items)
    xxl = [bool(r[10]) for r in rows]
    departement_of = {r[2]: r[11] or "" for r in rows}
    groups = _groups(found, communes, commune_of, xxl, departement_of, items, is_open)
    return Batch(items, users, list(groups))


def users_of(rows: Sequence[tuple[Any, ...]], signals: UserSignals, items: Items) -> Users:
    """:class:`Users` of ``sql/user_place.sql`` rows (sorted by id, in that order) and their
    ``signals`` (:func:`geo_engine.engagement.user_signals`), over ``items``: history
    (participation 1, click :data:`~recommender.ground.CLICK_WEIGHT`), organisations followed
    or belonged to, muted themes and dismissed projects. Signals on projects outside ``items``
    are left out."""
    uid = np.array([r[0] for r in rows], dtype=np.int64)
    n, m = len(items), len(uid)
    # A participation weighs 1, a click less; both on one project: 1 (the sum, capped).
    weights = np.where(signals.e_kind == PARTICIPATION, 1.0, CLICK_WEIGHT).astype(np.float32)
    history = _matrix(
        _index(uid, signals.e_user), _index(items.ids, signals.e_project), weights, (m, n)
    )
    history.data = np.minimum(history.data, 1.0)
    # Organisations followed or belonged to, as user × organisation, then × its projects.
    orgs = np.unique(items.organisation)
    belongs = _matrix(
        _index(uid, signals.o_user),
        _index(orgs, signals.o_organisation),
        np.ones(len(signals.o_user), dtype=np.float32),
        (m, len(orgs)),
    )
    projects_of = _matrix(
        _index(orgs, items.organisation),
        np.arange(n, dtype=np.int64),
        np.ones(n, dtype=np.float32),
        (len(orgs), n),
    )
    followed = sparse.csr_matrix(belongs @ projects_of)
    theme_rows = signals.f_theme >= 0
    muted = np.zeros((m, len(THEMES)), dtype=bool)
    f_rows = _index(uid, signals.f_user)
    ok = theme_rows & (f_rows >= 0)
    muted[f_rows[ok], signals.f_theme[ok]] = True
    dismissed = _matrix(
        f_rows[~theme_rows],
        _index(items.ids, signals.f_project[~theme_rows]),
        np.ones(int((~theme_rows).sum()), dtype=np.float32),
        (m, n),
    )
    return Users(
        ids=uid,
        lonlat=np.array(
            [(np.nan, np.nan) if r[3] is None else (r[3], r[4]) for r in rows], dtype=np.float64
        ).reshape(m, 2),
        place_names=[{k: v for k, v in zip(_LEVELS, r[5:10], strict=True) if v} for r in rows],
        interests=np.array([np.isin(THEMES, list(r[1] or ())) for r in rows], dtype=bool).reshape(
            m, len(THEMES)
        ),
        muted=muted,
        history=history,
        followed=followed,
        dismissed=dismissed,
    )


def _groups(
    found: audience.Candidates,
    communes: list[str],
    commune_of: list[str],
    xxl: list[bool],
    departement_of: dict[str, str],
    items: Items,
    is_open: npt.NDArray[np.bool_],
) -> Iterator[CandidateGroup]:
    """One group per département: the union of its communes' candidates, each commune a place
    with its levels (NOT_CANDIDATE where a project does not concern it). A département's
    residents are ranked together, whatever the size of their communes: a commune of three
    residents would otherwise pay alone what the arrays cost to set up."""
    rows = _index(items.ids, found.project_id)
    keep = rows >= 0
    keep[keep] &= is_open[rows[keep]]
    national = np.flatnonzero(keep & (found.commune == -1))
    epci, epci_xxl = level_index("epci"), level_index("epci_xxl")
    to_match = np.array([level_index(w) for w in audience.LEVELS], dtype=np.int64)
    residents: dict[str, list[int]] = {}
    xxl_of: dict[str, bool] = {}
    for r, code in enumerate(commune_of):
        residents.setdefault(code, []).append(r)
        xxl_of[code] = xxl[r]
    order = np.argsort(found.commune, kind="stable")
    bounds = np.searchsorted(found.commune[order], np.arange(len(communes) + 1))
    by_departement: dict[str, list[int]] = {}
    for i, code in enumerate(communes):
        by_departement.setdefault(departement_of[code], []).append(i)
    for _, members in sorted(by_departement.items()):
        own: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []
        for i in members:
            found_rows = order[bounds[i] : bounds[i + 1]]
            picked = np.concatenate([found_rows[keep[found_rows]], national])
            levels = to_match[found.level[picked]]
            if xxl_of[communes[i]]:
                levels[levels == epci] = epci_xxl
            own.append((rows[picked], levels))
        union = np.unique(np.concatenate([r for r, _ in own]))
        per_place = np.full((len(members), len(union)), NOT_CANDIDATE, dtype=np.int64)
        for p, (item_rows, levels) in enumerate(own):
            per_place[p, np.searchsorted(union, item_rows)] = levels
        users = [residents[communes[i]] for i in members]
        yield CandidateGroup(
            items=union,
            levels=per_place,
            users=np.concatenate([np.array(u, dtype=np.int64) for u in users]),
            places=np.repeat(np.arange(len(members)), [len(u) for u in users]),
        )


def rank_batch(
    batch: Batch,
    scorer: LinearScorer,
    config: RankingConfig,
    coparticipation: sparse.csr_matrix | npt.NDArray[np.float32] | None = None,
) -> Iterator[Ranked]:
    """The top ``config.k`` of every user of the batch, one :class:`Ranked` per ``CHUNK`` of a
    département's residents (a commune of 100,000 residents would otherwise need
    gigabytes of users × candidates matrices)."""
    for group in batch.groups:
        for start in range(0, len(group.users), CHUNK):
            part = group.only(slice(start, start + CHUNK))
            yield rank_group(batch.items, batch.users, part, scorer, config, coparticipation)
