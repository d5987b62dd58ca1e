"""The learned ranker: training examples from engagement, a logistic regression, its scorer.

Training examples come from the same stages as a ranking (:mod:`recommender.ranking`): each
group's features are computed once (:func:`features.group_features`), and each of its users
contributes every positive candidate (label 1: what they took part in during the training
window) and ``negatives`` candidates drawn at random, seeded, among the others (label 0), never
among what a ranking excludes anyway (already joined, dismissed, a full ballot): a project the
user could not be shown teaches nothing about what they would choose.

The model is scikit-learn's ``LogisticRegression`` over ``StandardScaler``-ed features, a
linear function of the features like the weighted scorer's, so it scores through the same
:class:`scorers.LinearScorer`: weight = coefficient / scale, centre = the training mean. The
scores equal the pipeline's ``decision_function`` less its intercept (a constant, which no
ranking sees), up to float32 rounding.

Its metrics (ROC AUC, log loss) are measured on a seeded held-out 20 % of the rows, stratified
by label; the model kept is the one fitted on the other 80 %, so the metrics are its own.
Saving and loading, with the checks a file from disk deserves: :mod:`recommender.model_file`.

``class_weight``: unweighted by default. Measured on the synthetic engagement of
``tests/test_learned.py`` (three seeds, 6 negatives per user, 64 % positive rows): "balanced"
gave the same held-out ROC AUC (0.772 / 0.808 / 0.780 both ways, to ±0.0003) and a worse log
loss (0.568 against 0.544, 0.528 / 0.506, 0.559 / 0.527); it moves the intercept, which no
ranking sees, and the weights by under 1 %.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from contracts.errors import InvalidInput
from recommender.facts import CandidateGroup, Items, Users
from recommender.features import FEATURES, group_features
from recommender.ranking import exclusions
from recommender.scorers import LinearScorer

HELD_OUT = 0.2
MIN_PER_LABEL = 5  # fewer positives or negatives than this: nothing to learn or to measure

ClassWeight = Literal["balanced"] | None
Window = tuple[datetime, datetime] | str


#: Features that are a user's controls, not preferences to learn: their weight is fixed ("moins
#: de ce thème" always sinks the theme, as the weighted scorer's file has it).
CONTROLS: dict[str, float] = {"theme_muted": -3.0}


def training_examples(
    items: Items,
    users: Users,
    groups: Iterable[CandidateGroup],
    positives: sparse.csr_matrix,
    coparticipation: sparse.csr_matrix | npt.NDArray[np.float32] | None,
    *,
    negatives: int,
    seed: int,
) -> tuple[
    npt.NDArray[np.float32], npt.NDArray[np.int8], npt.NDArray[np.int64], npt.NDArray[np.int64]
]:
    """Rows (X, y, groups_of_rows, users_of_rows) for :func:`train` (see the module);
    ``users_of_rows`` are rows of ``users``, for :func:`pairwise`.

    ``positives``: (m, n) over :class:`Users` × :class:`Items`, > 0 where the user took part.
    They are the caller's to keep out of ``users.history`` if the features must not see the
    label (a leave-out split); a positive is a positive even when a ranking would exclude it,
    and gives a row only when it is one of the user's group's candidates (features exist only
    for those). A user with no positive still gives negatives.
    ``negatives``: how many non-positive candidates to draw per user (all of them when fewer).
    Same inputs and seed, same rows; one loop per group, array operations inside it.
    """
    if isinstance(negatives, bool) or not isinstance(negatives, int) or negatives < 0:
        raise InvalidInput(f"negatives must be a non-negative integer, not {negatives!r}")
    check_seed(seed)
    if positives.shape != (len(users), len(items)):
        raise InvalidInput(
            f"positives must be users × items, {len(users)} × {len(items)}, "
            f"not {positives.shape[0]} × {positives.shape[1]}"
        )
    positives = sparse.csr_matrix(positives)
    rng = np.random.default_rng(seed)
    xs: list[npt.NDArray[np.float32]] = []
    ys: list[npt.NDArray[np.int8]] = []
    gs: list[npt.NDArray[np.int64]] = []
    us: list[npt.NDArray[np.int64]] = []
    for g, group in enumerate(groups):
        m, n_c = len(group.users), len(group.items)
        if m == 0 or n_c == 0:
            continue
        rows = group.users.astype(np.intp)
        positive = (positives[rows][:, group.items] > 0).toarray()
        eligible = ~positive & ~exclusions(items, users, group)
        keys = rng.random((m, n_c))
        keys[~eligible] = np.inf
        pos_u, pos_c = np.nonzero(positive)
        k = min(negatives, n_c)
        if k:
            drawn = np.argpartition(keys, k - 1, axis=1)[:, :k]
            drawn = np.sort(drawn, axis=1)  # the set is the seed's; the order, the columns'
            kept = np.isfinite(np.take_along_axis(keys, drawn, axis=1))
            neg_u, slot = np.nonzero(kept)
            neg_c = drawn[neg_u, slot]
        else:
            neg_u = neg_c = np.zeros(0, dtype=np.intp)
        u = np.concatenate([pos_u, neg_u]).astype(np.intp)
        c = np.concatenate([pos_c, neg_c]).astype(np.intp)
        if not len(u):
            continue
        features = group_features(items, users, group, coparticipation)
        block = np.empty((len(u), len(FEATURES)), dtype=np.float32)
        for f, name in enumerate(FEATURES):
            block[:, f] = features.value(name, u, c[:, None])[:, 0]
        xs.append(block)
        ys.append(np.concatenate([np.ones(len(pos_u)), np.zeros(len(neg_u))]).astype(np.int8))
        gs.append(np.full(len(u), g, dtype=np.int64))
        us.append(rows[u].astype(np.int64))
    if not xs:
        return (
            np.zeros((0, len(FEATURES)), dtype=np.float32),
            np.zeros(0, dtype=np.int8),
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.int64),
        )
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(gs), np.concatenate(us)


def pairwise(
    X: npt.NDArray[np.float32],
    y: npt.NDArray[np.int8],
    users: npt.NDArray[np.int64],
    *,
    seed: int,
    per_positive: int = 10,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int8]]:
    """Pairs of one user's rows, as differences for :func:`train`: for each positive, up to
    ``per_positive`` of the same user's negatives, drawn with ``seed``; each pair once as
    (positive − negative, 1) and once as (negative − positive, 0). A linear model fitted on them
    orders a user's candidates (RankNet's pairwise logistic loss, Burges et al. 2005) rather
    than telling likely rows from unlikely ones across users: what a user-level signal (a long
    history, a busy district) adds to all of a user's candidates cancels out."""
    rng = np.random.default_rng(check_seed(seed))
    order = np.lexsort((-y, users))
    X, y, users = X[order], y[order], users[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    diffs: list[npt.NDArray[np.float32]] = []
    for start, end in zip(starts, ends, strict=True):
        labels = y[start:end]
        pos = start + np.flatnonzero(labels == 1)
        neg = start + np.flatnonzero(labels == 0)
        if not len(pos) or not len(neg):
            continue
        for p in pos:
            drawn = rng.choice(neg, min(per_positive, len(neg)), replace=False)
            diffs.append(X[p][None, :] - X[drawn])
    if not diffs:
        return np.zeros((0, X.shape[1]), dtype=np.float32), np.zeros(0, dtype=np.int8)
    d = np.concatenate(diffs)
    both = np.concatenate([d, -d]).astype(np.float32)
    labels_out = np.concatenate([np.ones(len(d)), np.zeros(len(d))]).astype(np.int8)
    return both, labels_out


@dataclass(frozen=True)
class LearnedModel:
    """A fitted ranker and what it was made of: ``pipeline`` (``scale``: StandardScaler,
    ``logit``: LogisticRegression), the ``features`` it reads (in order), the training
    ``window`` (two aware datetimes, or a description such as "pabulib training voters"),
    ``seed``, held-out ``metrics``, ``created_at`` (UTC), ``version`` (its name in every
    recommendation it scores) and ``class_weight``."""

    pipeline: Pipeline
    features: tuple[str, ...]
    window: Window
    seed: int
    metrics: Mapping[str, float]
    created_at: datetime
    version: str
    class_weight: ClassWeight = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def scorer(self) -> LinearScorer:
        """The same ranking as the pipeline, through the linear scorer: weight = coef / scale,
        centre = mean (scores = decision_function − intercept), but for the user controls of
        :data:`CONTROLS`, which keep their fixed weights."""
        scale = self.pipeline.named_steps["scale"]
        logit = self.pipeline.named_steps["logit"]
        coef = np.asarray(logit.coef_, dtype=np.float64).ravel()
        weights = coef / np.asarray(scale.scale_, dtype=np.float64)
        centre = np.asarray(scale.mean_, dtype=np.float64)
        named = zip(self.features, weights, centre, strict=True)
        return LinearScorer(
            "learned",
            self.version,
            weights={name: CONTROLS.get(name, float(w)) for name, w, _ in named},
            centre={
                name: 0.0 if name in CONTROLS else float(c)
                for name, c in zip(self.features, centre, strict=True)
            },
        )

    def decision_function(self, X: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
        """The pipeline's log-odds of rows in :attr:`features` order."""
        out: npt.NDArray[np.float64] = np.asarray(
            self.pipeline.decision_function(np.asarray(X, dtype=np.float64)), dtype=np.float64
        )
        return out


def check_seed(seed: object) -> int:
    """``seed`` if it is an integer numpy and scikit-learn accept (0 ≤ seed < 2³²)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise InvalidInput(f"the seed must be an integer from 0 to 2**32 - 1, not {seed!r}")
    return seed


def check_window(window: object) -> Window:
    """``window`` if it is two aware datetimes in order or a non-empty description."""
    if isinstance(window, str):
        if not window.strip():
            raise InvalidInput("the training window must not be empty")
        return window
    if (
        isinstance(window, tuple)
        and len(window) == 2
        and all(isinstance(t, datetime) for t in window)
    ):
        start, end = window
        if start.tzinfo is None or end.tzinfo is None:
            raise InvalidInput("the training window's datetimes must carry a time zone")
        if start > end:
            raise InvalidInput(
                f"the training window starts ({start.isoformat()}) after it ends "
                f"({end.isoformat()})"
            )
        return (start, end)
    raise InvalidInput(
        f"the training window must be (start, end) datetimes or a description, not {window!r}"
    )


def train(
    X: npt.NDArray[np.floating[Any]],
    y: npt.NDArray[np.integer[Any]],
    *,
    window: Window,
    seed: int,
    class_weight: ClassWeight = None,
    C: float = 1.0,
) -> LearnedModel:
    """Fit the ranker on rows of :func:`training_examples` and measure it on a seeded,
    stratified held-out 20 % (see the module). Refuses (InvalidInput) rows that are not
    (N, len(FEATURES)) finite numbers with 0/1 labels, or too few of either label.
    ``C``: scikit-learn's inverse regularisation strength."""
    window = check_window(window)
    check_seed(seed)
    if class_weight not in (None, "balanced"):
        raise InvalidInput(f'class_weight must be None or "balanced", not {class_weight!r}')
    if not (isinstance(C, int | float) and not isinstance(C, bool) and np.isfinite(C) and C > 0):
        raise InvalidInput(f"C must be a positive number, not {C!r}")
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[1] != len(FEATURES):
        raise InvalidInput(
            f"training rows must have {len(FEATURES)} features ({', '.join(FEATURES)}), "
            f"got shape {X.shape}"
        )
    if y.shape != (X.shape[0],):
        raise InvalidInput(f"{X.shape[0]} training rows but labels of shape {y.shape}")
    if not np.isfinite(X).all():
        raise InvalidInput("training rows hold NaN or infinite values")
    if not np.isin(y, (0, 1)).all():
        raise InvalidInput("labels must be 0 or 1")
    n_pos = int((y == 1).sum())
    n_neg = int((y == 0).sum())
    if min(n_pos, n_neg) < MIN_PER_LABEL:
        raise InvalidInput(
            f"too few examples to learn from: {n_pos} positives and {n_neg} negatives "
            f"(at least {MIN_PER_LABEL} of each)"
        )
    X64 = X.astype(np.float64)
    # User controls carry no label: feedback is read as it stands now, not as it stood when
    # each participation happened, so a model would learn from the future (a user who muted a
    # theme of projects they had joined taught it that muting attracts). They are rules.
    X64[:, [FEATURES.index(name) for name in CONTROLS]] = 0.0
    y8 = y.astype(np.int8)
    X_fit, X_test, y_fit, y_test = train_test_split(
        X64, y8, test_size=HELD_OUT, random_state=seed, stratify=y8
    )
    pipeline = Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "logit",
                LogisticRegression(C=C, class_weight=class_weight, max_iter=1000),
            ),
        ]
    )
    pipeline.fit(X_fit, y_fit)
    probability = pipeline.predict_proba(X_test)[:, 1]
    metrics = {
        "roc_auc": float(roc_auc_score(y_test, probability)),
        "log_loss": float(log_loss(y_test, probability, labels=[0, 1])),
        "rows_train": float(len(y_fit)),
        "rows_held_out": float(len(y_test)),
        "positive_share": float(n_pos / len(y8)),
    }
    created_at = datetime.now(UTC).replace(microsecond=0)
    return LearnedModel(
        pipeline=pipeline,
        features=FEATURES,
        window=window,
        seed=seed,
        metrics=metrics,
        created_at=created_at,
        version=f"learned-{created_at:%Y%m%dT%H%M%SZ}",
        class_weight=class_weight,
        params={"C": C, "held_out": HELD_OUT},
    )
