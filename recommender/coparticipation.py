"""Co-participation: "people who took part in this also took part in".

Two item-to-item models learned from a users × items matrix of participations (a stored value
above zero means the user took part; the count is ignored), pure numpy / scipy, no database:

- :class:`ItemKNN`, cosine co-participation: ``sim(i, j) = |U_i ∩ U_j| / (√|U_i| √|U_j| + shrink)``
  with ``U_i`` the users who took part in item ``i``, each item keeping its ``neighbours`` most
  similar items (all items tied with the last one kept, so the model does not depend on the
  order of the columns);
- :class:`Ease`, Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data": the closed
  form ``B = I − P · diag(1 / diag P)`` with ``P = (XᵀX + λI)⁻¹``, so that ``diag B = 0``.

Both score a batch of histories as ``history @ W`` (``(n, items)`` float64); the items of the
history itself are *not* masked there (:meth:`ItemModel.top_k` does). Both build a dense
item × item matrix, refused with :class:`~contracts.errors.TooLarge` above ``max_items``
(20,000 by default: 3.2 GB in float64).

Tuning (:func:`tune_ease`, :func:`tune_item_knn`) uses only the rows it is given (the caller
passes its training users): a seeded 80/20 split of those rows, one item hidden at random from
each validation row with at least two items, the rest kept as its history, and the hit rate at
10 of the hidden item among the items outside the history (ties counted as the expectation of a
random tie-break, so that a constant scorer gets the chance rate, not 0 or 1). The split orders
the rows by a seeded hash of their item sets first, so the tuned values do not depend on the
order in which the users come either. The grids:

- EASE: λ = factor × the mean diagonal of XᵀX (mean participations per item, so that one grid
  fits a city of 7,000 voters and one of 70,000), factors on a half-decade log grid from 0.003
  to 100 (:data:`EASE_GRID`); all λ of the grid come from one eigendecomposition of XᵀX;
- item-kNN: neighbours kept per item in 5, 10, 20, 50, 100 or all, × shrink in 0, 10, 30,
  100, 300, 1000 participations (:data:`KNN_NEIGHBOURS_GRID`, :data:`KNN_SHRINK_GRID`).

Measured on 2 shared cores (Warsaw 2026, 72,524 voters × 1,373 projects): EASE fit 0.4–1.2 s,
scores for 13,700 users 0.2–0.8 s, tuning 6–12 s each; item-kNN fit 0.1–0.4 s (the spread is the
load of the machine; see :func:`_one_blas_thread`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.linalg
import scipy.sparse as sp
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no py.typed

from contracts.errors import InvalidInput, TooLarge

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
AnyFloatArray = npt.NDArray[np.floating[Any]]

DEFAULT_MAX_ITEMS = 20_000
"""Above this many items a dense item × item matrix is refused (configurable per model)."""

EASE_GRID: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
"""λ of EASE as multiples of the mean diagonal of XᵀX (the mean item count), a log grid."""

KNN_NEIGHBOURS_GRID: tuple[int | None, ...] = (5, 10, 20, 50, 100, None)
"""Neighbours kept per item for item-kNN (``None``: all of them)."""

KNN_SHRINK_GRID: tuple[float, ...] = (0.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
"""Shrink of the cosine denominator for item-kNN, in participations."""

VALIDATION_FRACTION = 0.2
HIT_K = 10
_CHUNK_ROWS = 4096


# --------------------------------------------------------------------------- input checks


def participations(
    matrix: Any, *, what: str = "interactions", items: int | None = None
) -> sp.csr_matrix:
    """``matrix`` as a canonical binary float64 CSR matrix (1 where the user took part).

    Refuses with :class:`InvalidInput` anything but a 2-D scipy sparse matrix of finite,
    non-negative numbers (and, when ``items`` is given, one with another number of columns).
    """
    if not sp.issparse(matrix):
        raise InvalidInput(
            f"{what} must be a scipy sparse matrix (users × items), not {type(matrix).__name__}"
        )
    if matrix.ndim != 2:
        raise InvalidInput(f"{what} must be 2-D (users × items), not {matrix.ndim}-D")
    if matrix.dtype.kind not in "biuf":
        raise InvalidInput(f"{what} must hold numbers, not {matrix.dtype}")
    csr = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    if items is not None and csr.shape[1] != items:
        raise InvalidInput(
            f"{what} has {csr.shape[1]} item columns but the model was fitted on {items}"
        )
    if not np.all(np.isfinite(csr.data)):
        raise InvalidInput(f"{what} holds a value that is not a finite number")
    if np.any(csr.data < 0):
        raise InvalidInput(f"{what} holds a negative value (1 = took part, 0 = did not)")
    csr.sum_duplicates()
    csr.eliminate_zeros()
    csr.data[:] = 1.0
    return csr


def _check_items(n_items: int, max_items: int) -> None:
    if n_items > max_items:
        raise TooLarge(
            f"{n_items} items is more than the {max_items} a dense item × item matrix is "
            "allowed here (raise max_items if the memory is there)"
        )


def _gram(x: sp.csr_matrix) -> FloatArray:
    """XᵀX as a dense float64 matrix: co-participation counts, item counts on the diagonal.

    Sums of ones are exact in float64, so the result does not depend on the row order.
    """
    gram = (x.T @ x).toarray()
    return np.ascontiguousarray(gram, dtype=np.float64)


# --------------------------------------------------------------------------- models


class ItemModel:
    """What both models share: a dense item × item weight matrix and a way to use it."""

    max_items: int
    _weights: FloatArray | None

    def __init__(self, max_items: int = DEFAULT_MAX_ITEMS) -> None:
        self.max_items = _whole(max_items, "max_items")
        self._weights = None

    @property
    def n_items(self) -> int:
        """Number of items (columns) of the fitted model."""
        return int(self._fitted().shape[0])

    def _fitted(self) -> FloatArray:
        if self._weights is None:
            raise InvalidInput(f"{type(self).__name__} is not fitted: call fit() first")
        return self._weights

    def score(self, history: sp.csr_matrix) -> FloatArray:
        """Scores ``(n, items)`` of every item for each of the ``n`` histories (users × items).

        An empty history scores zero everywhere. The history's own items are not masked.
        """
        weights = self._fitted()
        rows = participations(history, what="history", items=weights.shape[0])
        return np.asarray(rows @ weights, dtype=np.float64)

    def top_k(
        self, history: sp.csr_matrix, k: int, *, exclude_history: bool = True
    ) -> tuple[IntArray, FloatArray]:
        """The ``k`` best items per history: ``(indices, scores)``, each ``(n, k)``.

        Items of the history are left out (score ``-inf`` if fewer than ``k`` remain) unless
        ``exclude_history`` is false. Equal scores are ordered by column index. Works in
        chunks of rows, so ``n`` may be large.
        """
        weights = self._fitted()
        k = _whole(k, "k")
        rows = participations(history, what="history", items=weights.shape[0])
        k = min(k, weights.shape[0])
        indices = np.empty((rows.shape[0], k), dtype=np.int64)
        scores = np.empty((rows.shape[0], k), dtype=np.float64)
        for start, chunk in _chunks(rows):
            block = np.asarray(chunk @ weights, dtype=np.float64)
            if exclude_history:
                _mask(block, chunk)
            order = _best(block, k)
            indices[start : start + chunk.shape[0]] = order
            scores[start : start + chunk.shape[0]] = np.take_along_axis(block, order, axis=1)
        return indices, scores


def _best(block: FloatArray, k: int) -> IntArray:
    """Column indices of the ``k`` largest values per row, best first, equal values in column
    order: ``argsort(-block, kind="stable")[:, :k]`` without sorting whole rows."""
    n, width = block.shape
    if k >= width:
        full: IntArray = np.argsort(-block, axis=1, kind="stable").astype(np.int64)
        return full
    kth = -np.partition(-block, k - 1, axis=1)[:, k - 1 : k]  # the k-th largest value
    above = block > kth
    level = block == kth
    # of the values equal to the k-th, the first ones by column fill the places left
    room = k - np.count_nonzero(above, axis=1, keepdims=True)
    keep = above | (level & (np.cumsum(level, axis=1) <= room))
    chosen = np.nonzero(keep)[1].reshape(n, k)  # row-major: each row's k columns, ascending
    values = np.take_along_axis(block, chosen, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    best: IntArray = np.take_along_axis(chosen, order, axis=1).astype(np.int64)
    return best


class ItemKNN(ItemModel):
    """Cosine co-participation: "people who took part in this also took part in".

    ``similarity`` (items × items CSR, zero diagonal) keeps, in row ``i``, the ``neighbours``
    items most similar to ``i`` with a positive similarity (every item tied with the last kept
    one too); a history scores item ``j`` with the sum of ``similarity[i, j]`` over its items.
    """

    neighbours: int | None
    shrink: float
    _similarity: sp.csr_matrix | None = None

    def __init__(
        self,
        neighbours: int | None = None,
        shrink: float = 0.0,
        *,
        max_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        super().__init__(max_items)
        _check_knn(neighbours, shrink)
        self.neighbours = neighbours
        self.shrink = float(shrink)

    def fit(self, interactions: sp.csr_matrix) -> ItemKNN:
        """Learn the similarities from ``interactions`` (users × items, 1 = took part)."""
        x = participations(interactions)
        _check_items(x.shape[1], self.max_items)
        return self._fit_gram(_gram(x))

    def _fit_gram(self, gram: FloatArray) -> ItemKNN:
        dense = _prune(_cosine(gram, self.shrink), self.neighbours)
        self._weights = dense
        self._similarity = sp.csr_matrix(dense)
        return self

    @property
    def similarity(self) -> sp.csr_matrix:
        """The kept similarities, items × items CSR, zero diagonal (not symmetric once pruned)."""
        self._fitted()
        assert self._similarity is not None  # set with the weights
        return self._similarity


def _check_knn(neighbours: int | None, shrink: float) -> None:
    if neighbours is not None:
        _whole(neighbours, "neighbours (or None for all)")
    _number(shrink, "shrink", minimum=0.0, strict=False)


def _whole(value: object, name: str) -> int:
    """``value`` as an int, refused unless it is an integer ≥ 1."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidInput(f"{name} must be an integer ≥ 1, not {value!r}")
    return int(value)


