"""The streamed users' import: the fast reading path agrees with ``UserRecord`` line by line,
a bad line anywhere writes nothing and is named by its number, and memory does not grow with
the file (the real command, in a child process, on a committed copy of France)."""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts.users import UserRecord
from fixtures.population import generate_users, to_jsonl
from geo_engine import db
from geo_engine.jsonl import validation_messages
from geo_engine.settings import DatabaseSettings, UserSettings
from geo_engine.users.batch import UserBatch
from geo_engine.users.places import UserImportError, import_jsonl, read_jsonl
from geo_engine.users.records import UserLines, _Columns
from tests.cli import CLI, REPO

pytestmark = pytest.mark.geodata

NOTIFICATIONS = {"email": False, "push": True, "frequency": "daily"}

# Lines of every shape: the fast path's usual ones, and each way a line can go wrong.
LINES: list[Any] = [
    {"id": 1, "home": {"lon": 2.35, "lat": 48.85}},
    {"id": 2, "home": {"lon": 2, "lat": 48}, "interests": ["culture", "sport"]},
    {"id": 3, "commune": "2A004", "notifications": NOTIFICATIONS, "timezone": "Europe/Paris"},
    {"id": 4, "postal_code": "64250", "timezone": None, "home": None, "commune": None},
    {"id": 5, "commune": "51454", "notifications": {"frequency": "immediate"}},
    {"id": 6, "commune": "51454", "notifications": {"quiet_hours": {"start": "23:00"}}},
    {"id": 2**63 - 1, "postal_code": "75015"},
    {"id": 8, "home": {"lon": "2.35", "lat": "48.85"}},  # numbers as text: pydantic's path
    {"id": "9", "commune": "51454"},
    '{"id": 10, "commune": "51454"}  ',
    # Refused:
    {"id": 0, "commune": "51454"},
    {"id": 2**63, "commune": "51454"},
    {"id": True, "commune": "51454"},
    {"id": 1.0, "commune": "51454"},
    {"id": 11, "home": {"lon": 2.35, "lat": 91}},
    {"id": 12, "home": {"lon": 181, "lat": 48}},
    {"id": 13, "home": {"lon": 2.35, "lat": 48.85, "alt": 3}},
    {"id": 14, "home": {"lon": 2.35}},
    {"id": 15, "home": {"lon": True, "lat": 48.85}},  # read as 1.0 by pydantic, not by us
    {"id": 16, "home": [2.35, 48.85]},
    {"id": 17, "home": {"lon": 2.35, "lat": 48.85}, "commune": "75056"},
    {"id": 18},
    {"id": 19, "commune": "7505"},
    {"id": 20, "commune": "75056\n"},
    {"id": 21, "commune": "٧٥٠٥٦"},
    {"id": 22, "postal_code": "2A004"},
    {"id": 23, "commune": 75056},
    {"id": 24, "commune": "51454", "interests": ["culture", "culture"]},
    {"id": 25, "commune": "51454", "interests": ["astrologie"]},
    {"id": 26, "commune": "51454", "interests": "culture"},
    {"id": 27, "commune": "51454", "interests": None},
    {"id": 28, "commune": "51454", "notifications": None},
    {"id": 29, "commune": "51454", "notifications": {"frequency": "hourly"}},
    {"id": 30, "commune": "51454", "notifications": {"muted_tools": ["petition", "petition"]}},
    {"id": 31, "commune": "51454", "timezone": "Europe/Reims"},
    {"id": 32, "commune": "51454", "timezone": "localtime"},
    {"id": 33, "commune": "51454", "email": "a@b.fr"},
    '{"id": 34, "commune": "51454"',
    '{"id": 35, "home": {"lon": NaN, "lat": 48.85}}',
    '{"id": 36, "home": {"lon": 1e400, "lat": 48.85}}',
    "[1, 2]",
    '"text"',
    b'{"id": 37, "commune": "\xff"}',
]


def _raw(line: Any) -> bytes:
    if isinstance(line, bytes):
        return line
    return line.encode() if isinstance(line, str) else orjson.dumps(line)


def _fast(raw: bytes) -> UserBatch | None:
    """The fast path's reading of one line, None when it leaves the line to pydantic."""
    columns = _Columns()
    reader = UserLines(Path("users.jsonl"))
    return columns.batch() if reader._fast(raw, 1, columns) else None


