"""The learned ranker: its training examples, what it learns, its scorer, and its file on disk."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn
import skops.io
from scipy import sparse
from sklearn.preprocessing import FunctionTransformer

from contracts.errors import InvalidInput
from recommender.facts import CandidateGroup, Items, Users
from recommender.features import FEATURES, distances_km, group_features
from recommender.learned import LearnedModel, train, training_examples
from recommender.model_file import TRUSTED_TYPES, load, metadata_path, save
from recommender.ranking import RankingConfig, exclusions, rank_group
from tests.recommender_facts import THEMES, make_group, make_items, make_users

WINDOW = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC))
BAYONNE = np.array([-1.4748, 43.4929])


def _col(name: str) -> int:
    return FEATURES.index(name)


# --- training examples ---------------------------------------------------------------------


def _small() -> tuple[Items, Users, CandidateGroup, sparse.csr_matrix]:
    """6 projects, 3 users of one group. User 0 took part in 0 and 1 (positives), already
    joined 2 (history) and dismissed 3: only 4 and 5 may be its negatives. User 1 took part in
    5; user 2 in nothing."""
    items = make_items(
        6,
        lonlat=BAYONNE + np.arange(6)[:, None] * [0.01, 0.0],
        themes=[("mobilite",), ("culture",), (), ("sport",), ("mobilite", "sport"), ()],
        age_days=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],  # freshness tells the projects apart
    )
    users = make_users(
        3,
        6,
        lonlat=np.array([BAYONNE, BAYONNE + 0.02, [np.nan, np.nan]]),
        interests=[("mobilite",), ("sport",), ()],
        history={0: {2: 1.0}, 1: {0: 1.0}},
        dismissed={0: {3: 1.0}},
    )
    positives = sparse.csr_matrix(([1.0, 1.0, 1.0], ([0, 0, 1], [0, 1, 5])), shape=(3, 6))
    return items, users, make_group(range(6), range(3)), positives


def test_examples_take_every_positive_and_never_an_excluded_negative() -> None:
    items, users, group, positives = _small()
    for seed in range(20):
        X, y, g, _ = training_examples(
            items, users, [group], positives, None, negatives=10, seed=seed
        )
        assert X.dtype == np.float32 and y.dtype == np.int8 and g.dtype == np.int64
        assert X.shape == (len(y), len(FEATURES)) and (g == 0).all()
        # Which (user, project) each row is: freshness tells the projects apart and proximity
        # the users, so find the pair of each row from its features.
        features = group_features(items, users, group, None)
        pairs = {
            (u, c)
            for u in range(3)
            for c in range(6)
            if not exclusions(items, users, group)[u, c] or positives[u, c] > 0
        }
        seen = set()
        for row, label in zip(X, y, strict=True):
            matches = [
                (u, c)
                for (u, c) in pairs
                if np.array_equal(
                    row,
                    np.array(
                        [
                            features.value(name, np.array([u]), np.array([[c]]))[0, 0]
                            for name in FEATURES
                        ],
                        dtype=np.float32,
                    ),
                )
            ]
            assert len(matches) == 1, "each row is the features of one eligible pair"
            seen.add((*matches[0], int(label)))
        assert {(u, c) for u, c, lab in seen if lab == 1} == {(0, 0), (0, 1), (1, 5)}
        negatives = {(u, c) for u, c, lab in seen if lab == 0}
        # All eligible non-positives (10 ≥ what there is): user 0 only 4 and 5; user 1 all but
        # 0 (joined) and 5 (positive); user 2 all six.
        assert negatives == {(0, 4), (0, 5)} | {(1, c) for c in (1, 2, 3, 4)} | {
            (2, c) for c in range(6)
        }
        assert len(y) == 3 + 2 + 4 + 6


def test_examples_draw_the_requested_number_of_negatives_seeded() -> None:
    items, users, group, positives = _small()
    X, y, _, _ = training_examples(items, users, [group], positives, None, negatives=2, seed=7)
    # 3 positives; negatives: user 0 has only 2 eligible, users 1 and 2 get 2 each.
    assert int(y.sum()) == 3 and int((y == 0).sum()) == 6
    again = training_examples(items, users, [group], positives, None, negatives=2, seed=7)
    assert np.array_equal(X, again[0]) and np.array_equal(y, again[1])
    draws = {
        training_examples(items, users, [group], positives, None, negatives=2, seed=s)[0].tobytes()
        for s in range(10)
    }
    assert len(draws) > 1, "the seed chooses the negatives"
    none = training_examples(items, users, [group], positives, None, negatives=0, seed=7)
    assert int((none[1] == 0).sum()) == 0 and int(none[1].sum()) == 3


def test_examples_read_the_features_of_their_pair() -> None:
    items, users, group, positives = _small()
    X, y, _, _ = training_examples(items, users, [group], positives, None, negatives=0, seed=1)
    # Positives in row-major order: (0, 0), (0, 1), (1, 5).
    features = group_features(items, users, group, None)
    for row, (u, c) in zip(X, [(0, 0), (0, 1), (1, 5)], strict=True):
        for f, name in enumerate(FEATURES):
            assert row[f] == features.value(name, np.array([u]), np.array([[c]]))[0, 0]
    assert X[0, _col("interest_declared")] == 1.0  # user 0 declared mobilité, project 0 is
    assert X[1, _col("interest_declared")] == 0.0
    assert X[0, _col("proximity")] == pytest.approx(1.0)  # at home
    assert X[2, _col("level:commune")] == 1.0


def test_examples_span_groups_and_name_them() -> None:
    items, users, _, positives = _small()
    groups = [make_group([0, 1, 2], [0]), make_group([], [1]), make_group([3, 4, 5], [1, 2])]
    X, y, g, _ = training_examples(items, users, groups, positives, None, negatives=5, seed=3)
    assert set(g.tolist()) == {0, 2}
    # Group 0: user 0's positives 0, 1 and no negative (2 joined). Group 2: user 1's positive
    # 5 and negatives 3, 4; user 2's negatives 3, 4, 5.
    assert y[g == 0].tolist() == [1, 1]
    assert sorted(y[g == 2].tolist()) == [0, 0, 0, 0, 0, 1]


def test_examples_refuse_bad_arguments() -> None:
    items, users, group, positives = _small()
    with pytest.raises(InvalidInput, match="negatives"):
        training_examples(items, users, [group], positives, None, negatives=-1, seed=0)
    with pytest.raises(InvalidInput, match="users × items"):
        training_examples(items, users, [group], positives[:, :5], None, negatives=1, seed=0)
    X, y, g, _ = training_examples(items, users, [], positives, None, negatives=1, seed=0)
    assert X.shape == (0, len(FEATURES)) and y.shape == g.shape == (0,)


# --- a synthetic world whose engagement depends on proximity --------------------------------


def _world(
    seed: int, *, users_per_group: int = 40, groups: int = 5, n_items: int = 60
) -> tuple[Items, Users, list[CandidateGroup], sparse.csr_matrix]:
    """Projects and users scattered over ~16 km around Bayonne, in groups sharing every
    project; a user takes part in a project with probability sigmoid(6·proximity − 3)
    (proximity = exp(−km / 5), as the feature), whatever its level, themes or popularity."""
    rng = np.random.default_rng(seed)
    items = make_items(
        n_items,
        lonlat=BAYONNE + rng.uniform(-0.1, 0.1, (n_items, 2)),
        themes=[(THEMES[i % len(THEMES)],) for i in range(n_items)],
        participants=rng.integers(0, 500, n_items).astype(float),
        age_days=rng.uniform(0, 60, n_items),
        closes_in_days=rng.uniform(0, 60, n_items),
    )
    m = users_per_group * groups
    homes = BAYONNE + rng.uniform(-0.1, 0.1, (m, 2))
    users = make_users(m, n_items, lonlat=homes, interests=[(THEMES[u % 4],) for u in range(m)])
    proximity = np.exp(-distances_km(homes, items.lonlat, items.reach_m) / 5.0)
    chance = 1.0 / (1.0 + np.exp(-(6.0 * proximity - 3.0)))
    positives = sparse.csr_matrix((rng.random(chance.shape) < chance).astype(np.float64))
    levels = rng.choice(["commune", "epci", "departement"], n_items)
    cands = make_group(range(n_items), [], list(levels))
    groups_ = [
        CandidateGroup(
            cands.items, cands.levels, np.arange(g * users_per_group, (g + 1) * users_per_group)
        )
        for g in range(groups)
    ]
    return items, users, groups_, positives


def test_training_on_proximity_learns_a_positive_proximity_weight() -> None:
    items, users, groups, positives = _world(11)
    X, y, _, _ = training_examples(items, users, groups, positives, None, negatives=6, seed=11)
    model = train(X, y, window=WINDOW, seed=11)
    scorer = model.scorer()
    assert model.features == FEATURES and scorer.name == "learned"
    assert scorer.weights["proximity"] > 0
    # Its standardised weight (per standard deviation) dominates every other feature's.
    per_sd = {name: abs(scorer.weights[name]) * float(X[:, _col(name)].std()) for name in FEATURES}
    assert max(per_sd, key=per_sd.__getitem__) == "proximity"
    assert model.metrics["roc_auc"] > 0.7
    assert 0 < model.metrics["log_loss"] < 0.69
    assert model.metrics["rows_train"] + model.metrics["rows_held_out"] == len(y)


def test_training_on_shuffled_labels_learns_nothing() -> None:
    """The same rows with labels that no longer depend on anything: chance-level AUC. (The
    previous test's AUC is then the features' doing, not the metric's.)"""
    items, users, groups, positives = _world(12)
    X, y, _, _ = training_examples(items, users, groups, positives, None, negatives=6, seed=12)
    model = train(X, np.random.default_rng(0).permutation(y), window="shuffled", seed=12)
    assert abs(model.metrics["roc_auc"] - 0.5) < 0.08


def test_the_learned_scorer_equals_the_pipeline_decision_function() -> None:
    items, users, groups, positives = _world(13, users_per_group=25, groups=2)
    X, y, _, _ = training_examples(items, users, groups, positives, None, negatives=6, seed=13)
    model = train(X, y, window=WINDOW, seed=13, class_weight="balanced")
    scorer = model.scorer()
    group = groups[1]
    features = group_features(items, users, group, None)
    scores = scorer.score(features)  # (users × candidates)
    m, n_c = scores.shape
    u, c = np.meshgrid(np.arange(m), np.arange(n_c), indexing="ij")
    pairs = np.stack(
        [features.value(name, u.ravel(), c.ravel()[:, None])[:, 0] for name in FEATURES], axis=1
    )
    expected = model.decision_function(pairs).reshape(m, n_c)
    intercept = float(model.pipeline.named_steps["logit"].intercept_[0])
    assert np.allclose(scores, expected - intercept, rtol=1e-5, atol=1e-4)
    # Contributions add up to the score.
    cols = np.tile(np.arange(n_c), (m, 1))
    contributions = scorer.contributions(features, np.arange(m), cols)
    assert np.allclose(contributions.sum(axis=2), scores, atol=1e-4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda X, y: (X[:, :-1], y), "features"),
        (lambda X, y: (X, y[:-1]), "labels"),
        (lambda X, y: (np.where(np.arange(len(X))[:, None] == 0, np.nan, X), y), "NaN"),
        (lambda X, y: (X, np.where(y == 1, 2, y)), "0 or 1"),
        (lambda X, y: (X[y == 0], y[y == 0]), "too few"),
    ],
)
def test_training_refuses_bad_rows(change: Callable[..., tuple[Any, Any]], message: str) -> None:
    items, users, groups, positives = _world(14, users_per_group=10, groups=1)
    X, y, _, _ = training_examples(items, users, groups, positives, None, negatives=3, seed=14)
    bad_X, bad_y = change(X, y)
    with pytest.raises(InvalidInput, match=message):
        train(bad_X, bad_y, window=WINDOW, seed=0)