def _number(value: object, name: str, *, minimum: float, strict: bool) -> float:
    """``value`` as a float, refused unless finite and above (or at, if not ``strict``)
    ``minimum``."""
    bound = f"> {minimum:g}" if strict else f"≥ {minimum:g}"
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InvalidInput(f"{name} must be a finite number {bound}, not {value!r}")
    number = float(value)
    if not np.isfinite(number) or number < minimum or (strict and number == minimum):
        raise InvalidInput(f"{name} must be a finite number {bound}, not {value!r}")
    return number


def _cosine(gram: FloatArray, shrink: float) -> FloatArray:
    norms = np.sqrt(np.diag(gram))
    denominator = np.outer(norms, norms)
    denominator += shrink
    similarity = np.zeros_like(gram)
    np.divide(gram, denominator, out=similarity, where=denominator > 0)
    np.fill_diagonal(similarity, 0.0)
    return similarity


def _prune(similarity: FloatArray, neighbours: int | None) -> FloatArray:
    """Keep per row the ``neighbours`` largest positive values, ties with the last included."""
    n = similarity.shape[0]
    if neighbours is None or neighbours >= n - 1:
        return np.where(similarity > 0, similarity, 0.0)
    kth = -np.partition(-similarity, neighbours - 1, axis=1)[:, neighbours - 1]
    keep = (similarity >= kth[:, None]) & (similarity > 0)
    return np.where(keep, similarity, 0.0)


