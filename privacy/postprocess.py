"""Post-processing of noisy outputs into published figures with 95% intervals.

Anything computed only from DP outputs and public facts (noise scales, clamps, key sets, candidate
grids) is itself DP with the same ρ, so nothing here spends budget or draws randomness.

Intervals, by measure:

- counts and sums: the estimate ± 1.96 standard deviations, the deviation known from the noise
  scales (for a consistent estimate, from the weighted least squares variance). The truth is a whole
  number, so the ends are rounded inwards to whole numbers without changing what they cover; for a
  direct discrete Gaussian measurement this is its own 95% interval up to discreteness;
- means and shares: the delta method on the noisy numerator and denominator, whose noise variances
  are known, the ends rounded outwards to the published decimals;
- medians: two further quantiles, below and above the median by the mechanism's rank error plus the
  candidate spacing (see ``median_figure``).

A figure whose interval is wider than the figure itself is flagged ``low_reliability``, not withheld.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Figure:
    value: float
    ci_low: float
    ci_high: float
    low_reliability: bool


def _flagged(value: float, low: float, high: float) -> Figure:
    return Figure(value, low, high, (high - low) > value)


def _normal_figure(value: float, sd: float, bounds: tuple[float, float], decimals: int) -> Figure:
    """``value`` ± 1.96 ``sd`` within ``bounds``, rounded to ``decimals`` places: the figure to the nearest, the
    interval's ends outwards, so that rounding never narrows it (a mean or a share is not on the rounding grid,
    unlike a count; rounded to the nearest, an analyst found 22 intervals of a release narrower than computed)."""
    scale = 10**decimals
    published = round(min(max(value, bounds[0]), bounds[1]), decimals)
    low = max(bounds[0], math.floor((value - Z_95 * sd) * scale) / scale)
    high = min(bounds[1], math.ceil((value + Z_95 * sd) * scale) / scale)
    return _flagged(published, min(low, published), max(high, published))


def count_figures(rounded: np.ndarray, estimates: np.ndarray, variances: np.ndarray) -> list[Figure]:
    """Non-negative integer figures with 95% intervals around the unrounded ``estimates``.

    The interval is clipped at zero, because a count or a sum of non-negative amounts cannot be
    negative, and always contains the published figure.
    """
    figures = []
    for value, estimate, variance in zip(rounded, estimates, variances, strict=True):
        half_width = Z_95 * math.sqrt(variance)
        low = min(int(value), max(0, math.ceil(estimate - half_width)))
        high = max(int(value), math.floor(estimate + half_width))
        figures.append(_flagged(int(value), low, high))
    return figures


def ratio_estimate(
    numerator: float, numerator_variance: float, denominator: float, denominator_variance: float
) -> tuple[float, float] | None:
    """``numerator / denominator`` of independent noisy parts and its delta-method variance, or None when
    the denominator is below one person (the ratio then says nothing).

    Var(N/D) ~ (Var N + (N/D)^2 Var D) / D^2 (first-order Taylor expansion at the noisy values).
    """
    if denominator < 1:
        return None
    ratio = numerator / denominator
    return ratio, (numerator_variance + ratio**2 * denominator_variance) / denominator**2


def share_estimate(with_condition: float, without_condition: float, variance: float) -> tuple[float, float] | None:
    """Y / (Y + Z) of noisy counts Y and Z, each of ``variance`` and independent, with its delta-method
    variance ``variance (Y^2 + Z^2) / (Y + Z)^4``; None when Y + Z is below one person."""
    total = with_condition + without_condition
    if total < 1:
        return None
    return with_condition / total, variance * (with_condition**2 + without_condition**2) / total**4


def _may_be_nobody(people: float, variance: float) -> bool:
    """Whether a noisy count of people of ``variance`` is within 1.96 standard deviations of zero: the cell may hold
    nobody, and a mean or a share of it says nothing. The delta method's interval is no guide there (an analyst
    found a share of 0.94, its interval 0.5 to 1, in a cell of no one)."""
    return people < Z_95 * math.sqrt(variance)


def ratio_figure(
    numerator: float,
    numerator_variance: float,
    denominator: float,
    denominator_variance: float,
    *,
    offset: float = 0.0,
    bounds: tuple[float, float],
    decimals: int,
) -> Figure:
    """``offset + numerator / denominator`` from noisy parts, clipped to ``bounds``, with a delta-method
    interval (``ratio_estimate``). With a denominator that may be nobody (``_may_be_nobody``) the ratio says
    nothing: the figure is the middle of ``bounds`` and its interval is all of ``bounds``.
    """
    lower, upper = bounds
    estimate = ratio_estimate(numerator, numerator_variance, denominator, denominator_variance)
    if estimate is None or _may_be_nobody(denominator, denominator_variance):
        return _flagged(round((lower + upper) / 2, decimals), lower, upper)
    ratio, variance = estimate
    return _normal_figure(offset + ratio, math.sqrt(variance), bounds, decimals)


def share_figure(with_condition: float, without_condition: float, variance: float, *, decimals: int) -> Figure:
    """The share with the condition, Y / (Y + Z), from noisy counts Y and Z each of ``variance``.

    Y and Z are clipped at zero first. Y and Z have independent noise (the share's two counts are one
    stacked vector, see ``privacy.bounding.query_sensitivity``), so the delta method applies
    (``share_estimate``).
    """
    estimate = share_estimate(max(0.0, with_condition), max(0.0, without_condition), variance)
    if estimate is None or _may_be_nobody(max(0.0, with_condition) + max(0.0, without_condition), 2 * variance):
        return _flagged(0.5, 0.0, 1.0)
    share, share_variance = estimate
    return _normal_figure(share, math.sqrt(share_variance), (0.0, 1.0), decimals)


def median_figure(median: int, lower: int, upper: int, *, step: int, bounds: tuple[int, int]) -> Figure:
    """A DP median with the interval [lower - step, upper + step] from the bracketing quantiles.

    ``lower`` and ``upper`` are quantiles below and above one half by the mechanism's rank error
    (``privacy.mechanisms.quantile_rank_error``) plus the count's uncertainty, so each lies on its
    side of the true median unless its mechanism overshoots; a candidate can sit up to one ``step``
    from the quantile it stands for, hence the margin.
    """
    low = max(bounds[0], min(lower, median) - step)
    high = min(bounds[1], max(upper, median) + step)
    return _flagged(median, low, high)