def test_training_refuses_a_bad_window() -> None:
    X = np.random.default_rng(0).random((40, len(FEATURES))).astype(np.float32)
    y = np.arange(40) % 2
    with pytest.raises(InvalidInput, match="time zone"):
        train(X, y, window=(datetime(2026, 1, 1), datetime(2026, 2, 1)), seed=0)
    with pytest.raises(InvalidInput, match="after it ends"):
        train(X, y, window=(WINDOW[1], WINDOW[0]), seed=0)
    with pytest.raises(InvalidInput, match="empty"):
        train(X, y, window=" ", seed=0)
    with pytest.raises(InvalidInput, match="seed"):
        train(X, y, window=WINDOW, seed=-1)
    with pytest.raises(InvalidInput, match="class_weight"):
        train(X, y, window=WINDOW, seed=0, class_weight="heavy")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="C must be"):
        train(X, y, window=WINDOW, seed=0, C=0.0)


def test_the_learned_scorer_ranks_through_the_ranking_stages() -> None:
    """Trained where engagement follows proximity, the learned scorer puts near projects first
    through the same stages as the weighted one (exclusions, MMR, floor, contributions)."""
    items, users, groups, positives = _world(15, users_per_group=30, groups=2)
    X, y, _, _ = training_examples(items, users, groups[:1], positives, None, negatives=6, seed=15)
    scorer = train(X, y, window=WINDOW, seed=15).scorer()
    group = groups[1]  # users the model never saw
    ranked = rank_group(items, users, group, scorer, RankingConfig(k=5, exposure_floor=False))
    assert (ranked.items >= 0).all()
    features = group_features(items, users, group, None)
    proximity = features.pair["proximity"]
    local = np.searchsorted(group.items, ranked.items)
    top = np.take_along_axis(proximity, local, axis=1)
    assert top.mean() > 2 * proximity.mean()
    assert "proximity" in {FEATURES[f] for f in ranked.reason_features.ravel() if f >= 0}