class Ease(ItemModel):
    """Steck's EASE: the item × item ``weights`` B of a ridge regression of each item on the
    others, with ``diag B = 0``; λ (``l2``) in participations, see :func:`tune_ease`."""

    l2: float

    def __init__(self, l2: float, *, max_items: int = DEFAULT_MAX_ITEMS) -> None:
        super().__init__(max_items)
        self.l2 = _number(l2, "l2 (λ of EASE)", minimum=0.0, strict=True)

    @property
    def weights(self) -> FloatArray:
        """B, items × items, zero diagonal: score of item j = Σ over the history of B[i, j]."""
        return self._fitted()

    def fit(self, interactions: sp.csr_matrix) -> Ease:
        """Learn B from ``interactions`` (users × items, 1 = took part)."""
        x = participations(interactions)
        _check_items(x.shape[1], self.max_items)
        regularised = _gram(x)
        regularised[np.diag_indices_from(regularised)] += self.l2
        # XᵀX + λI is symmetric positive definite: its Cholesky factor inverts it.
        with _one_blas_thread():
            factor = scipy.linalg.cho_factor(regularised, overwrite_a=True, check_finite=False)
            precision = scipy.linalg.cho_solve(
                factor, np.eye(x.shape[1]), overwrite_b=True, check_finite=False
            )
        self._weights = _ease_weights(precision)
        return self


