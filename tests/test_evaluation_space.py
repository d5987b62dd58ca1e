"""Pabulib files into the evaluation space, on a tiny edition written here, without a database.

The edition: a city file (three city-wide projects, voters' districts recorded in upper case or
with other accents), two district files whose project ids repeat the city file's, one of them
a project pool (``"Południe | small"``), and one local-area file.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from contracts.errors import InvalidInput
from recommender.evaluation import pabulib
from recommender.evaluation.districts import district_or_none, normalise
from recommender.evaluation.space import build

CITY = """META
key;value
unit;Testville
vote_type;approval
max_length;2
PROJECTS
project_id;cost;votes;name;category;latitude;longitude
1;100;2;Park;Nature, Culture;50.0;19.0
2;100;2;Bikes;transport;50.1;19.1
3;100;1;"Library; the big one";culture;;
VOTES
voter_id;vote;neighborhood
v1;1,2;PÓŁNOC
v2;2;południe
v3;3;-
"""

NORTH = """META
key;value
unit;Testville
district;Północ
subunit;Północ
vote_type;cumulative
max_length;
max_sum_points;1
PROJECTS
project_id;cost;votes;name
1;10;1;Bench
2;10;1;Tree
VOTES
voter_id;vote;points
v1;1;1
v4;2;1
v5;1,2;1,0
"""

SOUTH = """META
key;value
unit;Testville
district;Południe
subunit;Południe | small
vote_type;approval
max_length;3
PROJECTS
project_id;cost;votes;name
1;10;1;Fountain
VOTES
voter_id;vote
v2;1
"""

AREA = """META
key;value
unit;Testville
district;Południe
subunit;Stare Miasto
vote_type;approval
max_length;3
PROJECTS
project_id;cost;votes;name
7;10;1;Lamp
VOTES
voter_id;vote
v2;7
"""


@pytest.fixture
def edition(tmp_path: Path) -> Path:
    folder = tmp_path / "testville_2024"
    folder.mkdir()
    for name, text in {
        "T_2024.pb": CITY,
        "T_2024_Polnoc.pb": NORTH,
        "T_2024_Poludnie.pb": SOUTH,
        "T_2024_Stare_Miasto.pb": AREA,
    }.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_normalise_ignores_case_accents_separators_and_spaces() -> None:
    assert normalise("ŚRÓDMIEŚCIE") == normalise("Śródmieście") == "srodmiescie"
    assert normalise("Brynów Część Wschodnia-Osiedle Zgrzebnioka") == normalise(
        "Brynów-Część Wschodnia -  osiedle_Zgrzebnioka"
    )
    assert normalise("Łódź") == "lodz"
    assert normalise("Süd") == "sud"
    assert normalise("Oostelijke Eilanden") != normalise("Haarlemmerhouttuinen")
    assert district_or_none("-") is None
    assert district_or_none("  ") is None
    assert district_or_none(None) is None


def test_parse_reads_quoted_fields() -> None:
    pb = pabulib.parse(CITY, "T_2024.pb")
    assert pb.meta["unit"] == "Testville"
    assert [p["name"] for p in pb.projects][2] == "Library; the big one"
    assert [v["voter_id"] for v in pb.votes] == ["v1", "v2", "v3"]
    assert pb.vote_lines == [13, 14, 15]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            CITY.replace("v2;2;południe", "v2;2"),
            "T.pb:14: VOTES row has 2 fields, the header has 3",
        ),
        (CITY.replace("PROJECTS\n", ""), "T.pb:6: META row has 7 fields, the header has 2"),
        (CITY[: CITY.index("VOTES")], "T.pb:1: no VOTES section"),
        (CITY.replace("2;100;2;Bikes", "1;100;2;Bikes"), "a project_id appears twice"),
        ("PROJECTS\nid;cost\n", "T.pb:2: the PROJECTS header must start with 'project_id'"),
        ("hello\n", "T.pb:1: data before the first section"),
    ],
)
def test_malformed_files_are_refused_naming_file_and_line(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        pabulib.parse(text, "T.pb")
    assert reason in caught.value.detail
    assert caught.value.detail.startswith("T.pb:")


def test_a_vote_for_an_unknown_project_names_file_and_line(edition: Path) -> None:
    (edition / "T_2024.pb").write_text(CITY.replace("v3;3;-", "v3;9;-"), encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"T_2024\.pb:15: vote for unknown project '9'"):
        build(edition)


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no .pb file"):
        build(tmp_path)


def test_territories_from_meta_and_voters(edition: Path) -> None:
    space = build(edition)
    levels = {code: (t.level, t.parent) for code, t in space.territories.items()}
    assert levels == {
        "testville": ("city", None),
        "polnoc": ("district", "testville"),
        "poludnie": ("district", "testville"),
        "stare miasto": ("area", "poludnie"),
    }
    assert [(b.key, b.territory, b.cap) for b in space.budgets] == [
        ("T_2024.pb", "testville", 2),
        ("T_2024_Polnoc.pb", "polnoc", 1),  # cumulative: max_sum_points
        ("T_2024_Poludnie.pb", "poludnie", 3),  # a project pool of the district
        ("T_2024_Stare_Miasto.pb", "stare miasto", 3),
    ]
    # the city's centre: mean of its projects' coordinates; districts have none
    lon, lat = space.territories["testville"].lonlat or (0.0, 0.0)
    assert (lon, lat) == pytest.approx((19.05, 50.05))
    assert space.territories["polnoc"].lonlat is None


def test_items_are_keyed_by_file_and_id(edition: Path) -> None:
    space = build(edition)
    assert list(space.item_keys) == [
        ("T_2024.pb", "1"),
        ("T_2024.pb", "2"),
        ("T_2024.pb", "3"),
        ("T_2024_Polnoc.pb", "1"),
        ("T_2024_Polnoc.pb", "2"),
        ("T_2024_Poludnie.pb", "1"),
        ("T_2024_Stare_Miasto.pb", "7"),
    ]
    assert space.item_budget.tolist() == [0, 0, 0, 1, 1, 2, 3]
    assert list(space.item_territory) == ["testville"] * 3 + ["polnoc"] * 2 + [
        "poludnie",
        "stare miasto",
    ]
    assert list(space.item_level) == ["city"] * 3 + ["district"] * 3 + ["area"]
    assert space.item_categories[0] == ("nature", "culture")
    assert space.item_categories[3] == ()
    assert space.item_lonlat[1].tolist() == [19.1, 50.1]
    assert math.isnan(space.item_lonlat[2, 0])


def test_voters_and_ballots(edition: Path) -> None:
    space = build(edition)
    assert list(space.voter_ids) == ["v1", "v2", "v3", "v4", "v5"]
    # recorded by the city (any case or accent), else the district file the voter voted in
    assert list(space.voter_district) == ["polnoc", "poludnie", None, "polnoc", "polnoc"]
    assert list(space.voter_area) == [None, "stare miasto", None, None, None]
    assert space.voter_interests is None
    dense = space.ballots.toarray()
    assert dense.tolist() == [
        [1, 1, 0, 1, 0, 0, 0],
        [0, 1, 0, 0, 0, 1, 1],
        [0, 0, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 1, 0, 0, 0],  # a project given 0 points is not supported
    ]


def test_who_may_vote_on_what(edition: Path) -> None:
    space = build(edition)
    eligible, place_of, located = space.places(np.arange(space.n_voters))
    rows = eligible[place_of].astype(int).tolist()
    assert rows[0] == [1, 1, 1, 1, 1, 0, 0]  # Północ: the city's and Północ's
    assert rows[1] == [1, 1, 1, 0, 0, 1, 1]  # Południe, Stare Miasto
    assert rows[2] == [1] * 7  # unknown: everything
    assert located.tolist() == [True, True, False, True, True]
    assert place_of[0] == place_of[3] == place_of[4]


def test_a_district_read_off_the_voters_choice_is_not_a_location(tmp_path: Path) -> None:
    """A city file where anyone may choose a project of any district, and the recorded district
    is always the district of the project chosen: the location is derived, so unknown."""
    folder = tmp_path / "derived"
    folder.mkdir()
    votes = "\n".join(f"w{n};{1 + n % 2};{'East' if n % 2 == 0 else 'West'}" for n in range(30))
    (folder / "x.pb").write_text(
        "META\nkey;value\nunit;X\nvote_type;choose-1\nmax_length;1\n"
        "PROJECTS\nproject_id;cost;votes;name;district\n1;1;15;A;East\n2;1;15;B;West\n"
        f"VOTES\nvoter_id;vote;district\n{votes}\n",
        encoding="utf-8",
    )
    space = build(folder)
    assert space.voter_location_derived
    assert set(space.voter_district) == {None}
    assert list(space.item_level) == ["district", "district"]
    # the same file with voters choosing elsewhere than their district: a real location
    swapped = votes.replace("East", "Tmp").replace("West", "East").replace("Tmp", "West")
    (folder / "x.pb").write_text(
        (folder / "x.pb").read_text(encoding="utf-8").replace(votes, swapped), encoding="utf-8"
    )
    assert not build(folder).voter_location_derived
