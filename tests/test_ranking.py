"""The ranking stages on hand-built facts: geography first, exclusions, re-ranking, reasons that
match the features that scored, and independence from input order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contracts.errors import InvalidInput
from recommender.explain import explain
from recommender.facts import CandidateGroup, level_index
from recommender.features import FEATURES
from recommender.ranking import RankingConfig, rank_group
from recommender.reasons import french_km
from recommender.rerank import Diversity, exposure_floor, mmr, top_k
from recommender.scorers import LinearScorer, load_weighted
from tests.recommender_facts import make_group, make_items, make_users

PLAIN = RankingConfig(k=5, mmr_lambda=1.0, exposure_floor=False)
WEIGHTED = load_weighted()
BAYONNE = (-1.4748, 43.4929)


def _ids(ranked_items: np.ndarray, items_ids: np.ndarray) -> list[int]:
    return [int(items_ids[i]) for i in ranked_items if i >= 0]


def test_a_commune_project_outranks_a_national_one_without_other_signal() -> None:
    items = make_items(2)
    users = make_users(1, 2)
    group = make_group([0, 1], [0], ["national", "commune"])
    ranked = rank_group(items, users, group, WEIGHTED, PLAIN)
    assert _ids(ranked.items[0], items.ids) == [2, 1]


def test_geographic_order_for_a_user_with_only_an_address() -> None:
    levels = ["national", "region", "departement", "epci", "commune"]
    items = make_items(len(levels))
    users = make_users(1, len(levels), lonlat=np.array([BAYONNE]))
    ranked = rank_group(items, users, make_group(range(5), [0], levels), WEIGHTED, PLAIN)
    assert [levels[i] for i in ranked.items[0]] == [
        "commune",
        "epci",
        "departement",
        "region",
        "national",
    ]


def test_in_an_xxl_epci_distance_decides_not_membership() -> None:
    # Two projects of the user's XXL intercommunalité: one next door, one 60 km away.
    lonlat = np.array([[-1.47, 43.49], [-0.73, 43.49]])  # ~60 km apart on this parallel
    items = make_items(3, lonlat=np.vstack([lonlat, [[np.nan, np.nan]]]))
    users = make_users(1, 3, lonlat=np.array([[-1.475, 43.493]]))
    group = make_group([0, 1, 2], [0], ["epci_xxl", "epci_xxl", "departement"])
    ranked = rank_group(items, users, group, WEIGHTED, PLAIN)
    order = list(ranked.items[0][:3])
    assert order[0] == 0  # next door first
    # 60 km away in an XXL EPCI is not local: it falls below the département's project.
    assert order.index(1) > order.index(2)


def test_joined_dismissed_and_full_ballots_are_never_recommended() -> None:
    items = make_items(5, budget=[0, 0, 0, -1, -1], budget_cap=[2])
    users = make_users(1, 5, history={0: {0: 1.0, 1: 1.0}}, dismissed={0: {3: 1.0}})
    ranked = rank_group(items, users, make_group(range(5), [0]), WEIGHTED, PLAIN)
    # 0, 1 joined; 2 in the ballot they filled (2 of 2); 3 dismissed: only 4 is left.
    assert _ids(ranked.items[0], items.ids) == [5]


def test_points_spent_in_a_cumulative_ballot_fill_it() -> None:
    # A ballot of 3 points: all three given to project 0 fill it, though one project is chosen.
    items = make_items(3, budget=[0, 0, -1], budget_cap=[3])
    spent_all = make_users(1, 3, history={0: {0: 3.0}})
    ranked = rank_group(items, spent_all, make_group(range(3), [0]), WEIGHTED, PLAIN)
    assert _ids(ranked.items[0], items.ids) == [3]
    spent_two = make_users(1, 3, history={0: {0: 2.0}})
    ranked = rank_group(items, spent_two, make_group(range(3), [0]), WEIGHTED, PLAIN)
    assert sorted(_ids(ranked.items[0], items.ids)) == [2, 3]
    # A click (weight < 1) spends nothing.
    clicked = make_users(1, 3, history={0: {0: 0.3, 1: 0.3}})
    ranked = rank_group(items, clicked, make_group(range(3), [0]), WEIGHTED, PLAIN)
    assert sorted(_ids(ranked.items[0], items.ids)) == [1, 2, 3]


def test_a_muted_theme_sinks_its_projects() -> None:
    items = make_items(2, themes=[("sport",), ("culture",)])
    before = rank_group(items, make_users(1, 2), make_group([0, 1], [0]), WEIGHTED, PLAIN)
    muted = make_users(1, 2, muted=[("sport",)])
    after = rank_group(items, muted, make_group([0, 1], [0]), WEIGHTED, PLAIN)
    assert (
        before.scores[0, list(before.items[0]).index(0)]
        > after.scores[0, list(after.items[0]).index(0)]
    )
    assert after.items[0][0] == 1


def test_ranking_does_not_depend_on_input_order() -> None:
    rng = np.random.default_rng(7)
    n, m = 30, 6
    themes = [
        tuple(rng.choice(["mobilite", "culture", "sport", "environnement"], 2)) for _ in range(n)
    ]
    lonlat = np.column_stack([-1.5 + rng.random(n) * 0.2, 43.4 + rng.random(n) * 0.2])
    levels = list(rng.choice(["commune", "epci", "departement", "national"], n))
    items = make_items(
        n,
        themes=themes,
        lonlat=lonlat,
        organisation=rng.integers(0, 5, n),
        participants=rng.integers(0, 50, n).astype(float),
    )
    homes = np.column_stack([-1.5 + rng.random(m) * 0.2, 43.4 + rng.random(m) * 0.2])
    users = make_users(m, n, lonlat=homes, interests=[("culture",)] * m)
    config = RankingConfig(k=8)
    ranked = rank_group(items, users, make_group(range(n), range(m), levels), WEIGHTED, config)

    perm = rng.permutation(n)
    items_p = make_items(
        n,
        themes=[themes[i] for i in perm],
        lonlat=lonlat[perm],
        organisation=np.asarray(items.organisation)[perm],
        participants=items.participants[perm],
    )
    items_p = type(items_p)(**{**items_p.__dict__, "ids": items.ids[perm]})
    users_p = make_users(m, n, lonlat=homes[::-1], interests=[("culture",)] * m)
    group_p = make_group(range(n), range(m), [levels[i] for i in perm])
    shuffled = rank_group(items_p, users_p, group_p, WEIGHTED, config)
    for u in range(m):
        assert _ids(ranked.items[u], items.ids) == _ids(shuffled.items[m - 1 - u], items_p.ids)


def test_mmr_prefers_a_different_organisation_over_a_near_duplicate() -> None:
    items = make_items(
        4, organisation=[1, 1, 2, 3], themes=[("sport",), ("sport",), ("culture",), ("sport",)]
    )
    scores = np.array([[3.0, 2.9, 2.8, 1.0]], dtype=np.float32)
    diversity = Diversity.of(items, np.arange(4))
    assert list(top_k(scores, 2)[0]) == [0, 1]
    # By hand, λ = 0.5, relevance min-max over the pool = (1, 0.95, 0.9, 0): project 1 is
    # 0.5·0.95 − 0.5·1.0 (same organisation, tool, theme) = −0.025; project 2 is
    # 0.5·0.9 − 0.5·0.3 (same tool only) = 0.3.
    assert list(mmr(scores, diversity, 2, lam=0.5, pool=4)[0]) == [0, 2]


def test_exposure_floor_gives_the_last_slot_to_the_best_local_project() -> None:
    scores = np.array([[5.0, 4.0, 3.0, 1.0, 0.5]], dtype=np.float32)
    levels = np.array([6, 6, 6, 0, 0])  # three région projects, then two of the commune
    cols = top_k(scores, 3)
    assert list(exposure_floor(cols, scores, levels)[0]) == [0, 1, 3]
    # No eligible local project: nothing changes.
    none_local = np.array([[5.0, 4.0, 3.0, -np.inf, -np.inf]], dtype=np.float32)
    assert list(exposure_floor(cols, none_local, levels)[0]) == [0, 1, 2]


def test_reasons_are_those_of_the_features_that_scored() -> None:
    items = make_items(
        2,
        themes=[("mobilite",), ()],
        lonlat=np.array([[-1.4748, 43.5136], [np.nan, np.nan]]),  # ~2.3 km north of home
        closes_in_days=[2.5, np.nan],
    )
    users = make_users(1, 2, lonlat=np.array([BAYONNE]), interests=[("mobilite",)])
    group = make_group([0, 1], [0], ["commune", "national"])
    ranked = rank_group(items, users, group, WEIGHTED, PLAIN)
    first, second = explain(items, users, ranked, 0, None, PLAIN.min_contribution)
    assert first.project_id == 1
    # Largest contribution first: commune 3.0, interest 1.2, proximity 1.5·e^(−2.3/5) ≈ 0.95;
    # closing in 3 days (0.4) would be a fourth, and three is the most.
    assert first.reasons == [
        "Concerne votre commune, Bayonne",
        "Correspond à votre intérêt : mobilité et transports",
        "À 2,3 km de chez vous",
    ]
    assert second.reasons == ["Concerne toute la France"]
    # Each reason's feature contributed at least the threshold; the contributions add up.
    assert first.contributions["level:commune"] == pytest.approx(3.0)
    assert sum(first.contributions.values()) == pytest.approx(first.score, abs=1e-3)
    assert set(first.contributions) <= set(FEATURES)


def test_a_feature_below_the_threshold_gives_no_reason() -> None:
    items = make_items(1, closes_in_days=[2.0])
    users = make_users(1, 1)
    scorer = LinearScorer("weighted", "test", {"level:commune": 1.0, "closing_soon": 0.1})
    ranked = rank_group(items, users, make_group([0], [0]), scorer, PLAIN)
    (only,) = explain(items, users, ranked, 0, None, 0.25)
    assert only.reasons == ["Concerne votre commune, Bayonne"]
    assert only.contributions == {"level:commune": 1.0, "closing_soon": pytest.approx(0.1)}


@pytest.mark.parametrize(
    ("km", "text"), [(0.8, "800 m"), (2.34, "2,3 km"), (15.4, "15 km"), (0.004, "10 m")]
)
def test_distances_read_as_a_french_reader_writes_them(km: float, text: str) -> None:
    assert french_km(km) == text


def test_a_weights_file_with_an_unknown_feature_or_a_non_number_is_refused(tmp_path: Path) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text('version = "x"\n[weights]\n"level:comune" = 1.0\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match="unknown features level:comune"):
        load_weighted(typo)
    text = tmp_path / "text.toml"
    text.write_text('version = "x"\n[weights]\nproximity = "high"\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match="weights must be numbers: proximity"):
        load_weighted(text)
    huge = tmp_path / "huge.toml"
    huge.write_text('version = "x"\n[weights]\nproximity = 1.7e308\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match="between -1000 and 1000: proximity"):
        load_weighted(huge)
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    with pytest.raises(InvalidInput, match="is a directory"):
        load_weighted(folder)
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'version = "\xe9t\xe9"\n')
    with pytest.raises(InvalidInput, match="is not UTF-8 text"):
        load_weighted(latin)
    with pytest.raises(InvalidInput, match="does not exist"):
        load_weighted(tmp_path / "absent.toml")


def test_places_ranked_together_rank_as_they_would_alone() -> None:
    # Two communes of one département: A's candidates 0, 1, 2, 4; B's 1, 3, 4 (4 national).
    rng = np.random.default_rng(5)
    n = 5
    items = make_items(
        n,
        themes=[("sport",), ("culture",), ("mobilite",), ("sport",), ("culture",)],
        lonlat=np.column_stack([-1.5 + rng.random(n) * 0.1, 43.4 + rng.random(n) * 0.1]),
        participants=rng.integers(0, 30, n).astype(float),
    )
    homes = np.column_stack([-1.5 + rng.random(4) * 0.1, 43.4 + rng.random(4) * 0.1])
    users = make_users(4, n, lonlat=homes, interests=[("sport",), (), ("culture",), ()])
    a = (["commune", "epci", "commune", None, "national"], [0, 1])
    b = ([None, "commune", None, "departement", "national"], [2, 3])
    alone = {}
    for words, rows in (a, b):
        cols = [i for i, w in enumerate(words) if w is not None]
        group = make_group(cols, rows, [words[i] for i in cols])
        ranked = rank_group(items, users, group, WEIGHTED, RankingConfig(k=3))
        for r, u in enumerate(rows):
            alone[u] = (list(ranked.items[r]), ranked.scores[r].tolist())
    levels = np.array([[-2 if w is None else level_index(w) for w in words] for words, _ in (a, b)])
    together = CandidateGroup(
        items=np.arange(n), levels=levels, users=np.arange(4), places=np.array([0, 0, 1, 1])
    )
    ranked = rank_group(items, users, together, WEIGHTED, RankingConfig(k=3))
    for u in range(4):
        assert list(ranked.items[u]) == alone[u][0]
        # Distances are computed in float32 on a plane centred on the group's homes.
        assert ranked.scores[u].tolist() == pytest.approx(alone[u][1], rel=1e-4)
