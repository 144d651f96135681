"""Totals, differences and other linear combinations of published estimates, with their variance.

The one way every total or comparison shown anywhere (the site's headline totals and bars, its
changes between quarters, the reader notebooks) is computed. It is post-processing of published DP
outputs and costs no privacy. Standard library only, so a reader needs nothing else.

Each release publishes, per cell, an ``estimate`` and its ``estimate_variance``: for counts and
sums the cell's own noisy measurement, unclipped and unrounded (discrete Gaussian noise, variance
σ² exactly, mean zero); for means and shares the unclipped ratio of noisy parts with its
delta-method variance (approximate). The noise of different cells of one measurement, and of
different releases, is independent, so a weighted sum Σ wᵢxᵢ has variance Σ wᵢ²vᵢ exactly. Its
interval is ± 1.96 standard deviations: for a sum of discrete Gaussian noise that is a normal
approximation (close for σ above about one), so intervals are called approximate where they are.
Adding the published figures instead (clipped at zero, rounded) would be biased upwards whenever
cells are empty or small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Combination:
    """An estimate, its variance and its 95% interval (``approximate`` when the variance or the
    normal shape is an approximation, e.g. the delta method)."""

    value: float
    variance: float
    low: float
    high: float
    approximate: bool

    @property
    def half_width(self) -> float:
        return Z_95 * math.sqrt(self.variance)

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def combine(
    estimates: Sequence[float],
    variances: Sequence[float],
    weights: Sequence[float] | None = None,
    *,
    approximate: bool = False,
    floor: float | None = None,
) -> Combination:
    """Σ wᵢxᵢ over independent estimates xᵢ of variance vᵢ (weights default to one: a total), with
    variance Σ wᵢ²vᵢ and the interval value ± 1.96 sd.

    ``floor`` is a bound the truth cannot cross (0 for a total of people): the interval is clipped
    to it, never the value, which stays unbiased. ``approximate`` says whether any part's variance
    was itself approximate; the normal shape of the interval always is, a little.
    """
    if len(estimates) != len(variances):
        raise ValueError("one variance per estimate")
    weights = [1.0] * len(estimates) if weights is None else list(weights)
    if len(weights) != len(estimates):
        raise ValueError("one weight per estimate")
    if any(v < 0 or math.isnan(v) for v in variances):
        raise ValueError("variances must be non-negative numbers")
    value = math.fsum(w * x for w, x in zip(weights, estimates, strict=True))
    variance = math.fsum(w * w * v for w, v in zip(weights, variances, strict=True))
    half = Z_95 * math.sqrt(variance)
    low, high = value - half, value + half
    if floor is not None:
        low, high = max(low, floor), max(high, floor)
    return Combination(value, variance, low, high, approximate)


def difference(
    current: float, current_variance: float, previous: float, previous_variance: float, *, approximate: bool = False
) -> Combination:
    """``current - previous`` of two independent estimates (two releases, or two cells of one measurement)."""
    return combine([current, previous], [current_variance, previous_variance], [1.0, -1.0], approximate=approximate)
