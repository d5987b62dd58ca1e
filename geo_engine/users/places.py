"""Placing users in their commune: import from JSON Lines, bulk placement, moves, choices.

A user's home is given as a point, a commune code or a postal code. A point is placed by the
rule of ``locate.sql``; an arrondissement code (Paris, Lyon, Marseille) places in its commune
with the arrondissement; a former commune code follows its commune nouvelle, unless it is also
another commune's postal code (refused, naming both readings: ``commune_codes.sql``); a postal
code shared by several communes is not guessed: the user stays pending with the candidates listed.
Only a coarsened home point is ever stored (``GEO_ENGINE_HOME_PRECISION_M``).

Every write inserts its outbox events in the same statement, set-wise: ``user.registered`` for
a new profile, ``user.preferences_changed`` for a changed one, ``user.moved`` for a changed
place. A re-import of the same file changes nothing and announces nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from contracts.errors import InvalidInput, NotFound
from contracts.users import UserRecord
from geo_engine import pgcopy
from geo_engine.db import load_sql
from geo_engine.outbox import insert_events
from geo_engine.settings import UserSettings
from geo_engine.territories.locate import locate
from geo_engine.users.batch import UserBatch as UserBatch
from geo_engine.users.batch import notifications_json as notifications_json
from geo_engine.users.placement import NO_COMMUNE, CommuneIndex
from geo_engine.users.records import UserImportError as UserImportError
from geo_engine.users.records import UserLines

METRES_PER_DEGREE = 111_320.0
BULK_ROWS = 10_000  # from this many rows into an empty table, keys are built once at the end


class PlacementError(InvalidInput):
    """A single placement request that cannot be honoured (unknown commune, not a candidate…)."""


class UnknownUser(NotFound, PlacementError):
    """A placement request for a user who does not exist (a not-found, first)."""


@dataclass
class Placement:
    commune: npt.NDArray[np.object_]
    arrondissement: npt.NDArray[np.object_]
    candidates: list[list[str] | None]

    @property
    def pending(self) -> int:
        return sum(1 for c in self.candidates if c is not None)


def read_jsonl(path: Path, progress: Callable[[int], None] = lambda _n: None) -> UserBatch:
    """Parse and validate every line into one batch; raise UserImportError listing the first
    bad lines. The whole file is held: :func:`import_jsonl` streams large ones."""
    lines = UserLines(path)
    chunks = list(lines.chunks(progress))
    lines.finish()
    return UserBatch.concat(chunks)


def coarsen(
    lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64], precision_m: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Snap points to the centre of a grid cell about ``precision_m`` wide (0: unchanged).

    Latitude steps are ``precision_m`` long; longitude steps are widened by 1/cos(latitude band)
    so cells stay about square. Snapping to the centre avoids biasing every point south-west.
    """
    if precision_m <= 0:
        return lon, lat
    step_lat = precision_m / METRES_PER_DEGREE
    clat = (np.floor(lat / step_lat) + 0.5) * step_lat
    step_lon = step_lat / np.maximum(np.cos(np.radians(clat)), 0.01)
    clon = (np.floor(lon / step_lon) + 0.5) * step_lon
    return clon, clat


COMMUNE_CODES = load_sql("geo_engine.users", "commune_codes.sql")


@dataclass(frozen=True)
class CodeReading:
    """Where a given INSEE code places a user, or why it is refused (``problem``)."""

    commune: str
    arrondissement: str | None = None
    problem: str | None = None


def _recoding(former: str, successor: str) -> str:
    """When a former code changed département, the well-known reorganisation it dates from."""
    old, new = former[:2], successor[:2]
    if old in {"75", "78"} and new in {"91", "92", "93", "94", "95"}:
        return " (until 1968, when the Seine and Seine-et-Oise were divided)"
    if old == "20" and new in {"2A", "2B"}:
        return " (until 1976, when Corsica was divided in two)"
    return ""


