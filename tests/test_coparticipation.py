"""The co-participation models: known answers by hand, the closed form, order invariance, tuning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.errors import InvalidInput, TooLarge
from recommender.coparticipation import (
    EASE_GRID,
    KNN_NEIGHBOURS_GRID,
    KNN_SHRINK_GRID,
    Ease,
    ItemKNN,
    ItemKNNParams,
    ease_l2_scale,
    ease_validation,
    hit_rate,
    item_knn_validation,
    popularity_hit_rate,
    tune_ease,
    tune_item_knn,
    validation_split,
)

# 4 users × 4 items. Item counts 2, 3, 2, 1; co-participations (0,1) = 2, (0,2) = 1, (1,2) = 2,
# item 3 shares nobody with any other item.
TINY = sp.csr_matrix(
    np.array(
        [
            [1, 1, 0, 0],
            [1, 1, 1, 0],
            [0, 1, 1, 0],
            [0, 0, 0, 1],
        ],
        dtype=np.float64,
    )
)
R6 = math.sqrt(6)


def rows(*histories: list[int], items: int = 4) -> sp.csr_matrix:
    dense = np.zeros((len(histories), items))
    for row, items_of_row in enumerate(histories):
        dense[row, items_of_row] = 1
    return sp.csr_matrix(dense)


# --------------------------------------------------------------------------- item-kNN by hand


def test_cosine_similarity_by_hand() -> None:
    model = ItemKNN().fit(TINY)
    expected = np.array(
        [
            [0, 2 / R6, 1 / 2, 0],  # |U0∩U1| / √(2·3), |U0∩U2| / √(2·2)
            [2 / R6, 0, 2 / R6, 0],
            [1 / 2, 2 / R6, 0, 0],
            [0, 0, 0, 0],
        ]
    )
    assert isinstance(model.similarity, sp.csr_matrix)
    np.testing.assert_allclose(model.similarity.toarray(), expected, rtol=1e-12)


def test_cosine_scores_by_hand() -> None:
    model = ItemKNN().fit(TINY)
    scores = model.score(rows([0], [0, 2], [3], []))
    assert scores.dtype == np.float64
    np.testing.assert_allclose(
        scores,
        [
            [0, 2 / R6, 1 / 2, 0],
            [1 / 2, 4 / R6, 1 / 2, 0],  # row 0 + row 2 of the similarity
            [0, 0, 0, 0],  # item 3 co-occurs with nothing
            [0, 0, 0, 0],  # empty history
        ],
        rtol=1e-12,
    )


def test_shrink_by_hand() -> None:
    model = ItemKNN(shrink=1.0).fit(TINY)
    s01 = 2 / (R6 + 1)
    np.testing.assert_allclose(
        model.similarity.toarray(),
        [[0, s01, 1 / 3, 0], [s01, 0, s01, 0], [1 / 3, s01, 0, 0], [0, 0, 0, 0]],
        rtol=1e-12,
    )


def test_one_neighbour_keeps_ties() -> None:
    model = ItemKNN(neighbours=1).fit(TINY)
    # item 0 keeps item 1 (2/√6 > 1/2); item 1 has items 0 and 2 tied at 2/√6: both kept;
    # item 2 keeps item 1; item 3 has no positive neighbour.
    np.testing.assert_allclose(
        model.similarity.toarray(),
        [[0, 2 / R6, 0, 0], [2 / R6, 0, 2 / R6, 0], [0, 2 / R6, 0, 0], [0, 0, 0, 0]],
        rtol=1e-12,
    )
    np.testing.assert_allclose(model.score(rows([0]))[0], [0, 2 / R6, 0, 0], rtol=1e-12)


def test_counts_and_duplicates_are_one_participation() -> None:
    counted = TINY * 3
    model = ItemKNN().fit(counted)
    np.testing.assert_allclose(model.similarity.toarray(), ItemKNN().fit(TINY).similarity.toarray())
    np.testing.assert_allclose(model.score(rows([0]) * 5), ItemKNN().fit(TINY).score(rows([0])))


def test_co_participated_items_score_higher() -> None:
    for model in (ItemKNN().fit(TINY), Ease(1.0).fit(TINY)):
        scores = model.score(rows([2], [0]))
        # item 1 was taken by both people who took item 2, item 3 by nobody of them
        assert scores[0, 1] > scores[0, 3]
        assert scores[1, 1] > scores[1, 3]
    # item-kNN also counts the weaker link 2–0 (one person); EASE explains item 0 by item 1
    # alone here, so its weight 2 → 0 is zero (the partial correlation, by the closed form)
    assert ItemKNN().fit(TINY).score(rows([2]))[0, 0] > 0
    assert Ease(1.0).fit(TINY).weights[2, 0] == pytest.approx(0, abs=1e-12)


def test_top_k_leaves_the_history_out() -> None:
    model = ItemKNN().fit(TINY)
    indices, scores = model.top_k(rows([0], [1, 2]), k=2)
    assert indices.tolist() == [[1, 2], [0, 3]]
    np.testing.assert_allclose(scores, [[2 / R6, 1 / 2], [2 / R6 + 1 / 2, 0]], rtol=1e-12)
    indices, _ = model.top_k(rows([0]), k=2, exclude_history=False)
    assert indices.tolist() == [[1, 2]]


# --------------------------------------------------------------------------- EASE


def test_ease_two_items_by_hand() -> None:
    # G = XᵀX = [[a, c], [c, b]]; P = (G + λI)⁻¹ = [[b+λ, −c], [−c, a+λ]] / det, so
    # B[0, 1] = −P[0, 1] / P[1, 1] = c / (a + λ) and B[1, 0] = c / (b + λ): the ridge
    # coefficient of item 0 in predicting item 1 is x₀ᵀx₁ / (x₀ᵀx₀ + λ).
    x = sp.csr_matrix(np.array([[1, 1], [1, 0], [1, 1], [0, 1], [1, 0]], dtype=float))
    a, b, c, lam = 4.0, 3.0, 2.0, 0.5
    model = Ease(lam).fit(x)
    np.testing.assert_allclose(model.weights, [[0, c / (a + lam)], [c / (b + lam), 0]])
    np.testing.assert_allclose(model.score(rows([0], [], items=2)), [[0, c / (a + lam)], [0, 0]])


def test_ease_is_the_closed_form() -> None:
    lam = 0.7
    model = Ease(lam).fit(TINY)
    x = TINY.toarray()
    p = np.linalg.inv(x.T @ x + lam * np.eye(4))
    b = np.eye(4) - p @ np.diag(1 / np.diag(p))
    np.testing.assert_allclose(np.diag(b), 0, atol=1e-12)
    np.testing.assert_allclose(model.weights, b, rtol=1e-10, atol=1e-12)
    history = rows([0], [1, 2], [])
    np.testing.assert_allclose(model.score(history), history.toarray() @ b, atol=1e-12)
    assert not np.any(model.score(rows([]))), "an empty history scores zero"


def test_ease_closed_form_random() -> None:
    rng = np.random.default_rng(3)
    x = (rng.random((60, 15)) < 0.2).astype(float)
    lam = 3.0
    p = np.linalg.inv(x.T @ x + lam * np.eye(15))
    b = np.eye(15) - p / np.diag(p)[None, :]
    np.testing.assert_allclose(Ease(lam).fit(sp.csr_matrix(x)).weights, b, atol=1e-10)


# --------------------------------------------------------------------------- order invariance


def random_interactions(seed: int, users: int = 80, items: int = 20) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    popularity = rng.random(items) ** 2
    dense = rng.random((users, items)) < 0.4 * popularity[None, :]
    return sp.csr_matrix(dense.astype(np.float64))


@pytest.mark.parametrize(
    "make", [lambda: ItemKNN(), lambda: ItemKNN(3, 2.0), lambda: Ease(2.0)], ids=str
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_permuting_users_does_not_change_scores(make, seed: int) -> None:  # type: ignore[no-untyped-def]
    x = random_interactions(seed)
    history = random_interactions(seed + 100, users=30)
    order = np.random.default_rng(seed).permutation(x.shape[0])
    np.testing.assert_array_equal(make().fit(x).score(history), make().fit(x[order]).score(history))


@pytest.mark.parametrize(
    "make", [lambda: ItemKNN(), lambda: ItemKNN(3, 2.0), lambda: Ease(2.0)], ids=str
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_permuting_items_permutes_scores(make, seed: int) -> None:  # type: ignore[no-untyped-def]
    x = random_interactions(seed)
    history = random_interactions(seed + 100, users=30)
    perm = np.random.default_rng(seed).permutation(x.shape[1])
    plain = make().fit(x).score(history)
    permuted = make().fit(x[:, perm]).score(history[:, perm])
    np.testing.assert_allclose(permuted, plain[:, perm], rtol=1e-9, atol=1e-12)


def test_neighbour_ties_do_not_depend_on_item_order() -> None:
    # items 0 and 2 tie as neighbours of item 1: whichever comes first, both are kept
    perm = np.array([2, 1, 0, 3])
    plain = ItemKNN(1).fit(TINY).similarity.toarray()
    permuted = ItemKNN(1).fit(TINY[:, perm]).similarity.toarray()
    np.testing.assert_array_equal(permuted, plain[np.ix_(perm, perm)])


# --------------------------------------------------------------------------- refusals


def test_refusals() -> None:
    with pytest.raises(InvalidInput, match="scipy sparse"):
        ItemKNN().fit(TINY.toarray())  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="negative"):
        Ease(1.0).fit(TINY * -1)
    nan = TINY.copy()
    nan.data[0] = np.nan
    with pytest.raises(InvalidInput, match="finite"):
        ItemKNN().fit(nan)
    with pytest.raises(InvalidInput, match="4 item columns but the model was fitted on 3"):
        Ease(1.0).fit(TINY[:, :3]).score(TINY)
    with pytest.raises(InvalidInput, match="not fitted"):
        Ease(1.0).score(TINY)
    with pytest.raises(InvalidInput, match="l2"):
        Ease(0.0)
    with pytest.raises(InvalidInput, match="neighbours"):
        ItemKNN(0)
    with pytest.raises(InvalidInput, match="shrink"):
        ItemKNN(shrink=-1.0)
    with pytest.raises(TooLarge, match="5 items is more than the 4"):
        Ease(1.0, max_items=4).fit(sp.csr_matrix((3, 5)))
    with pytest.raises(TooLarge):
        ItemKNN(max_items=4).fit(sp.csr_matrix((3, 5)))
    with pytest.raises(InvalidInput, match="two or more items"):
        tune_ease(rows([0], [1], [2], [3]), seed=1)
    with pytest.raises(InvalidInput, match="neighbours"):
        ItemKNN(2.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="neighbours"):
        ItemKNN(True)
    with pytest.raises(InvalidInput, match="l2"):
        Ease("1")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="l2"):
        Ease(float("nan"))
    with pytest.raises(InvalidInput, match="not fitted"):
        _ = ItemKNN().similarity
    with pytest.raises(InvalidInput, match="k must be an integer"):
        ItemKNN().fit(TINY).top_k(TINY, 0)
    with pytest.raises(InvalidInput, match="hidden"):
        hit_rate(np.zeros((2, 4)), rows([0], [1]), np.array([1]))
    with pytest.raises(InvalidInput, match="not one of the 4 item columns"):
        hit_rate(np.zeros((2, 4)), rows([0], [1]), np.array([1, 4]))
    with pytest.raises(InvalidInput, match="factor of the λ grid"):
        ease_validation(TINY, seed=1, grid=(1.0, -1.0))
    with pytest.raises(InvalidInput, match="empty"):
        tune_item_knn(TINY, seed=1, neighbours=())


# --------------------------------------------------------------------------- validation, tuning


def test_hit_rate_by_hand() -> None:
    scores = np.array(
        [
            [5.0, 4.0, 3.0, 2.0],  # history {0}; hidden 2 is second of {1, 2, 3}: hit@1 = 0
            [1.0, 1.0, 1.0, 1.0],  # history {3}; hidden 0 ties with 1 and 2: hit@1 = 1/3
            [0.0, 9.0, 1.0, 2.0],  # history {1}; hidden 3 is first of {0, 2, 3}: hit@1 = 1
        ]
    )
    history = rows([0], [3], [1])
    hidden = np.array([2, 0, 3])
    assert hit_rate(scores, history, hidden, k=1) == pytest.approx((0 + 1 / 3 + 1) / 3)
    assert hit_rate(scores, history, hidden, k=2) == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert scores[0, 0] == 5.0, "the caller's scores are left untouched"


def test_validation_split_is_seeded_and_hides_one_item() -> None:
    x = random_interactions(5, users=200)
    split = validation_split(x, seed=7)
    again = validation_split(x, seed=7)
    assert (split.history != again.history).nnz == 0
    np.testing.assert_array_equal(split.hidden, again.hidden)
    assert split.train.shape[0] + 40 == 200  # 20 % of the rows validate

    def items_of(matrix: sp.csr_matrix) -> list[tuple[int, ...]]:
        bounds = zip(matrix.indptr[:-1], matrix.indptr[1:], strict=True)
        return [tuple(matrix.indices[a:b].tolist()) for a, b in bounds]

    original = items_of(x)
    # every training row is a row of x; every validation row is a row of x with ≥ 2 items, one
    # of them hidden, the others kept as its history; rows are used once
    rebuilt = [
        tuple(sorted((*kept, int(hidden))))
        for kept, hidden in zip(items_of(split.history), split.hidden, strict=True)
    ]
    assert all(len(row) >= 2 for row in rebuilt)
    used = items_of(split.train) + rebuilt
    for row in set(used):
        assert used.count(row) <= original.count(row)
    other = validation_split(x, seed=8)
    assert not np.array_equal(split.hidden, other.hidden)


def planted_clusters(seed: int, users: int = 1500) -> sp.csr_matrix:
    """60 items in 6 clusters of 10; each user takes 2–5 items of one cluster (skewed inside
    it) and sometimes one globally popular item; 6 blockbusters are popular across clusters."""
    rng = np.random.default_rng(seed)
    items, clusters = 60, 6
    dense = np.zeros((users, items))
    inner = np.linspace(2.0, 1.0, 10)
    inner /= inner.sum()
    global_pop = np.zeros(items)
    global_pop[::10] = 1  # item 0 of each cluster is also a global favourite
    global_pop /= global_pop.sum()
    for user in range(users):
        cluster = rng.integers(clusters)
        taken = rng.choice(10, size=rng.integers(2, 6), replace=False, p=inner)
        dense[user, cluster * 10 + taken] = 1
        if rng.random() < 0.5:
            dense[user, rng.choice(items, p=global_pop)] = 1
    return sp.csr_matrix(dense)


def test_tune_ease_picks_from_the_grid_and_beats_popularity() -> None:
    x = planted_clusters(11)
    lam = tune_ease(x, seed=4)
    factors = np.array(EASE_GRID)
    scale = ease_l2_scale(x)
    assert np.isclose(factors * scale, lam).sum() == 1
    assert tune_ease(x, seed=4) == lam, "deterministic for a seed"
    results = ease_validation(x, seed=4)
    assert results[float(factors[np.isclose(factors * scale, lam)][0])] == max(results.values())
    popularity = popularity_hit_rate(validation_split(x, seed=4))
    assert max(results.values()) > popularity + 0.2, (results, popularity)


def test_tune_item_knn_picks_from_the_grid_and_beats_popularity() -> None:
    x = planted_clusters(12)
    params = tune_item_knn(x, seed=4)
    assert isinstance(params, ItemKNNParams)
    assert params.neighbours in KNN_NEIGHBOURS_GRID
    assert params.shrink in KNN_SHRINK_GRID
    results = item_knn_validation(x, seed=4)
    assert results[params] == max(results.values())
    popularity = popularity_hit_rate(validation_split(x, seed=4))
    assert results[params] > popularity + 0.2, (results[params], popularity)
    model = params.model().fit(x)
    assert isinstance(model, ItemKNN)
    assert model.neighbours == params.neighbours


def test_tuned_lambda_matters() -> None:
    # the validation hit rate varies along the grid, so choosing λ is a real choice
    results = ease_validation(planted_clusters(13), seed=2)
    assert max(results.values()) > min(results.values())


def test_split_and_tuning_do_not_depend_on_user_order() -> None:
    x = planted_clusters(14, users=600)
    order = np.random.default_rng(0).permutation(x.shape[0])
    split, shuffled = validation_split(x, seed=3), validation_split(x[order], seed=3)
    assert (split.train != shuffled.train).nnz == 0
    assert (split.history != shuffled.history).nnz == 0
    np.testing.assert_array_equal(split.hidden, shuffled.hidden)
    assert ease_validation(x, seed=3) == ease_validation(x[order], seed=3)
    assert tune_item_knn(x, seed=3) == tune_item_knn(x[order], seed=3)


def test_ease_validation_is_fitting_on_the_training_part() -> None:
    x = planted_clusters(15, users=500)
    split = validation_split(x, seed=9)
    scale = ease_l2_scale(split.train)
    results = ease_validation(x, seed=9, grid=(0.1, 10.0))
    for factor, hit in results.items():
        scores = Ease(factor * scale).fit(split.train).score(split.history)
        # the validation ranks in float32: equal but for near ties
        assert hit == pytest.approx(hit_rate(scores, split.history, split.hidden), abs=0.01)
    knn = item_knn_validation(x, seed=9, neighbours=(3,), shrink=(10.0,))
    scores = ItemKNN(3, 10.0).fit(split.train).score(split.history)
    assert knn[ItemKNNParams(3, 10.0)] == pytest.approx(
        hit_rate(scores, split.history, split.hidden), abs=0.01
    )


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda items: st.tuples(
            st.lists(
                st.lists(st.booleans(), min_size=items, max_size=items), min_size=1, max_size=15
            ),
            st.permutations(range(items)),
        )
    ),
    st.randoms(use_true_random=False),
    st.sampled_from(["knn", "knn2", "ease"]),
)
def test_ranking_does_not_depend_on_input_order(data, rand, kind) -> None:  # type: ignore[no-untyped-def]
    matrix, perm = data
    x = sp.csr_matrix(np.array(matrix, dtype=np.float64))
    users = list(range(x.shape[0]))
    rand.shuffle(users)
    perm = np.array(perm)

    def make() -> ItemKNN | Ease:
        return {"knn": ItemKNN(), "knn2": ItemKNN(2, 1.0), "ease": Ease(0.5)}[kind]

    plain = make().fit(x).score(x)
    np.testing.assert_array_equal(make().fit(x[users]).score(x), plain)
    permuted = make().fit(x[users][:, perm]).score(x[:, perm])
    np.testing.assert_allclose(permuted, plain[:, perm], rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 15).flatmap(
        lambda items: st.tuples(
            st.lists(
                st.lists(st.booleans(), min_size=items, max_size=items), min_size=1, max_size=12
            ),
            st.integers(1, items + 2),
        )
    ),
    st.booleans(),
)
def test_top_k_is_the_stable_sort(data, exclude) -> None:  # type: ignore[no-untyped-def]
    matrix, k = data
    x = sp.csr_matrix(np.array(matrix, dtype=np.float64))
    model = ItemKNN(1).fit(x)  # one neighbour: many equal scores
    indices, scores = model.top_k(x, k, exclude_history=exclude)
    full = model.score(x)
    if exclude:
        full[x.toarray() > 0] = -np.inf
    expected = np.argsort(-full, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_array_equal(scores, np.take_along_axis(full, expected, axis=1))