def _ease_weights(precision: FloatArray) -> FloatArray:
    """B = I − P diag(1 / diag P), in place of P."""
    precision /= -np.diag(precision)[None, :]
    np.fill_diagonal(precision, 0.0)
    return np.ascontiguousarray(precision)


def _ease_path(gram: FloatArray, l2s: Sequence[float]) -> Iterator[FloatArray]:
    """B for each λ of ``l2s`` from one eigendecomposition XᵀX = Q Λ Qᵀ: then
    P = Q (Λ + λI)⁻¹ Qᵀ is one matrix product per λ instead of one inversion."""
    with _one_blas_thread():
        eigenvalues, vectors = scipy.linalg.eigh(gram, driver="evd", check_finite=False)
    np.clip(eigenvalues, 0.0, None, out=eigenvalues)  # XᵀX is positive semi-definite
    for l2 in l2s:
        with _one_blas_thread():
            precision = (vectors / (eigenvalues + l2)[None, :]) @ vectors.T
        yield _ease_weights(precision)


def _one_blas_thread() -> Any:
    """BLAS limited to one thread, for the dense algebra of this module.

    On cores shared with other processes (this engine's API, consumers, batch scoring) OpenBLAS
    threads stall each other: measured on 2 busy cores with Warsaw's 1,373 items, the EASE fit
    took 2.8–4.8 s on two threads and 0.6–0.9 s on one, the eigendecomposition 7–30 s against
    1.2–2.4 s. Alone on 2 cores, one thread costs at most twice a sub-second step.
    """
    return threadpool_limits(limits=1, user_api="blas")


def ease_l2_scale(interactions: sp.csr_matrix) -> float:
    """The mean diagonal of XᵀX (mean participations per item), the unit of :data:`EASE_GRID`."""
    x = participations(interactions)
    if x.shape[1] == 0:
        raise InvalidInput("interactions has no item column")
    return max(float(x.nnz) / float(x.shape[1]), 1.0)


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class ValidationSplit:
    """A seeded split of the given rows: ``train`` rows to fit on; for each validation row with
    at least two items, its ``history`` (all but one item) and the ``hidden`` item."""

    train: sp.csr_matrix
    history: sp.csr_matrix
    hidden: IntArray