def ambiguous_former_code(
    code: str, commune: str, name: str, postal: list[list[str | None]]
) -> str:
    """Why a former code that is also another commune's postal code is refused: both readings."""
    places = [
        f"{a_name} ({a_code}, {c_name} {c_code})" if a_code else f"{c_name} ({c_code})"
        for c_code, c_name, a_code, a_name in postal
    ]
    shown = ", ".join(places[:3]) + (f" and {len(places) - 3} more" if len(places) > 3 else "")
    of = shown if len(places) == 1 else f"{len(places)} communes: {shown}"
    return (
        f"{code} is ambiguous: a former INSEE code{_recoding(code, commune)} of {name} ({commune}),"
        f" and the postal code of {of}; give the current INSEE code as commune,"
        " or the postal code as postal_code"
    )


def read_commune_codes(conn: psycopg.Connection, codes: list[str]) -> dict[str, CodeReading]:
    """Given INSEE codes -> where each places a user (codes naming nothing are absent).

    A commune code is its commune; an arrondissement municipal code (Paris 75101-75120, Lyon
    69381-69389, Marseille 13201-13216) is its commune with that arrondissement; a former code
    follows the commune nouvelle that absorbed it, unless it is also a live postal code of
    another commune: then it is refused, naming both readings (README, "Codes").
    """
    readings = {}
    for code, reading, commune, name, arrondissement, postal in conn.execute(
        COMMUNE_CODES, {"codes": codes}
    ).fetchall():
        problem = None
        if reading == "former" and postal:
            problem = ambiguous_former_code(code, commune, name, postal)
        readings[code] = CodeReading(commune, arrondissement, problem)
    return readings


def _postal_candidates(conn: psycopg.Connection, postal_codes: list[str]) -> dict[str, list[str]]:
    rows = conn.execute(
        """SELECT postal_code, array_agg(commune_code ORDER BY commune_code) FROM postal_code
           WHERE postal_code = ANY (%s) GROUP BY postal_code""",
        (postal_codes,),
    ).fetchall()
    return dict(rows)


def _postal_arrondissements(
    conn: psycopg.Connection, postal_codes: list[str]
) -> dict[str, tuple[str, str]]:
    """Postal code -> (commune, arrondissement) for the postal codes of one arrondissement."""
    rows = conn.execute(
        """SELECT p, min(commune_code), min(code)
           FROM arrondissement, unnest(postal_codes) AS p
           WHERE p = ANY (%s) GROUP BY p HAVING count(*) = 1""",
        (postal_codes,),
    ).fetchall()
    return {p: (commune, code) for p, commune, code in rows}


def place(
    conn: psycopg.Connection, batch: UserBatch, index: CommuneIndex | None = None
) -> Placement:
    """Resolve every user's commune; raise UserImportError for homes no commune holds.

    With ``index`` points are placed in memory (millions of users); without it, each point is
    located in PostGIS, which suits small batches. Both follow the same border rule.
    """
    placement, errors = place_or_refuse(conn, batch, index)
    if errors:
        raise UserImportError([message for _, message in errors])
    return placement


def _place_points(
    index: CommuneIndex, batch: UserBatch, rows: npt.NDArray[np.intp], placement: Placement
) -> list[tuple[int, str]]:
    """Place the home points of ``batch`` at ``rows`` in memory, into ``placement``; return the
    refusals (homes in no commune) as (line, message)."""
    found = index.place(batch.lon[rows], batch.lat[rows])
    ok = found != NO_COMMUNE
    placement.commune[rows[ok]] = index.codes[found[ok]]
    placement.arrondissement[rows] = index.arrondissements(found, batch.lon[rows], batch.lat[rows])
    return _homes_in_no_commune(batch, rows[~ok])


def _homes_in_no_commune(batch: UserBatch, missing: npt.NDArray[np.intp]) -> list[tuple[int, str]]:
    return [
        (
            int(batch.line[i]),
            f"line {batch.line[i]}: home: lon={batch.lon[i]} lat={batch.lat[i]}"
            " is in no French commune",
        )
        for i in missing
    ]