# --- the model on disk -----------------------------------------------------------------------


Trained = tuple[LearnedModel, Items, Users, list[CandidateGroup]]


@pytest.fixture(scope="module")
def trained() -> Trained:
    items, users, groups, positives = _world(21, users_per_group=20, groups=2)
    X, y, _, _ = training_examples(items, users, groups, positives, None, negatives=6, seed=21)
    return train(X, y, window=WINDOW, seed=21), items, users, groups


def _saved(tmp_path: Path, model: LearnedModel) -> Path:
    path = tmp_path / "ranker.skops"
    save(model, path)
    return path


def _rewrite_metadata(path: Path, **changes: object) -> None:
    meta = metadata_path(path)
    document = json.loads(meta.read_text())
    document.update(changes)
    meta.write_text(json.dumps(document))


def test_a_saved_model_loads_and_scores_the_same(tmp_path: Path, trained: Trained) -> None:
    model, items, users, groups = trained
    path = _saved(tmp_path, model)
    metadata = json.loads(metadata_path(path).read_text())
    assert metadata["features"] == list(FEATURES)
    assert metadata["window"] == {"start": WINDOW[0].isoformat(), "end": WINDOW[1].isoformat()}
    assert metadata["seed"] == 21
    assert metadata["versions"]["scikit-learn"] == sklearn.__version__
    assert {"numpy", "scipy", "skops", "python"} <= set(metadata["versions"])
    assert metadata["metrics"]["roc_auc"] == model.metrics["roc_auc"]
    assert metadata["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert datetime.fromisoformat(metadata["created_at"]) == model.created_at

    loaded = load(path)
    assert loaded.version == model.version and loaded.window == WINDOW
    assert loaded.metrics == model.metrics and loaded.created_at == model.created_at
    features = group_features(items, users, groups[0], None)
    assert np.array_equal(loaded.scorer().score(features), model.scorer().score(features))
    assert loaded.scorer().version == model.version

    described = LearnedModel(**{**model.__dict__, "window": "pabulib training voters"})
    save(described, path)
    assert load(path).window == "pabulib training voters"


def test_a_tampered_model_file_is_refused(tmp_path: Path, trained: Trained) -> None:
    path = _saved(tmp_path, trained[0])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match="sha256 .* the file was changed"):
        load(path)


