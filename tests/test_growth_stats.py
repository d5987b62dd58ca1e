"""growth.stats against published values and closed forms; the cluster-robust interval against
the naive one on clustered data; the sample-ratio check; and the verdict's rule (no winner
without significance, none under a sample-ratio mismatch)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from contracts.experiments import Experiment, ExperimentSpec
from contracts.growth import Difference, Metric, SampleRatio
from growth import stats
from growth.report import verdict


def test_wilson_published_value() -> None:
    # Newcombe (1998a), "Two-sided confidence intervals for the single proportion", 81/263:
    # Wilson's score interval 0.2553 to 0.3662.
    low, high = stats.wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


@pytest.mark.parametrize(
    ("counts", "interval"),
    [
        # Newcombe (1998b), Statistics in Medicine 17:873-890, table II, method 10.
        ((56, 70, 48, 80), (0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((6, 7, 2, 7), (0.0582, 0.8062)),
        ((5, 56, 0, 29), (-0.0381, 0.1926)),
        ((0, 10, 0, 20), (-0.1611, 0.2775)),
        ((10, 10, 0, 20), (0.6791, 1.0000)),
    ],
)
def test_newcombe_published_values(
    counts: tuple[int, int, int, int], interval: tuple[float, float]
) -> None:
    found = stats.newcombe(*counts)
    assert found.difference == pytest.approx(counts[0] / counts[1] - counts[2] / counts[3])
    assert found.ci_low is not None and found.ci_high is not None
    assert (round(found.ci_low, 4), round(found.ci_high, 4)) == interval


def test_newcombe_p_value_is_the_pooled_z_test() -> None:
    # 56/70 vs 48/80: pooled 104/150, z = 0.2 / sqrt(p(1-p)(1/70 + 1/80)).
    pooled = 104 / 150
    z = 0.2 / math.sqrt(pooled * (1 - pooled) * (1 / 70 + 1 / 80))
    found = stats.newcombe(56, 70, 48, 80)
    assert found.p_value == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert found.excludes_zero()
    assert stats.newcombe(0, 0, 1, 2).difference is None


def test_delta_method_with_equal_clusters_is_the_variance_of_cluster_means() -> None:
    # Equal denominators n: the ratio is mean(y)/n and the delta variance is var(y)/(K n²).
    y = np.array([3, 5, 4, 8, 0, 6])
    n = np.full(6, 10)
    found = stats.ratio_variance(y, n)
    assert found is not None
    assert found[0] == pytest.approx(26 / 60)
    assert found[1] == pytest.approx(np.var(y, ddof=1) / (6 * 100))
    assert stats.ratio_variance([1], [2]) is None


def test_delta_method_matches_the_closed_form_with_unequal_clusters() -> None:
    y, x = np.array([1.0, 4, 2, 7]), np.array([3.0, 9, 5, 11])
    k, r = 4, y.sum() / x.sum()
    residual = y - r * x  # the linearised ratio: Var = Σ(y − r x)² / ((K − 1) K x̄²)
    expected = (residual**2).sum() / ((k - 1) * k * x.mean() ** 2)
    found = stats.ratio_variance(y, x)
    assert found is not None and found[1] == pytest.approx(expected)


def _clustered(rng: np.random.Generator, clusters: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    # Each cluster (a commune) has its own rate around 0.2: residents of a commune are alike.
    rates = rng.beta(2, 8, clusters)
    return rng.binomial(size, rates), np.full(clusters, size)


def test_cluster_robust_is_wider_and_keeps_its_level() -> None:
    rng = np.random.default_rng(7)
    naive_rejects = robust_rejects = 0
    runs = 400
    for _ in range(runs):  # A/A: both arms from the same clustered process
        ya, na = _clustered(rng, 30, 40)
        yb, nb = _clustered(rng, 30, 40)
        naive = stats.newcombe(int(ya.sum()), int(na.sum()), int(yb.sum()), int(nb.sum()))
        robust = stats.delta_difference(ya, na, yb, nb, clusters="commune")
        assert robust.ci_low is not None and robust.ci_high is not None
        assert naive.ci_low is not None and naive.ci_high is not None
        assert robust.ci_high - robust.ci_low > naive.ci_high - naive.ci_low
        naive_rejects += naive.excludes_zero()
        robust_rejects += robust.excludes_zero()
    # The naive interval ignores the clusters and calls far more than 5 % of A/A tests;
    # the delta method's stays near its level.
    assert naive_rejects / runs > 0.25
    assert robust_rejects / runs < 0.09
    assert robust.method == "méthode delta, grappes : commune"


def test_delta_difference_needs_two_clusters_per_arm() -> None:
    found = stats.delta_difference([1], [3], [1, 2], [3, 4])
    assert (found.difference, found.ci_low, found.ci_high, found.p_value) == (None,) * 4
    assert not found.excludes_zero()


def test_sample_ratio_mismatch() -> None:
    shares = {"control": 0.5, "treatment": 0.5}
    broken = stats.sample_ratio({"control": 52_000, "treatment": 48_000}, shares)
    assert broken.mismatch
    assert broken.chi2 == pytest.approx(160.0)  # 2 · 2000² / 50000
    assert broken.p_value is not None and broken.p_value < 1e-30
    fair = stats.sample_ratio({"control": 50_100, "treatment": 49_900}, shares)
    assert not fair.mismatch
    assert fair.chi2 == pytest.approx(0.4)  # 2 · 100² / 50000
    assert fair.p_value == pytest.approx(0.5271, abs=1e-4)
    uneven = stats.sample_ratio({"a": 9_000, "b": 1_000}, {"a": 0.9, "b": 0.1})
    assert not uneven.mismatch and uneven.chi2 == pytest.approx(0.0)
    empty = stats.sample_ratio({}, shares)
    assert (empty.chi2, empty.mismatch) == (None, False)


def _experiment() -> Experiment:
    spec = ExperimentSpec.model_validate(
        {
            "name": "objet",
            "surface": "digest",
            "variants": [{"name": "control", "share": 0.5}, {"name": "b", "share": 0.5}],
        }
    )
    return Experiment(id=1, spec=spec, status="running", created_at=datetime.now(UTC))


def _diff(metric: Metric, d: float, low: float, high: float) -> Difference:
    return Difference(
        metric=metric,
        variant="b",
        baseline="control",
        difference=d,
        ci_low=low,
        ci_high=high,
        p_value=0.01 if low > 0 or high < 0 else 0.5,
        significant=low > 0 or high < 0,
        method=stats.NEWCOMBE,
    )


FAIR = SampleRatio(
    expected_shares={"control": 0.5, "b": 0.5},
    observed_units={"control": 100, "b": 101},
    chi2=0.005,
    p_value=0.94,
    threshold=0.001,
    mismatch=False,
)


def test_a_winner_needs_significance_and_no_srm() -> None:
    experiment = _experiment()
    better = [_diff("click_rate", 0.02, 0.005, 0.035)]
    winner, said = verdict(experiment, "control", "click_rate", better, FAIR, 0.95)
    assert winner == "b"
    assert said == (
        "« b » l'emporte sur « control » pour le taux de clic : +2,00 points "
        "(IC 95 % : +0,50 à +3,50)."
    )
    unsure = [_diff("click_rate", 0.02, -0.001, 0.041)]
    winner, said = verdict(experiment, "control", "click_rate", unsure, FAIR, 0.95)
    assert winner is None and said.startswith("Pas de gagnant")
    broken = FAIR.model_copy(update={"p_value": 1e-9, "mismatch": True})
    winner, said = verdict(experiment, "control", "click_rate", better, broken, 0.95)
    assert winner is None and "SRM" in said
    # Fewer unsubscribes is better: a significant rise makes the baseline the winner.
    worse = [_diff("unsubscribe_rate", 0.01, 0.002, 0.018)]
    winner, _ = verdict(experiment, "control", "unsubscribe_rate", worse, FAIR, 0.95)
    assert winner == "control"
    fewer = [_diff("unsubscribe_rate", -0.01, -0.018, -0.002)]
    winner, _ = verdict(experiment, "control", "unsubscribe_rate", fewer, FAIR, 0.95)
    assert winner == "b"