def _pydantic(raw: bytes) -> UserBatch | list[str]:
    """UserRecord's reading of the line: its columns, or its refusals."""
    try:
        record = UserRecord.model_validate_json(raw)
    except ValidationError as exc:
        return list(validation_messages(exc, "users.jsonl:1"))
    return UserBatch.from_records([record])


def _same(a: UserBatch, b: UserBatch) -> None:
    assert a.ids.tolist() == b.ids.tolist()
    np.testing.assert_array_equal(a.lon, b.lon)
    np.testing.assert_array_equal(a.lat, b.lat)
    assert a.commune.tolist() == b.commune.tolist()
    assert a.postal_code.tolist() == b.postal_code.tolist()
    assert a.interests == b.interests
    assert a.notifications == b.notifications
    assert a.timezone == b.timezone


@pytest.mark.parametrize("line", LINES, ids=range(len(LINES)))
def test_fast_path_takes_only_what_user_record_takes_with_the_same_values(line: Any) -> None:
    raw = _raw(line)
    fast, slow = _fast(raw), _pydantic(raw)
    if fast is not None:
        assert isinstance(slow, UserBatch), slow
        _same(fast, slow)


@settings(max_examples=300, deadline=None)
@given(
    lon=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**70), 2**70),
    lat=st.floats(min_value=-91, max_value=91) | st.integers(-100, 100),
)
def test_fast_path_reads_numbers_as_pydantic_does(lon: float, lat: float) -> None:
    lon_text = repr(lon) if isinstance(lon, float) and math.isfinite(lon) else str(lon)
    raw = f'{{"id": 1, "home": {{"lon": {lon_text}, "lat": {lat!r}}}}}'.encode()
    fast, slow = _fast(raw), _pydantic(raw)
    if fast is not None:
        assert isinstance(slow, UserBatch), slow
        _same(fast, slow)


def test_refusals_read_as_user_record_words_them(tmp_path: Path) -> None:
    """Every line of LINES through the reader: the refusals are pydantic's own, line by line,
    and the fast path takes every usual line."""
    path = tmp_path / "users.jsonl"
    path.write_bytes(b"\n".join(_raw(line) for line in LINES) + b"\n")
    expected = []
    for number, line in enumerate(LINES, start=1):
        slow = _pydantic(_raw(line))
        if isinstance(slow, list):
            expected += [m.replace("users.jsonl:1:", f"users.jsonl:{number}:") for m in slow]
    reader = UserLines(path, chunk_lines=7)
    batches = list(reader.chunks())
    with pytest.raises(UserImportError) as caught:
        reader.finish()
    assert caught.value.total == len(expected)
    assert caught.value.errors == expected[:20]
    # The ten first lines read well, and the one whose longitude is `true`.
    assert sum(len(b) for b in batches) == 11
    assert [_fast(_raw(line)) is not None for line in LINES[:7]] == [True] * 7


