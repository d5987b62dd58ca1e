"""The growth team's experiments in PostgreSQL: create, start, pause, stop, list; which variant
users are in, set-wise; the exposure log.

The rules (shares, layers, hashes) are in :mod:`contracts.experiments`; this module keeps them
true in the database. Life cycle: ``draft`` → ``running`` ⇄ ``paused`` → ``stopped`` (final;
a draft may be stopped too). Only ``running`` experiments assign: a paused one hands its units
the defaults and logs nothing. Starting an experiment whose layer slice overlaps a running or
paused one of the same surface and unit kind is refused (Conflict naming it), as is starting one
beside a running or paused experiment of the same surface randomised by another unit kind: so
a unit is in at most one experiment per surface, and a paused experiment keeps its units.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import psycopg
from psycopg.types.json import Jsonb

from contracts.errors import Conflict, NotFound
from contracts.experiments import (
    Experiment,
    ExperimentSpec,
    Status,
    Surface,
    Variant,
    cumulative_edges,
)
from geo_engine.db import load_sql

ASSIGNED = load_sql("geo_engine", "experiments_assigned.sql")
Action = Literal["start", "pause", "stop"]
# action → (statuses it applies to, the status it leads to)
TRANSITIONS: dict[Action, tuple[frozenset[Status], Status]] = {
    "start": (frozenset({"draft", "paused"}), "running"),
    "pause": (frozenset({"running"}), "paused"),
    "stop": (frozenset({"draft", "running", "paused"}), "stopped"),
}
_COLUMNS = "id, spec, status, created_at, started_at, stopped_at"


@dataclass(frozen=True)
class Assignment:
    """A user's place in an experiment: its id, the variant, the randomised unit."""

    experiment_id: int
    variant: Variant
    unit: str


def _experiment(row: tuple[object, ...]) -> Experiment:
    return Experiment.model_validate(
        {
            "id": row[0],
            "spec": row[1],
            "status": row[2],
            "created_at": row[3],
            "started_at": row[4],
            "stopped_at": row[5],
        }
    )


def create(conn: psycopg.Connection, spec: ExperimentSpec) -> Experiment:
    """Store ``spec`` as a draft. Conflict when the name is taken. Does not commit."""
    row = conn.execute(
        f"""INSERT INTO experiment (name, surface, unit, salt, layer_lo, layer_hi, variant_names,
                                    variant_edges, spec)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (name) DO NOTHING
            RETURNING {_COLUMNS}""",
        (
            spec.name,
            spec.surface,
            spec.unit,
            spec.salt_or_name,
            spec.layer[0],
            spec.layer[1],
            [v.name for v in spec.variants],
            cumulative_edges(spec.variants),
            Jsonb(spec.model_dump(mode="json")),
        ),
    ).fetchone()
    if row is None:
        raise Conflict(f"an experiment named {spec.name!r} already exists")
    return _experiment(row)