def validation_split(
    interactions: sp.csr_matrix, seed: int, fraction: float = VALIDATION_FRACTION
) -> ValidationSplit:
    """Split the rows ``fraction`` / rest at random (``seed``) and hide one item per
    validation row that has at least two; refused if no such row is left to validate on."""
    if not 0 < fraction < 1:
        raise InvalidInput(f"the validation fraction must lie strictly between 0 and 1: {fraction}")
    x = participations(interactions)
    rng = np.random.default_rng(seed)
    x = x[_canonical_rows(x, rng)]
    n_rows = x.shape[0]
    n_validation = round(n_rows * fraction)
    order = rng.permutation(n_rows)
    validation = np.sort(order[:n_validation])
    train = np.sort(order[n_validation:])
    held = x[validation]
    lengths = np.diff(held.indptr)
    eligible = lengths >= 2
    held = held[eligible]
    lengths = lengths[eligible]
    if held.shape[0] == 0 or train.size == 0:
        raise InvalidInput(
            f"cannot tune on {n_rows} users: the validation part needs at least one user with "
            "two or more items, and the training part one user"
        )
    offsets = np.floor(rng.random(held.shape[0]) * lengths).astype(np.int64)
    positions = held.indptr[:-1] + offsets
    hidden = held.indices[positions].astype(np.int64)
    kept = held.copy()
    kept.data[positions] = 0.0
    kept.eliminate_zeros()
    return ValidationSplit(train=x[train], history=kept, hidden=hidden)


def _canonical_rows(x: sp.csr_matrix, rng: np.random.Generator) -> IntArray:
    """An order of the rows that depends on their contents only, not on the input order.

    Each row is keyed by two 64-bit sums (wrapping) of random weights of its items, a hash of
    the item set; rows with equal keys are (but for a 2⁻¹²⁸ chance) equal rows, whose relative
    order changes nothing. So a split of these rows is the same however the users come.
    """
    weights = rng.integers(0, np.iinfo(np.uint64).max, size=(2, x.shape[1]), dtype=np.uint64)
    row_of = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    keys = np.zeros((2, x.shape[0]), dtype=np.uint64)
    for key, weight in zip(keys, weights, strict=True):
        np.add.at(key, row_of, weight[x.indices])
    order: IntArray = np.lexsort((keys[1], keys[0])).astype(np.int64)
    return order


def hit_rate(scores: FloatArray, history: sp.csr_matrix, hidden: IntArray, k: int = HIT_K) -> float:
    """Mean hit@k of the ``hidden`` items given ``scores`` ``(n, items)``, history items left
    out, ties counted as the expected hit of a random tie-break (0 for no user)."""
    scores = np.asarray(scores, dtype=np.float64)
    hidden = np.asarray(hidden)
    if scores.ndim != 2 or hidden.shape != (scores.shape[0],):
        raise InvalidInput(
            f"scores {scores.shape} must be (users, items) with one hidden item per user "
            f"({hidden.shape})"
        )
    if hidden.size and (hidden.min() < 0 or hidden.max() >= scores.shape[1]):
        raise InvalidInput(f"a hidden item is not one of the {scores.shape[1]} item columns")
    rows = participations(history, what="history", items=scores.shape[1])
    if rows.shape[0] != scores.shape[0]:
        raise InvalidInput(f"history has {rows.shape[0]} users but scores {scores.shape[0]}")
    return float(np.mean(_hits(scores.copy(), rows, hidden, k))) if hidden.size else 0.0


def _hits(block: AnyFloatArray, history: sp.csr_matrix, hidden: IntArray, k: int) -> FloatArray:
    _mask(block, history)
    target = block[np.arange(block.shape[0]), hidden]
    greater = np.count_nonzero(block > target[:, None], axis=1)
    ties = np.count_nonzero(block == target[:, None], axis=1) - 1
    hits: FloatArray = np.clip((k - greater) / (ties + 1), 0.0, 1.0)
    return hits


def _mask(block: AnyFloatArray, history: sp.csr_matrix) -> None:
    rows = np.repeat(np.arange(history.shape[0]), np.diff(history.indptr))
    block[rows, history.indices] = -np.inf


def _chunks(rows: sp.csr_matrix) -> Iterator[tuple[int, sp.csr_matrix]]:
    for start in range(0, rows.shape[0], _CHUNK_ROWS):
        yield start, rows[start : start + _CHUNK_ROWS]