def test_a_model_of_other_features_is_refused_naming_them(tmp_path: Path, trained: Trained) -> None:
    path = _saved(tmp_path, trained[0])
    other = [("distance_km" if f == "proximity" else f) for f in FEATURES if f != "freshness"]
    _rewrite_metadata(path, features=other)
    with pytest.raises(InvalidInput) as refused:
        load(path)
    assert "missing freshness, proximity" in refused.value.detail
    assert "unknown to this code distance_km" in refused.value.detail

    _rewrite_metadata(path, features=list(reversed(FEATURES)))
    with pytest.raises(InvalidInput, match="another order"):
        load(path)


def test_a_model_of_another_scikit_learn_is_refused(tmp_path: Path, trained: Trained) -> None:
    path = _saved(tmp_path, trained[0])
    major, minor = sklearn.__version__.split(".")[:2]
    versions = json.loads(metadata_path(path).read_text())["versions"]
    _rewrite_metadata(path, versions={**versions, "scikit-learn": f"{major}.{int(minor) + 1}.0"})
    with pytest.raises(InvalidInput, match=f"scikit-learn {major}.{int(minor) + 1}.0 but"):
        load(path)
    # A patch release of the same major.minor is accepted.
    _rewrite_metadata(path, versions={**versions, "scikit-learn": f"{major}.{minor}.99"})
    assert load(path).version == trained[0].version