def place_or_refuse(
    conn: psycopg.Connection,
    batch: UserBatch,
    index: CommuneIndex | None = None,
    points: bool = True,
) -> tuple[Placement, list[tuple[int, str]]]:
    """:func:`place`, with the refusals returned as (line, message) rather than raised.
    ``points=False`` leaves the users given by a home point unplaced (commune None)."""
    n = len(batch)
    commune = np.full(n, None, dtype=object)
    arrondissement = np.full(n, None, dtype=object)
    candidates: list[list[str] | None] = [None] * n
    placement = Placement(commune, arrondissement, candidates)
    errors: list[tuple[int, str]] = []

    has_point = np.flatnonzero(~np.isnan(batch.lon))
    if points and index is not None:
        errors += _place_points(index, batch, has_point, placement)
    elif points:
        lost = []
        for i in has_point:
            where = locate(conn, float(batch.lat[i]), float(batch.lon[i]))
            if where is None:
                lost.append(i)
                continue
            commune[i] = where.commune.code
            arrondissement[i] = where.arrondissement.code if where.arrondissement else None
        errors += _homes_in_no_commune(batch, np.array(lost, dtype=np.intp))

    given = np.flatnonzero(batch.commune != None)  # noqa: E711 (numpy elementwise)
    codes, inverse = np.unique(batch.commune[given].astype(str), return_inverse=True)
    readings = read_commune_codes(conn, codes.tolist())
    read = [readings.get(c) for c in codes.tolist()]
    accepted = [r if r is not None and r.problem is None else None for r in read]
    commune[given] = np.array([r and r.commune for r in accepted], dtype=object)[inverse]
    arrondissement[given] = np.array([r and r.arrondissement for r in accepted], dtype=object)[
        inverse
    ]
    why = np.array(
        [
            f"unknown INSEE code {c}" if r is None else r.problem
            for c, r in zip(codes.tolist(), read, strict=True)
        ],
        dtype=object,
    )[inverse]
    refused = np.flatnonzero(why != None)  # noqa: E711 (numpy elementwise)
    errors += [
        (int(batch.line[given[i]]), f"line {batch.line[given[i]]}: commune: {why[i]}")
        for i in refused
    ]

    by_postal = np.flatnonzero(batch.postal_code != None)  # noqa: E711
    postcodes, inverse = np.unique(batch.postal_code[by_postal].astype(str), return_inverse=True)
    known = _postal_candidates(conn, postcodes.tolist())
    communes_of = [known.get(p, []) for p in postcodes.tolist()]
    unique = np.array([c[0] if len(c) == 1 else None for c in communes_of], dtype=object)
    commune[by_postal] = unique[inverse]
    # A postal code of Paris, Lyon or Marseille also names the arrondissement (75015: Paris 15e).
    within = _postal_arrondissements(conn, postcodes.tolist())
    arrondissement[by_postal] = np.array(
        [
            within[p][1] if p in within and within[p][0] == u else None
            for p, u in zip(postcodes.tolist(), unique.tolist(), strict=True)
        ],
        dtype=object,
    )[inverse]
    for row, which in zip(by_postal.tolist(), inverse.tolist(), strict=True):
        if not communes_of[which]:
            errors.append(
                (
                    int(batch.line[row]),
                    f"line {batch.line[row]}: postal_code: unknown postal code"
                    f" {batch.postal_code[row]}",
                )
            )
        elif len(communes_of[which]) > 1:
            candidates[row] = communes_of[which]
    errors.sort(key=lambda e: e[0])
    return placement, errors


# A new profile is a registration; a changed one, changed preferences (one event per row).
PROFILE_EVENTS = insert_events(
    """(SELECT CASE WHEN inserted THEN 'user.registered' ELSE 'user.preferences_changed' END
               AS type, jsonb_build_object('user_id', id) AS payload
        FROM written)"""
)
# A place that changed for a user who had one is a move; a first place comes with the
# registration, so it announces nothing more.
MOVE_EVENTS = insert_events(
    """(SELECT 'user.moved' AS type, jsonb_build_object('user_id', user_id) AS payload
        FROM written WHERE NOT inserted)"""
)


def _create_profile_stage(cur: psycopg.Cursor) -> None:
    cur.execute("DROP TABLE IF EXISTS stage_user")
    cur.execute("""CREATE TEMP TABLE stage_user (id bigint, interests text[], notifications jsonb,
                   timezone text) ON COMMIT DROP""")