def _validate(
    weights: FloatArray | Callable[[sp.csr_matrix], FloatArray],
    split: ValidationSplit,
    k: int = HIT_K,
) -> float:
    """Hit rate at ``k`` on ``split`` of a weight matrix (used in float32, twice as fast and
    precise enough to rank) or of any scorer of histories."""
    single = weights.astype(np.float32) if isinstance(weights, np.ndarray) else None
    total = 0.0
    for start, chunk in _chunks(split.history):
        if single is not None:
            block = np.asarray(chunk.astype(np.float32) @ single)
        else:
            block = weights(chunk)  # type: ignore[operator]
        hidden = split.hidden[start : start + chunk.shape[0]]
        total += float(np.sum(_hits(block, chunk, hidden, k)))
    return total / split.hidden.size


def popularity_hit_rate(split: ValidationSplit, k: int = HIT_K) -> float:
    """Hit rate at ``k`` on ``split`` of ranking by the number of training participations."""
    counts = np.asarray(split.train.sum(axis=0), dtype=np.float64).ravel()
    return _validate(lambda chunk: np.tile(counts, (chunk.shape[0], 1)), split, k)


def ease_validation(
    interactions: sp.csr_matrix,
    seed: int,
    grid: Sequence[float] = EASE_GRID,
    *,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> dict[float, float]:
    """Validation hit@10 of EASE for each factor of ``grid`` (λ = factor × the mean item
    count of the training part)."""
    if not grid:
        raise InvalidInput("the λ grid of EASE is empty")
    for factor in grid:
        _number(factor, "a factor of the λ grid of EASE", minimum=0.0, strict=True)
    split = validation_split(interactions, seed)
    _check_items(split.train.shape[1], max_items)
    scale = ease_l2_scale(split.train)
    path = _ease_path(_gram(split.train), [float(factor) * scale for factor in grid])
    return {
        float(factor): _validate(weights, split) for factor, weights in zip(grid, path, strict=True)
    }


def tune_ease(
    interactions: sp.csr_matrix,
    seed: int,
    grid: Sequence[float] = EASE_GRID,
    *,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> float:
    """λ of EASE for ``interactions``: the factor of ``grid`` with the best validation hit@10
    (the first in grid order on a tie) times the mean item count of ``interactions``."""
    results = ease_validation(interactions, seed, grid, max_items=max_items)
    best = max(results, key=lambda factor: results[factor])
    return best * ease_l2_scale(interactions)


@dataclass(frozen=True)
class ItemKNNParams:
    """Tuned parameters of :class:`ItemKNN`."""

    neighbours: int | None
    shrink: float

    def model(self, *, max_items: int = DEFAULT_MAX_ITEMS) -> ItemKNN:
        """An unfitted :class:`ItemKNN` with these parameters."""
        return ItemKNN(self.neighbours, self.shrink, max_items=max_items)


def item_knn_validation(
    interactions: sp.csr_matrix,
    seed: int,
    neighbours: Sequence[int | None] = KNN_NEIGHBOURS_GRID,
    shrink: Sequence[float] = KNN_SHRINK_GRID,
    *,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> dict[ItemKNNParams, float]:
    """Validation hit@10 of item-kNN for each pair of ``neighbours`` × ``shrink``."""
    if not neighbours or not shrink:
        raise InvalidInput("the item-kNN grid is empty")
    split = validation_split(interactions, seed)
    _check_items(split.train.shape[1], max_items)
    gram = _gram(split.train)
    results: dict[ItemKNNParams, float] = {}
    for s in shrink:
        for n in neighbours:
            _check_knn(n, s)
    for s in shrink:
        cosine = _cosine(gram, float(s))
        for n in neighbours:
            results[ItemKNNParams(n, float(s))] = _validate(_prune(cosine, n), split)
    return results


def tune_item_knn(
    interactions: sp.csr_matrix,
    seed: int,
    neighbours: Sequence[int | None] = KNN_NEIGHBOURS_GRID,
    shrink: Sequence[float] = KNN_SHRINK_GRID,
    *,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> ItemKNNParams:
    """The ``neighbours`` × ``shrink`` pair with the best validation hit@10 (the first in grid
    order, shrink outer, on a tie)."""
    results = item_knn_validation(interactions, seed, neighbours, shrink, max_items=max_items)
    return max(results, key=lambda params: results[params])
