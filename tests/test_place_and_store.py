"""``places.place_and_store``: placing overlapped with the COPY stores exactly what placing
then storing stores, its foreign keys left ``NOT VALID`` are enforced at once and validated
after, and a home in no commune in a later chunk writes nothing.

Chunks are made small (``pgcopy.CHUNK_ROWS``) so a batch of thousands spans many of them;
every test runs in a transaction that is rolled back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors

from contracts.users import UserRecord
from fixtures.population import generate_users
from geo_engine import db, pgcopy
from geo_engine.settings import DatabaseSettings, UserSettings
from geo_engine.users import places as users
from geo_engine.users.placement import CommuneIndex
from geo_engine.users.places import UserBatch

pytestmark = pytest.mark.geodata

FOREIGN_KEYS = [
    "fk_user_place_arrondissement_code_arrondissement",
    "fk_user_place_commune_code_commune",
    "fk_user_place_user_id_app_user",
]


@pytest.fixture(scope="module")
def index(france_db: DatabaseSettings) -> CommuneIndex:
    with db.connect(france_db, autocommit=True) as conn:
        return CommuneIndex.from_db(conn)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(pgcopy, "CHUNK_ROWS", 1_000)
    yield


def _stored(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        """SELECT user_id, commune_code, arrondissement_code, candidate_communes, postal_code,
                  ST_AsEWKB(home) FROM user_place ORDER BY user_id"""
    ).fetchall()


def _not_validated(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        """SELECT conname FROM pg_constraint WHERE conrelid = 'user_place'::regclass
           AND NOT convalidated ORDER BY conname"""
    ).fetchall()
    return [r[0] for r in rows]


def _with_profiles(conn: psycopg.Connection, batch: UserBatch) -> None:
    conn.execute("TRUNCATE user_place, app_user CASCADE")
    with conn.cursor() as cur, cur.copy("COPY app_user (id) FROM STDIN") as copy:
        for i in batch.ids.tolist():
            copy.write_row((i,))


@pytest.mark.slow
def test_overlapped_equals_place_then_store_and_keys_hold(
    conn: psycopg.Connection, index: CommuneIndex, small_chunks: None
) -> None:
    batch = generate_users(conn, 12_000, seed=11)
    assert len(batch) >= users.BULK_ROWS
    _with_profiles(conn, batch)
    settings = UserSettings()
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        expected = users.place(conn, batch, index)
        users.store_places(cur, batch, expected, settings)
        serial = _stored(conn)
    assert _not_validated(conn) == []

    placement = users.place_and_store(conn, batch, index, settings, foreign_keys_not_valid=True)
    assert _stored(conn) == serial
    assert len(serial) == 12_000
    assert placement.commune.tolist() == expected.commune.tolist()
    assert placement.arrondissement.tolist() == expected.arrondissement.tolist()
    assert placement.candidates == expected.candidates
    assert placement.pending > 0
    assert sum(1 for a in placement.arrondissement if a is not None) > 0  # Paris is in it

    # Not validated yet, but enforced for every new row.
    assert _not_validated(conn) == FOREIGN_KEYS
    for bad in (
        "INSERT INTO user_place (user_id, commune_code) VALUES (99999999, '51454')",
        "UPDATE user_place SET commune_code = '99999' WHERE user_id = 1",
        "UPDATE user_place SET arrondissement_code = '75121' WHERE user_id = 1",
    ):
        with pytest.raises(errors.ForeignKeyViolation), conn.transaction():
            conn.execute(bad)
    assert users.validate_places(conn) == FOREIGN_KEYS
    assert _not_validated(conn) == []
    with pytest.raises(errors.ForeignKeyViolation), conn.transaction():
        conn.execute("INSERT INTO user_place (user_id, commune_code) VALUES (99999999, '51454')")
    with pytest.raises(errors.UniqueViolation), conn.transaction():
        conn.execute("INSERT INTO user_place (user_id, commune_code) VALUES (1, '51454')")


@pytest.mark.slow
def test_a_home_in_no_commune_in_a_later_chunk_writes_nothing(
    conn: psycopg.Connection, index: CommuneIndex, small_chunks: None
) -> None:
    records = [
        UserRecord.model_validate({"id": i, "home": {"lon": 4.0317, "lat": 49.2583}})
        for i in range(1, users.BULK_ROWS + 1)
    ]
    # At sea, in the last chunk but one and the last.
    records[-1500] = UserRecord.model_validate(
        {"id": users.BULK_ROWS - 1499, "home": {"lon": -3.0, "lat": 45.0}}
    )
    records[-1] = UserRecord.model_validate(
        {"id": users.BULK_ROWS, "home": {"lon": -3.0, "lat": 45.0}}
    )
    batch = UserBatch.from_records(records)
    _with_profiles(conn, batch)
    with pytest.raises(users.UserImportError) as caught, conn.transaction():
        users.place_and_store(conn, batch, index, UserSettings())
    assert [e.split(":")[0] for e in caught.value.errors] == [
        f"line {users.BULK_ROWS - 1499}",
        f"line {users.BULK_ROWS}",
    ]
    assert _stored(conn) == []
    # The keys and indexes dropped for the load are back, as the rollback left them.
    keys = conn.execute(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'user_place'::regclass"
    ).fetchone()
    assert keys is not None and keys[0] >= 5
    assert _not_validated(conn) == []