def _copy_profiles(cur: psycopg.Cursor, batch: UserBatch) -> None:
    """The batch's profiles into ``stage_user``, as one block of COPY text."""
    # Few distinct settings and interest sets: each is escaped for COPY once.
    settings: dict[bytes, str] = {}
    for n in set(batch.notifications):
        settings[n] = n.decode().replace("\\", "\\\\")
    null = "\\N"
    text = "".join(
        [
            f"{i}\t{{{','.join(t)}}}\t{settings[n]}\t{null if z is None else z}\n"
            for i, t, n, z in zip(
                batch.ids.tolist(),
                batch.interests,
                batch.notifications,
                batch.timezone,
                strict=True,
            )
        ]
    )
    with cur.copy("COPY stage_user (id, interests, notifications, timezone) FROM STDIN") as copy:
        copy.write(text)


# The staged profiles' statements, in this order (``_merge_profiles``).
NEW_PROFILE_EVENTS = insert_events(
    """(SELECT 'user.registered' AS type, jsonb_build_object('user_id', s.id) AS payload
        FROM stage_user s WHERE NOT EXISTS (SELECT 1 FROM app_user u WHERE u.id = s.id))"""
)
CHANGED_PROFILES = """WITH changed AS (
        UPDATE app_user u SET interests = s.interests, notifications = s.notifications,
            timezone = s.timezone, updated_at = now()
        FROM stage_user s
        WHERE u.id = s.id AND (u.interests, u.notifications, u.timezone)
            IS DISTINCT FROM (s.interests, s.notifications, s.timezone)
        RETURNING u.id) """ + insert_events(
    """(SELECT 'user.preferences_changed' AS type,
                   jsonb_build_object('user_id', id) AS payload FROM changed)"""
)
# Not an anti-join: the heap it would scan grows with the rows this very statement inserts.
NEW_PROFILES = """INSERT INTO app_user (id, interests, notifications, timezone)
    SELECT id, interests, notifications, timezone FROM stage_user
    ON CONFLICT (id) DO NOTHING"""


def _merge_profiles(cur: psycopg.Cursor) -> None:
    """Write ``stage_user`` (ids distinct) into ``app_user``, with one event per new or changed
    profile: the new ones' events, the changed ones, then the new ones, each one plain
    set-based statement (an upsert returning millions of rows through a CTE costs four times
    as much). The lock keeps any other writer of profiles out in between."""
    cur.execute("LOCK TABLE app_user IN SHARE ROW EXCLUSIVE MODE")
    cur.execute("ANALYZE stage_user (id)")
    # Joins of millions of staged rows against app_user by hash, whatever the statistics say
    # (a nested loop over a table believed empty would scan it once per staged row).
    cur.execute("SET LOCAL enable_nestloop = off")
    cur.execute(NEW_PROFILE_EVENTS)
    cur.execute(CHANGED_PROFILES)
    cur.execute("RESET enable_nestloop")
    cur.execute(NEW_PROFILES)


def _store_profiles(cur: psycopg.Cursor, batch: UserBatch) -> None:
    """A batch's profiles in one upsert (no lock beyond the rows: registrations go this way)."""
    _create_profile_stage(cur)
    _copy_profiles(cur, batch)
    cur.execute(
        """WITH written AS (
            INSERT INTO app_user AS u (id, interests, notifications, timezone)
            SELECT id, interests, notifications, timezone FROM stage_user
            ON CONFLICT (id) DO UPDATE SET interests = EXCLUDED.interests,
                notifications = EXCLUDED.notifications, timezone = EXCLUDED.timezone,
                updated_at = now()
            WHERE (u.interests, u.notifications, u.timezone)
                IS DISTINCT FROM (EXCLUDED.interests, EXCLUDED.notifications, EXCLUDED.timezone)
            RETURNING id, (xmax = 0) AS inserted) """
        + PROFILE_EVENTS
    )


PLACE_COLUMNS = ["user_id", "commune_code", "arrondissement_code", "postal_code", "home"]


