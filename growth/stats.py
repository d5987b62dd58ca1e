"""The statistics of the growth report: intervals for differences of proportions, their
cluster-robust form, and the sample-ratio-mismatch check. Pure functions over counts and
arrays (scipy), each tested against closed forms or published values (tests/test_growth_stats.py).

- **Independent units** (a per-user rate when the unit is the user): the difference of two
  binomial proportions with **Newcombe's hybrid score interval** (method 10 of R. G. Newcombe,
  "Interval estimation for the difference between independent proportions: comparison of
  eleven methods", Statistics in Medicine 17, 1998), built from each arm's Wilson score
  interval; its p-value is the pooled two-proportion z-test's.
- **Clustered units** (any rate when the unit is a commune or an EPCI, and per-mail rates,
  whose mails cluster in their user): each arm's rate is a ratio of sums over its K clusters,
  Σ numerator / Σ denominator, whose variance is given by the **delta method** over clusters
  (A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics: A Practical
  Guide with Novel Ideas", KDD 2018, §3): Var(ȳ/x̄) ≈ (s²_y − 2 r s_xy + r² s²_x) / (K x̄²),
  sample (co)variances over clusters. The difference's interval is Student's t with K₁ + K₂ − 2
  degrees of freedom (near the normal for many clusters, honest for few communes).
- **Sample-ratio mismatch**: χ² goodness of fit of the units per variant against the shares;
  a p-value under 0.001 says assignment or exposure logging is broken (R. Kohavi et al.,
  "Trustworthy Online Controlled Experiments", 2020, ch. 21).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from contracts.growth import SampleRatio

SRM_THRESHOLD = 0.001
NEWCOMBE = "Newcombe-Wilson (unités indépendantes)"


@dataclass(frozen=True)
class Estimate:
    """A difference ``a − b`` (rate points as a fraction), its two-sided interval and p-value;
    all None when one side has nothing to divide."""

    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    method: str

    def excludes_zero(self) -> bool:
        """The interval lies wholly above or below 0 (significant at its level)."""
        return (
            self.ci_low is not None
            and self.ci_high is not None
            and (self.ci_low > 0 or self.ci_high < 0)
        )


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), not {level}")
    return float(sps.norm.ppf(0.5 + level / 2))


def wilson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval of ``successes`` / ``trials`` (trials > 0), within [0, 1]."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0: {successes}/{trials}")
    z = _z(level)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int, level: float = 0.95) -> Estimate:
    """k1/n1 − k2/n2 with Newcombe's hybrid score interval (method 10) and the pooled z-test's
    two-sided p-value. All None when n1 or n2 is 0."""
    if n1 <= 0 or n2 <= 0:
        return Estimate(None, None, None, None, NEWCOMBE)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, level)
    l2, u2 = wilson(k2, n2, level)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = 1.0 if se == 0 else float(2 * sps.norm.sf(abs(d) / se))
    return Estimate(d, low, high, p_value, NEWCOMBE)


Counts = npt.ArrayLike


def ratio_variance(numerators: Counts, denominators: Counts) -> tuple[float, float] | None:
    """The ratio Σ numerators / Σ denominators over clusters and its delta-method variance
    (Deng et al. 2018, see the module); None with fewer than 2 clusters or no denominator."""
    y = np.asarray(numerators, dtype=float)
    x = np.asarray(denominators, dtype=float)
    k = len(x)
    if k < 2 or x.sum() <= 0:
        return None
    mean_x, mean_y = x.mean(), y.mean()
    ratio = mean_y / mean_x
    covariance = np.cov(y, x, ddof=1)
    variance = (
        covariance[0, 0] - 2 * ratio * covariance[0, 1] + ratio * ratio * covariance[1, 1]
    ) / (k * mean_x * mean_x)
    return float(ratio), max(0.0, float(variance))


def delta_difference(
    numerators_a: Counts,
    denominators_a: Counts,
    numerators_b: Counts,
    denominators_b: Counts,
    level: float = 0.95,
    clusters: str = "unité",
) -> Estimate:
    """Ratio of sums of arm a − that of arm b, each over its clusters (one value per cluster),
    with the delta-method variance and a Student t interval (K_a + K_b − 2 degrees of
    freedom). All None when an arm has fewer than 2 clusters or nothing to divide."""
    method = f"méthode delta, grappes : {clusters}"
    a = ratio_variance(numerators_a, denominators_a)
    b = ratio_variance(numerators_b, denominators_b)
    if a is None or b is None:
        return Estimate(None, None, None, None, method)
    d = a[0] - b[0]
    se = math.sqrt(a[1] + b[1])
    freedom = len(np.asarray(denominators_a)) + len(np.asarray(denominators_b)) - 2
    _z(level)  # refuses a level outside (0, 1)
    t = float(sps.t.ppf(0.5 + level / 2, freedom))
    if se == 0:
        return Estimate(d, d, d, 1.0 if d == 0 else 0.0, method)
    p_value = float(2 * sps.t.sf(abs(d) / se, freedom))
    return Estimate(d, d - t * se, d + t * se, p_value, method)


def sample_ratio(
    observed: Mapping[str, int], shares: Mapping[str, float], threshold: float = SRM_THRESHOLD
) -> SampleRatio:
    """χ² goodness of fit of the ``observed`` units per variant against the ``shares`` (which
    add up to 1); ``mismatch`` when p < ``threshold``. chi2 and p None with no unit at all."""
    names = list(shares)
    counts = [int(observed.get(n, 0)) for n in names]
    total = sum(counts)
    if total == 0:
        return SampleRatio(
            expected_shares=dict(shares),
            observed_units=dict(zip(names, counts, strict=True)),
            chi2=None,
            p_value=None,
            threshold=threshold,
            mismatch=False,
        )
    scale = math.fsum(shares.values())
    expected = [shares[n] / scale * total for n in names]
    chi2, p_value = sps.chisquare(counts, expected)
    return SampleRatio(
        expected_shares=dict(shares),
        observed_units=dict(zip(names, counts, strict=True)),
        chi2=float(chi2),
        p_value=float(p_value),
        threshold=threshold,
        mismatch=bool(p_value < threshold),
    )