class Booby:
    """A custom class whose loading would run code: skops must never get that far."""

    armed: list[str] = []

    def __setstate__(self, state: dict[str, object]) -> None:
        Booby.armed.append("loaded")
        self.__dict__.update(state)


def booby_function(x: np.ndarray) -> np.ndarray:
    Booby.armed.append("called")
    return x


@pytest.mark.parametrize("payload", ["class", "function"])
def test_a_model_file_with_an_untrusted_type_is_refused_unloaded(
    tmp_path: Path, trained: Trained, payload: str
) -> None:
    model = trained[0]
    pipeline = model.pipeline
    if payload == "class":
        booby = Booby()
        booby.x = 1  # type: ignore[attr-defined]
        pipeline.named_steps["logit"].booby = booby
        try:
            data = skops.io.dumps(pipeline)
        finally:
            del pipeline.named_steps["logit"].booby
        expected = "tests.test_learned.Booby"
    else:
        from sklearn.pipeline import Pipeline

        evil = Pipeline([("scale", FunctionTransformer(booby_function)), ("logit", pipeline[-1])])
        data = skops.io.dumps(evil)
        expected = "tests.test_learned.booby_function"
    path = _saved(tmp_path, model)
    path.write_bytes(data)
    # Whoever wrote this file could write its metadata too: a matching sha256 proves nothing.
    _rewrite_metadata(path, sha256=hashlib.sha256(data).hexdigest())
    assert expected in skops.io.get_untrusted_types(data=data)
    assert expected not in TRUSTED_TYPES
    Booby.armed.clear()
    with pytest.raises(InvalidInput, match=f"outside the allow-list.*{expected}"):
        load(path)
    assert Booby.armed == []