def _copy_pending(cur: psycopg.Cursor, table: str, batch: UserBatch, placement: Placement) -> None:
    """Pending users, with their candidate communes, in one COPY."""
    statement = sql.SQL("COPY {} (user_id, candidate_communes, postal_code) FROM STDIN").format(
        sql.Identifier(table)
    )
    with cur.copy(statement) as copy:
        for i, candidates in enumerate(placement.candidates):
            if candidates is not None:
                copy.write_row((int(batch.ids[i]), candidates, batch.postal_code[i]))


class PlaceWriter:
    """Users' places written batch by batch in the caller's transaction.

    Into an empty ``user_place`` (and ``bulk``) each batch is one binary COPY into the table
    itself, its indexes and keys built once by :meth:`finish` (a table truncated in the same
    transaction is not WAL-logged); otherwise into a staging table upserted by :meth:`finish`,
    announcing the moves. ``staged``: every batch into the staging table, and an empty table
    loaded from it in one statement by :meth:`finish`: dropping the foreign keys locks
    ``commune`` and ``arrondissement`` against every reader until commit, so a streamed
    import takes that lock only at its end.
    """

    def __init__(
        self,
        cur: psycopg.Cursor,
        settings: UserSettings,
        bulk: bool,
        staged: bool = False,
        foreign_keys_not_valid: bool = False,
    ) -> None:
        """``foreign_keys_not_valid``: an empty table's foreign keys come back ``NOT VALID``
        (enforced for later writes; the caller validates them after commit with
        :func:`validate_places`): the places written here are valid by construction (users
        staged in the same transaction, communes and arrondissements read from the tables)."""
        self.cur = cur
        self.settings = settings
        self.not_valid = foreign_keys_not_valid
        self._deferred = ExitStack()
        # Locked first, so no place committed meanwhile can be lost to the TRUNCATE below.
        cur.execute("LOCK TABLE user_place IN SHARE ROW EXCLUSIVE MODE")
        cur.execute("SELECT NOT EXISTS (SELECT 1 FROM user_place)")
        row = cur.fetchone()
        self.empty = bool(row and row[0] and bulk)
        self.direct = self.empty and not staged
        if self.direct:
            cur.execute("TRUNCATE user_place")
            self._deferred.enter_context(
                pgcopy.constraints_deferred_to_the_end(
                    cur, "user_place", foreign_keys_not_valid=foreign_keys_not_valid
                )
            )
            self.table = "user_place"
        else:
            cur.execute("DROP TABLE IF EXISTS stage_place")
            cur.execute("CREATE TEMP TABLE stage_place (LIKE user_place) ON COMMIT DROP")
            self.table = "stage_place"

    def write(
        self, batch: UserBatch, placement: Placement, index: CommuneIndex | None = None
    ) -> list[tuple[int, str]]:
        """COPY the batch's places; return the refusals (line, message), empty when all is
        written.

        With ``index``, the users given by a home point are placed here (into ``placement``),
        a COPY chunk at a time while the previous chunk is sent and stored, so placing hides
        behind the server's COPY. A home in no commune stops the writing (the rest is only
        placed, for its refusals): the caller must then roll back.
        """
        refusals: list[tuple[int, str]] = []
        placed = np.array([c is None for c in placement.candidates], dtype=bool)

        def chunks() -> Iterator[list[pgcopy.Column]]:
            for start in range(0, len(batch), pgcopy.CHUNK_ROWS):
                rows = np.arange(start, min(start + pgcopy.CHUNK_ROWS, len(batch)))
                if index is not None:
                    points = rows[~np.isnan(batch.lon[rows])]
                    refusals.extend(_place_points(index, batch, points, placement))
                if refusals:
                    continue
                rows = rows[placed[rows]]
                lon, lat = coarsen(batch.lon[rows], batch.lat[rows], self.settings.home_precision_m)
                yield [
                    pgcopy.bigint(batch.ids[rows]),
                    pgcopy.fixed_text(placement.commune[rows], 5),
                    pgcopy.fixed_text(placement.arrondissement[rows], 5),
                    pgcopy.fixed_text(batch.postal_code[rows], 5),
                    pgcopy.points_ewkb(lon, lat),
                ]

        pgcopy.copy_binary_chunks(self.cur, self.table, PLACE_COLUMNS, chunks())
        if not refusals:
            _copy_pending(self.cur, self.table, batch, placement)
        return refusals

    def finish(self) -> None:
        """Build the keys and indexes (direct), or upsert the staged places."""
        if self.direct:
            self._deferred.close()
            return
        if self.empty:
            self.cur.execute("TRUNCATE user_place")
            with pgcopy.constraints_deferred_to_the_end(
                self.cur, "user_place", foreign_keys_not_valid=self.not_valid
            ):
                self.cur.execute("INSERT INTO user_place SELECT * FROM stage_place")
            return
        self.cur.execute(
            """WITH written AS (
            INSERT INTO user_place AS p (user_id, commune_code, arrondissement_code,
                                         candidate_communes, postal_code, home)
            SELECT user_id, commune_code, arrondissement_code, candidate_communes, postal_code,
                   home
            FROM stage_place
            ON CONFLICT (user_id) DO UPDATE SET commune_code = EXCLUDED.commune_code,
                arrondissement_code = EXCLUDED.arrondissement_code,
                candidate_communes = EXCLUDED.candidate_communes,
                postal_code = EXCLUDED.postal_code, home = EXCLUDED.home
            -- A user who settled among the communes of their postal code keeps that choice when
            -- the same postal code comes again (a re-import must not make them pending anew);
            -- a place that is the same is not rewritten (and announces no move).
            WHERE NOT (p.candidate_communes IS NULL
                       AND p.postal_code IS NOT DISTINCT FROM EXCLUDED.postal_code
                       AND coalesce(p.commune_code = ANY (EXCLUDED.candidate_communes), false))
              AND (p.commune_code, p.arrondissement_code, p.candidate_communes, p.postal_code,
                   ST_AsEWKB(p.home))
                  IS DISTINCT FROM (EXCLUDED.commune_code, EXCLUDED.arrondissement_code,
                                    EXCLUDED.candidate_communes, EXCLUDED.postal_code,
                                    ST_AsEWKB(EXCLUDED.home))
            RETURNING user_id, (xmax = 0) AS inserted) """
            + MOVE_EVENTS
        )