def get(conn: psycopg.Connection, name: str) -> Experiment:
    """The experiment named ``name``; NotFound otherwise."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM experiment WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no experiment named {name!r}")
    return _experiment(row)


def listing(
    conn: psycopg.Connection,
    surface: Surface | None = None,
    statuses: Iterable[Status] | None = None,
) -> list[Experiment]:
    """Experiments, newest first, optionally of one surface and some statuses."""
    rows = conn.execute(
        f"""SELECT {_COLUMNS} FROM experiment
            WHERE (%(surface)s::text IS NULL OR surface = %(surface)s)
              AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s))
            ORDER BY created_at DESC, id DESC""",
        {"surface": surface, "statuses": None if statuses is None else list(statuses)},
    ).fetchall()
    return [_experiment(r) for r in rows]


def transition(conn: psycopg.Connection, name: str, action: Action, at: datetime) -> Experiment:
    """Apply ``action`` to the experiment ``name`` as at ``at``. NotFound for an unknown name;
    Conflict for an action its status does not allow (saying which it does) or a start that
    overlaps another experiment. Does not commit."""
    # One change of a surface's experiments at a time: the overlap check below must see the
    # others as they will be when this transaction commits.
    conn.execute("LOCK TABLE experiment IN SHARE ROW EXCLUSIVE MODE")
    current = get(conn, name)
    allowed, target = TRANSITIONS[action]
    if current.status not in allowed:
        raise Conflict(
            f"experiment {name!r} is {current.status}: {action} applies to "
            f"{' or '.join(sorted(allowed))} experiments"
        )
    if action == "start":
        _refuse_overlap(conn, current)
    row = conn.execute(
        f"""UPDATE experiment
               SET status = %(target)s,
                   started_at = CASE WHEN %(target)s = 'running'
                                     THEN coalesce(started_at, %(at)s) ELSE started_at END,
                   stopped_at = CASE WHEN %(target)s = 'stopped' THEN %(at)s END
             WHERE id = %(id)s
         RETURNING {_COLUMNS}""",
        {"target": target, "at": at, "id": current.id},
    ).fetchone()
    assert row is not None  # locked above
    return _experiment(row)


def _refuse_overlap(conn: psycopg.Connection, experiment: Experiment) -> None:
    spec = experiment.spec
    row = conn.execute(
        """SELECT name, unit, layer_lo, layer_hi FROM experiment
           WHERE surface = %s AND status IN ('running', 'paused') AND id <> %s
             AND (unit <> %s OR (layer_lo < %s AND %s < layer_hi))
           ORDER BY started_at LIMIT 1""",
        (spec.surface, experiment.id, spec.unit, spec.layer[1], spec.layer[0]),
    ).fetchone()
    if row is None:
        return
    name, unit, lo, hi = row
    if unit != spec.unit:
        # Slices of different units do not exclude each other: a user's commune may fall in one
        # slice and the user in another. Nor may a paused experiment's units drift to another.
        raise Conflict(
            f"experiment {name!r} randomises the {spec.surface} surface by {unit}: an "
            f"experiment by {spec.unit} cannot run beside it; stop it first"
        )
    raise Conflict(
        f"experiment {spec.name!r} takes {spec.surface} layer [{spec.layer[0]}, "
        f"{spec.layer[1]}), which overlaps {name!r} [{lo}, {hi}); stop that one, or create "
        "this one again with a free slice"
    )


def assignments(
    conn: psycopg.Connection, surface: Surface, users: Sequence[int]
) -> dict[int, Assignment]:
    """user id → their :class:`Assignment` on ``surface`` (running experiments only); users in
    none are absent. One statement; chunk the users by a few thousand."""
    rows = conn.execute(ASSIGNED, {"surface": surface, "users": list(users)}).fetchall()
    if not rows:
        return {}
    experiments = {e.id: e for e in listing(conn, surface, ("running",))}
    out: dict[int, Assignment] = {}
    for user_id, experiment_id, variant_name, unit in rows:
        experiment = experiments.get(experiment_id)
        if experiment is None:  # stopped between the two statements: defaults
            continue
        variant = next(v for v in experiment.spec.variants if v.name == variant_name)
        out[user_id] = Assignment(experiment_id, variant, unit)
    return out


def log_exposures(
    conn: psycopg.Connection,
    exposures: Sequence[tuple[int, Assignment, str]],
    at: datetime,
) -> int:
    """Log (user id, assignment, reference) exposures at ``at``: one row per experiment, user
    and reference (a mail key, ``ranking:<day>``), so a replay logs nothing twice. Returns the
    rows added. Does not commit."""
    if not exposures:
        return 0
    cur = conn.execute(
        """INSERT INTO experiment_exposure (experiment_id, user_id, variant, unit, ref,
                                            exposed_at)
           SELECT e.experiment_id, e.user_id, e.variant, e.unit, e.ref, %s
           FROM unnest(%s::int[], %s::bigint[], %s::text[], %s::text[], %s::text[])
                AS e(experiment_id, user_id, variant, unit, ref)
           ON CONFLICT DO NOTHING""",
        (
            at,
            [a.experiment_id for _, a, _ in exposures],
            [u for u, _, _ in exposures],
            [a.variant.name for _, a, _ in exposures],
            [a.unit for _, a, _ in exposures],
            [r for _, _, r in exposures],
        ),
    )
    return cur.rowcount