def test_an_unwritable_place_is_refused(tmp_path: Path, trained: Trained) -> None:
    with pytest.raises(InvalidInput, match="cannot write learned model"):
        save(trained[0], tmp_path / "no such folder" / "ranker.skops")


def test_missing_or_malformed_files_are_refused(tmp_path: Path, trained: Trained) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        load(tmp_path / "nowhere.skops")
    path = _saved(tmp_path, trained[0])
    good = metadata_path(path).read_text()
    metadata_path(path).unlink()
    with pytest.raises(InvalidInput, match="metadata file .* does not exist"):
        load(path)
    metadata_path(path).write_text("{not json")
    with pytest.raises(InvalidInput, match="not JSON"):
        load(path)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"format": "pickle"}, "format"),
        ({"features": "proximity"}, "'features'"),
        ({"sha256": "abc"}, "'sha256'"),
        ({"seed": "21"}, "'seed'"),
        ({"window": {"start": "2026-01-01"}}, "'window'"),
        ({"window": {"start": "2026-02-01T00:00+00:00", "end": "2026-01-01T00:00+00:00"}}, "after"),
        ({"metrics": {"roc_auc": "high"}}, "'metrics'"),
        ({"versions": {}}, "'versions'"),
        ({"created_at": "yesterday"}, "'created_at'"),
        ({"class_weight": {"0": 1}}, "'class_weight'"),
    ]
    for change, message in cases:
        metadata_path(path).write_text(good)
        _rewrite_metadata(path, **change)
        with pytest.raises(InvalidInput, match=f"bad metadata.*{message}"):
            load(path)
    # Bytes that are not a skops file at all, with metadata that vouches for them.
    metadata_path(path).write_text(good)
    path.write_bytes(b"not a zip")
    _rewrite_metadata(path, sha256=hashlib.sha256(b"not a zip").hexdigest())
    with pytest.raises(InvalidInput, match="not a readable skops file"):
        load(path)


def test_pairwise_pairs_a_users_positive_with_their_own_negatives() -> None:
    from recommender.learned import pairwise

    X = np.array([[1, 0], [0, 1], [2, 2], [1, 1], [0, 0], [5, 5]], dtype=np.float32)
    y = np.array([1, 0, 1, 0, 0, 0], dtype=np.int8)
    users = np.array([0, 0, 1, 1, 1, 2], dtype=np.int64)  # user 2 has no positive: no pair
    D, labels = pairwise(X, y, users, seed=0)
    got = {(tuple(row), int(label)) for row, label in zip(D.tolist(), labels, strict=True)}
    # By hand: user 0, (1, 0) − (0, 1); user 1, (2, 2) − (1, 1) and (2, 2) − (0, 0); each
    # once as it is (label 1) and once negated (label 0).
    assert got == {
        ((1.0, -1.0), 1),
        ((-1.0, 1.0), 0),
        ((1.0, 1.0), 1),
        ((-1.0, -1.0), 0),
        ((2.0, 2.0), 1),
        ((-2.0, -2.0), 0),
    }
    assert len(D) == 6
    shuffled = np.array([5, 3, 1, 0, 4, 2])
    again, _ = pairwise(X[shuffled], y[shuffled], users[shuffled], seed=0)
    assert sorted(map(tuple, again.tolist())) == sorted(map(tuple, D.tolist()))


def test_a_users_mute_stays_a_rule_whatever_the_data() -> None:
    from recommender.learned import CONTROLS

    rng = np.random.default_rng(4)
    X = rng.random((2000, len(FEATURES))).astype(np.float32)
    y = (X[:, _col("proximity")] > 0.5).astype(np.int8)
    X[:, _col("theme_muted")] = y  # as if muted themes attracted: feedback read after the fact
    scorer = train(X, y, window="test", seed=0).scorer()
    assert scorer.weights["theme_muted"] == CONTROLS["theme_muted"] < 0
    assert scorer.weights["proximity"] > 0