def store_places(
    cur: psycopg.Cursor, batch: UserBatch, placement: Placement, settings: UserSettings
) -> None:
    """Write the users' places. Into an empty table it is one binary COPY with indexes and keys
    built once at the end; otherwise through a staging table and one upsert."""
    writer = PlaceWriter(cur, settings, bulk=len(batch) >= BULK_ROWS)
    writer.write(batch, placement)
    writer.finish()


def place_and_store(
    conn: psycopg.Connection,
    batch: UserBatch,
    index: CommuneIndex,
    settings: UserSettings,
    foreign_keys_not_valid: bool = False,
) -> Placement:
    """:func:`place` then :func:`store_places`, in the caller's transaction, with the home points
    placed chunk by chunk while the previous chunk is COPYed (the codes are read first: the
    connection is busy during the COPY). Raises UserImportError with the refusals by line, as
    :func:`place`; the caller then rolls back. ``foreign_keys_not_valid``: see
    :class:`PlaceWriter`; call :func:`validate_places` after commit."""
    placement, refused = place_or_refuse(conn, batch, index, points=False)
    if refused:
        place(conn, batch, index)  # every refusal, points included
    with conn.cursor() as cur:
        writer = PlaceWriter(
            cur,
            settings,
            bulk=len(batch) >= BULK_ROWS,
            foreign_keys_not_valid=foreign_keys_not_valid,
        )
        refused = writer.write(batch, placement, index)
        if refused:
            raise UserImportError([message for _, message in refused])
        writer.finish()
    return placement


def validate_places(conn: psycopg.Connection) -> list[str]:
    """Check every row of ``user_place`` against its foreign keys left ``NOT VALID`` by a bulk
    load (:class:`PlaceWriter`), in the caller's transaction, without blocking readers or
    writers; return their names. Raises ``ForeignKeyViolation`` if a row breaks one."""
    with conn.cursor() as cur:
        return pgcopy.validate_constraints(cur, "user_place")