def test_repeated_ids_name_the_first_line(tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    ids = [5, 6, 5, 7, 6, 5]
    path.write_text("".join(f'{{"id": {i}, "commune": "51454"}}\n' for i in ids))
    with pytest.raises(UserImportError) as caught:
        read_jsonl(path)
    assert caught.value.errors == [
        "users.jsonl:3: id: 5 already on line 1",
        "users.jsonl:5: id: 6 already on line 2",
        "users.jsonl:6: id: 5 already on line 1",
    ]


def _write_users(conn: psycopg.Connection, path: Path, size: int, seed: int = 3) -> UserBatch:
    batch = generate_users(conn, size, seed)
    with path.open("wb") as out:
        out.writelines(to_jsonl(batch))
    return batch


def test_fixture_lines_all_take_the_fast_path(conn: psycopg.Connection, tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    _write_users(conn, path, 2_000)
    for raw in path.read_bytes().splitlines():
        assert _fast(raw) is not None, raw


def test_import_in_chunks_equals_the_whole_batch_import(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    """Chunk by chunk into the empty table: the same rows and events as one batch would write,
    and the keys and indexes of user_place back."""
    path = tmp_path / "users.jsonl"
    batch = _write_users(conn, path, 3_000)
    keys = conn.execute(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'user_place'::regclass"
    ).fetchone()
    summary = import_jsonl(conn, path, UserSettings(import_chunk_lines=700))
    assert summary.users == 3_000 and 0 < summary.pending < 300
    rows = conn.execute(
        """SELECT count(*), count(commune_code), count(home) FROM user_place
           JOIN app_user u ON u.id = user_id"""
    ).fetchone()
    assert rows == (3_000, 3_000 - summary.pending, int((~np.isnan(batch.lon)).sum()))
    events = conn.execute("SELECT count(*) FROM outbox WHERE type = 'user.registered'").fetchone()
    assert events == (3_000,)
    assert (
        conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'user_place'::regclass"
        ).fetchone()
        == keys
    )


def test_a_home_in_no_commune_in_a_later_chunk_writes_nothing(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "users.jsonl"
    _write_users(conn, path, 1_000)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[876] = orjson.dumps({"id": 10**6, "home": {"lon": -3.0, "lat": 45.0}}) + b"\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(UserImportError) as caught:
        import_jsonl(conn, path, UserSettings(import_chunk_lines=100))
    assert caught.value.errors == ["line 877: home: lon=-3.0 lat=45.0 is in no French commune"]


# -- the real command --------------------------------------------------------------------------


def _cli_import(settings: DatabaseSettings, path: Path, chunk: int) -> tuple[int, str, int]:
    """`geo-engine users import PATH`: exit code, stderr, and the process's peak RSS in MiB."""
    child = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
        [str(CLI), "users", "import", str(path)],
        cwd=REPO,
        env={
            **os.environ,
            "COLUMNS": "200",
            "NO_COLOR": "1",
            "GEO_ENGINE_DATABASE_URL": settings.database_url,
            "GEO_ENGINE_IMPORT_CHUNK_LINES": str(chunk),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert child.stderr is not None
    stderr = child.stderr.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    return os.waitstatus_to_exitcode(status), stderr, usage.ru_maxrss // 1024


def _counts(settings: DatabaseSettings) -> tuple[int, int, int]:
    with db.connect(settings) as conn:
        row = conn.execute(
            """SELECT (SELECT count(*) FROM app_user), (SELECT count(*) FROM user_place),
                      (SELECT count(*) FROM outbox)"""
        ).fetchone()
    assert row is not None
    return row


@pytest.mark.slow
def test_command_all_or_nothing_and_memory_bounded_by_a_chunk(
    clone_france: Callable[[], DatabaseSettings], tmp_path: Path
) -> None:
    """A bad line in the fourth chunk: exit 2 naming the line, nothing written (the chunks
    before it had been staged). Then 40,000 and 160,000 lines in chunks of 10,000: the peak
    memory of the command is the same within a margin, though the file is four times longer."""
    settings = clone_france()
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    with db.connect(settings) as conn:
        _write_users(conn, large, 160_000, seed=11)
    with large.open("rb") as handle:
        head = [next(handle) for _ in range(40_000)]
    small.write_bytes(b"".join(head))
    bad = tmp_path / "bad.jsonl"
    broken = list(head)
    broken[34_566] = b'{"id": 34567, "home": {"lon": 4.03, "lat": 91}}\n'
    bad.write_bytes(b"".join(broken))

    code, stderr, _ = _cli_import(settings, bad, 10_000)
    assert code == 2, stderr
    assert "bad.jsonl:34567: home: latitude 91.0 is out of range" in stderr
    assert "nothing imported" in stderr
    assert _counts(settings) == (0, 0, 0)

    code, stderr, small_peak = _cli_import(settings, small, 10_000)
    assert code == 0, stderr
    assert _counts(settings)[:2] == (40_000, 40_000)
    with db.connect(settings) as conn:
        conn.execute("TRUNCATE user_place, app_user, outbox CASCADE")
        conn.commit()
    code, stderr, large_peak = _cli_import(settings, large, 10_000)
    assert code == 0, stderr
    assert _counts(settings)[:2] == (160_000, 160_000)
    # 120,000 more users held at once would be well over 100 MiB (as pydantic models, more).
    assert large_peak - small_peak < 60, (small_peak, large_peak)