@dataclass(frozen=True)
class ImportSummary:
    users: int
    pending: int  # of them, waiting for a choice between communes sharing their postal code


def import_jsonl(
    conn: psycopg.Connection,
    path: Path,
    settings: UserSettings,
    index: CommuneIndex | None = None,
    progress: Callable[[int], None] = lambda _n: None,
) -> ImportSummary:
    """Read, place and store a users' file chunk by chunk, in the caller's transaction (the
    caller commits), in memory bounded by a chunk whatever the file's size.

    All or nothing: any refused line (``file:line: field: reason``, a home in no commune, an
    unknown code, an id given twice) raises :class:`UserImportError` with the first refusals by
    line number once the whole file is read; the caller then rolls back what was staged.
    The territories (codes, postal codes) are read on ``conn``; ``commune`` and
    ``arrondissement`` are locked against readers only at the end, for the load of an empty
    ``user_place`` (:class:`PlaceWriter`).
    """
    lines = UserLines(path, settings.import_chunk_lines)
    pending = 0
    with conn.cursor() as cur:
        _create_profile_stage(cur)
        places = PlaceWriter(cur, settings, bulk=True, staged=True)
        for chunk in lines.chunks(progress):
            if lines.refusals:  # nothing more is written; the rest is only read for refusals
                continue
            placement, refused = place_or_refuse(conn, chunk, index)
            for line, message in refused:
                lines.refusals.add(line, message)
            if refused:
                continue
            _copy_profiles(cur, chunk)
            places.write(chunk, placement)
            pending += placement.pending
        lines.finish()
        _merge_profiles(cur)
        places.finish()
    return ImportSummary(lines.records, pending)


def import_users(
    conn: psycopg.Connection,
    batch: UserBatch,
    settings: UserSettings,
    index: CommuneIndex | None = None,
) -> Placement:
    """Place and store a batch of users in the caller's transaction (the caller commits)."""
    if index is None:
        placement = place(conn, batch, index)
        with conn.cursor() as cur:
            _store_profiles(cur, batch)
            store_places(cur, batch, placement, settings)
        return placement
    with conn.cursor() as cur:
        _store_profiles(cur, batch)
    return place_and_store(conn, batch, index, settings)


def choose_commune(conn: psycopg.Connection, user_id: int, code: str) -> CodeReading:
    """Settle a pending user on one of their candidate communes (given by any code that reads
    as one of them: its INSEE code, a former code)."""
    row = conn.execute(
        "SELECT candidate_communes FROM user_place WHERE user_id = %s FOR UPDATE", (user_id,)
    ).fetchone()
    if row is None:
        raise PlacementError(f"user {user_id} has no place to settle")
    if row[0] is None:
        raise PlacementError(f"user {user_id} is already placed; use move instead")
    # The code reads as in an import: a commune, an arrondissement, a former code.
    reading = read_commune_codes(conn, [code]).get(code)
    if reading is not None and reading.problem is not None:
        raise PlacementError(reading.problem)
    if reading is None or reading.commune not in row[0]:
        raise PlacementError(
            f"{code} is not among user {user_id}'s candidate communes: {', '.join(row[0])}"
        )
    conn.execute(
        """WITH written AS (
               UPDATE user_place SET commune_code = %s, candidate_communes = NULL,
                      arrondissement_code = %s WHERE user_id = %s
               RETURNING user_id, false AS inserted) """
        + MOVE_EVENTS,
        (reading.commune, reading.arrondissement, user_id),
    )
    return reading


def move_user(conn: psycopg.Connection, record: UserRecord, settings: UserSettings) -> Placement:
    """Re-place one user who moved (same rules as the import); the profile must exist."""
    exists = conn.execute("SELECT 1 FROM app_user WHERE id = %s", (record.id,)).fetchone()
    if exists is None:
        raise UnknownUser(f"no user {record.id}")
    batch = UserBatch.from_records([record])
    try:
        placement = place(conn, batch)
    except UserImportError as exc:
        raise PlacementError(str(exc).removeprefix("line 1: ")) from exc
    with conn.cursor() as cur:
        store_places(cur, batch, placement, settings)
    return placement
