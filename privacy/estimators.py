"""From bounded aggregates to published figures, one measure at a time.

Each estimator takes the exact bounded aggregates of one indicator (``privacy.bounding``) and the ρ
the indicator may spend, draws its noisy measurements from OpenDP (``privacy.mechanisms``), splits
its ρ between them as stated below, and post-processes them (``privacy.hierarchy``,
``privacy.postprocess``). The ρ of an indicator is the sum of its measurements' ρ (sequential
composition under zCDP), each computed by OpenDP's own privacy map: every measurement carries its
OpenDP measurement, and ``IndicatorRelease.measurement`` composes them (``dp.c.make_composition``),
so ``map(m)`` gives the indicator's ρ for a person held as m privacy units.

- people_count, contact_count, sum: one discrete Gaussian vector per published area level (its
  share of ρ from ``area_levels``; a flat table is one level), then the consistent, non-negative,
  integer estimates of ``privacy.hierarchy``.
- share: the counts with and without the condition, stacked as one vector (L2 sensitivity
  sqrt(k), not sqrt(2k): a person is in exactly one of the two), then the delta method.
- mean: the sum of (amount - centre) with 2/3 of ρ and the count with 1/3, then the delta method.
  Centring halves the sum's sensitivity; 2/3 is the optimal split when the mean lies a quarter of
  the clamp's range from its centre.
- median: OpenDP's quantile mechanism with 3/4 of ρ; a count (1/20) and two bracketing quantiles
  (1/10 each) give its interval. The brackets only need to land on the right side of the median, so
  they get little: a larger rank error just moves them further out. When an earlier indicator of the
  release measured the count of the same bounded population in the same cells (the mean of debt and
  the median of debt both count people with debt by region), the median reuses that noisy count
  (``SharedCount``, post-processing of a DP output) and does not buy its own: its 1/20 is saved.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import opendp.prelude as dp

from privacy.accountant import ROUNDING, Charge
from privacy.bounding import BoundedAggregates, query_sensitivity
from privacy.hierarchy import Forest, aggregate_up, consistent_estimates, forest, round_keeping_sums
from privacy.mechanisms import (
    NoisyQuantile,
    discrete_gaussian,
    gaussian_measurement,
    interval_half_width,
    private_quantile,
    quantile_measurement,
    quantile_rank_error,
    quantile_scale,
)
from privacy.postprocess import (
    Figure,
    count_figures,
    median_figure,
    ratio_estimate,
    ratio_figure,
    share_estimate,
    share_figure,
)
from standards.catalogue import Cell, Indicator, cells

ADDITIVE_VECTORS = {"people_count": "people", "contact_count": "contacts", "sum": "total"}
MEAN_SUM_SHARE = 2 / 3
MEDIAN_SHARES = {"count": 0.05, "median": 0.75, "lower_bracket": 0.1, "upper_bracket": 0.1}
# One-sided probabilities that the count's lower bound or a bracket lands on the wrong side.
COUNT_BETA = 0.01
BRACKET_BETA = 0.02
# A bracket needs its quantile this far inside (0, 1) to mean anything.
MAX_BRACKET_OFFSET = 0.49


@dataclass(frozen=True)
class Measurement:
    """One noisy output and its cost: the published cells it informs, the values OpenDP returned, and
    the OpenDP measurement whose map gives its ρ for any number of privacy units (``rho`` is its map
    at one unit)."""

    name: str
    mechanism: str
    rho: float
    scale: float
    sensitivity: float
    cells: list[int]
    values: list[float]
    opendp: dp.Measurement

    def rho_at(self, units: int) -> float:
        """ρ for a person held as ``units`` privacy units, by OpenDP's map."""
        return float(self.opendp.map(units))


CountSignature = tuple[str, tuple[str, ...], tuple[str, ...], int]


def count_signature(indicator: Indicator) -> CountSignature:
    """What fixes an indicator's bounded people count: its population, cells and bound per person.
    Two indicators with equal signatures have identical exact ``people`` vectors (the same bounding SQL
    selects the same rows; the amount column does not change which rows are kept)."""
    return (
        indicator.population,
        tuple(indicator.breakdowns),
        tuple(indicator.area_levels or {}),
        indicator.max_cells_per_person,
    )


@dataclass(frozen=True)
class SharedCount:
    """A noisy people count per cell, measured by one indicator, that another with the same
    ``count_signature`` may reuse instead of spending on its own."""

    signature: CountSignature
    values: list[int]
    scale: float


@dataclass(frozen=True)
class IndicatorRelease:
    """Published figures, and per cell an unclipped estimate with its variance (``privacy.combine``):
    a count's or sum's own noisy measurement (σ²), a ratio's delta-method estimate, or None (medians,
    and ratios without a denominator)."""

    indicator: Indicator
    cells: list[Cell]
    figures: list[Figure]
    measurements: list[Measurement]
    estimates: list[tuple[float, float] | None]
    count: SharedCount | None = None

    @property
    def measurement(self) -> dp.Measurement:
        """All of the indicator's noisy outputs as one OpenDP composition."""
        return dp.c.make_composition([m.opendp for m in self.measurements])

    def rho_at(self, units: int) -> float:
        """The indicator's ρ for a person held as ``units`` privacy units, by OpenDP's composition map."""
        return float(self.measurement.map(units))

    @property
    def rho(self) -> float:
        return self.rho_at(1)


def release_indicator(
    indicator: Indicator, aggregates: BoundedAggregates, rho: float, shared: SharedCount | None = None
) -> IndicatorRelease:
    """Noisy measurements and published figures for one indicator, spending at most ``rho``. A median
    reuses ``shared``, a count already measured for its population and cells, when one is given."""
    if rho <= 0:
        raise ValueError(f"{indicator.id}: rho must be positive, got {rho}")
    if indicator.measure in ADDITIVE_VECTORS:
        return _additive(indicator, aggregates, rho)
    if indicator.measure == "median":
        return _median(indicator, aggregates, rho, shared)
    return {"share": _share, "mean": _mean}[indicator.measure](indicator, aggregates, rho)


def _additive(indicator: Indicator, aggregates: BoundedAggregates, rho: float) -> IndicatorRelease:
    tree = forest(indicator)
    finest = indicator.finest_area_level
    leaves = np.array([i for i, cell in enumerate(tree.cells) if cell.level == finest])
    l2 = query_sensitivity(indicator).l2
    measured = np.full(len(tree.cells), np.nan)
    variance = np.full(len(tree.cells), np.inf)
    measurements = []
    for level, share in (indicator.area_levels or {None: 1.0}).items():
        if share == 0:
            continue
        index = [i for i, cell in enumerate(tree.cells) if cell.level == level]
        noisy = discrete_gaussian(
            aggregates, _level_query(tree, leaves, indicator, index), l2_sensitivity=l2, rho=rho * share
        )
        measured[index], variance[index] = noisy.values, noisy.scale**2
        name = level or "cells"
        measurements.append(
            Measurement(name, "discrete_gaussian", noisy.rho, noisy.scale, l2, index, noisy.values, noisy.measurement)
        )
    estimate = consistent_estimates(tree, measured, variance, non_negative=True)
    rounded = round_keeping_sums(tree, estimate.value)
    raw = [None if np.isnan(m) else (float(m), float(v)) for m, v in zip(measured, variance, strict=True)]
    return IndicatorRelease(
        indicator, tree.cells, count_figures(rounded, estimate.value, estimate.variance), measurements, raw
    )


def _level_query(
    tree: Forest, leaves: np.ndarray, indicator: Indicator, index: list[int]
) -> Callable[[BoundedAggregates], np.ndarray]:
    """The exact vector of one area level: the finest cells' vector added up the tree, at ``index``.

    Every level sees a person in at most ``max_cells_per_person`` cells (they keep one finest area), so
    each level's vector has the sensitivity of ``query_sensitivity``.
    """
    name = ADDITIVE_VECTORS[indicator.measure]
    return lambda aggregates: aggregate_up(tree, leaves, aggregates.vectors[name])[index]


def _vector(name: str, stacked_with: str | None = None) -> Callable[[BoundedAggregates], np.ndarray]:
    """One of the aggregates' vectors, or two stacked end to end."""
    if stacked_with is None:
        return lambda aggregates: aggregates.vectors[name]
    return lambda aggregates: np.concatenate([aggregates.vectors[name], aggregates.vectors[stacked_with]])


def _share(indicator: Indicator, aggregates: BoundedAggregates, rho: float) -> IndicatorRelease:
    layout = cells(indicator)
    size = len(layout)
    l2 = query_sensitivity(indicator).l2
    noisy = discrete_gaussian(
        aggregates, _vector("with_condition", stacked_with="without_condition"), l2_sensitivity=l2, rho=rho
    )
    figures = [
        share_figure(noisy.values[i], noisy.values[size + i], noisy.scale**2, decimals=indicator.decimals)
        for i in range(size)
    ]
    measurement = Measurement(
        "with_and_without_condition",
        "discrete_gaussian",
        noisy.rho,
        noisy.scale,
        l2,
        list(range(size)) * 2,
        noisy.values,
        noisy.measurement,
    )
    estimates = [share_estimate(noisy.values[i], noisy.values[size + i], noisy.scale**2) for i in range(size)]
    return IndicatorRelease(indicator, layout, figures, [measurement], estimates)


def _mean(indicator: Indicator, aggregates: BoundedAggregates, rho: float) -> IndicatorRelease:
    assert indicator.clamp is not None, "the catalogue requires a clamp for a mean"
    layout = cells(indicator)
    sums_l2 = query_sensitivity(indicator).l2
    count_l2 = float(np.sqrt(indicator.max_cells_per_person))
    sums = discrete_gaussian(aggregates, _vector("centred_total"), l2_sensitivity=sums_l2, rho=rho * MEAN_SUM_SHARE)
    counts = discrete_gaussian(aggregates, _vector("people"), l2_sensitivity=count_l2, rho=rho * (1 - MEAN_SUM_SHARE))
    clamp = indicator.clamp
    figures = [
        ratio_figure(
            total,
            sums.scale**2,
            count,
            counts.scale**2,
            offset=clamp.centre,
            bounds=(clamp.lower, clamp.upper),
            decimals=indicator.decimals,
        )
        for total, count in zip(sums.values, counts.values, strict=True)
    ]
    ratios = [
        ratio_estimate(total, sums.scale**2, count, counts.scale**2)
        for total, count in zip(sums.values, counts.values, strict=True)
    ]
    estimates = [None if r is None else (clamp.centre + r[0], r[1]) for r in ratios]
    index = list(range(len(layout)))
    measurements = [
        Measurement(
            "centred_total", "discrete_gaussian", sums.rho, sums.scale, sums_l2, index, sums.values, sums.measurement
        ),
        Measurement(
            "count", "discrete_gaussian", counts.rho, counts.scale, count_l2, index, counts.values, counts.measurement
        ),
    ]
    count = SharedCount(count_signature(indicator), counts.values, counts.scale)
    return IndicatorRelease(indicator, layout, figures, measurements, estimates, count)


def _median(
    indicator: Indicator, aggregates: BoundedAggregates, rho: float, shared: SharedCount | None
) -> IndicatorRelease:
    assert indicator.clamp is not None and indicator.candidate_step is not None and aggregates.values is not None
    layout = cells(indicator)
    index = list(range(len(layout)))
    k = indicator.max_cells_per_person
    clamp, step = indicator.clamp, indicator.candidate_step
    candidates = list(range(clamp.lower, clamp.upper + 1, step))
    count_l2 = float(np.sqrt(k))
    bought: Measurement | None = None
    if shared is not None and shared.signature == count_signature(indicator):
        count = shared
    else:
        noisy = discrete_gaussian(
            aggregates, _vector("people"), l2_sensitivity=count_l2, rho=rho * MEDIAN_SHARES["count"]
        )
        count = SharedCount(count_signature(indicator), noisy.values, noisy.scale)
        bought = Measurement(
            "count", "discrete_gaussian", noisy.rho, noisy.scale, count_l2, index, noisy.values, noisy.measurement
        )
    count_margin = interval_half_width(count.scale, 2 * COUNT_BETA)
    # Each cell's quantiles see one value per person; a person is in at most k cells, so each cell
    # may spend 1/k of the part's rho.
    per_cell = {part: rho * share / k for part, share in MEDIAN_SHARES.items() if part != "count"}
    # The brackets' rank error at alpha = 1/2 sets how far from one half they must sit.
    bracket_scale = quantile_scale(candidates, 0.5, per_cell["lower_bracket"])
    figures: list[Figure] = []
    chosen: dict[str, list[float]] = {part: [] for part in per_cell}
    # Per part, the cell measurement that spends most: a unit's k cells cost at most k of it.
    costliest: dict[str, NoisyQuantile] = {}
    for cell, noisy_count in enumerate(count.values):
        median = private_quantile(aggregates, cell, candidates=candidates, alpha=0.5, rho=per_cell["median"])
        offset = _bracket_offset(bracket_scale, noisy_count - count_margin)
        brackets = {
            part: private_quantile(
                aggregates,
                cell,
                candidates=candidates,
                alpha=0.5 + sign * min(offset, MAX_BRACKET_OFFSET),
                rho=per_cell[part],
            )
            for part, sign in (("lower_bracket", -1), ("upper_bracket", 1))
        }
        for part, result in (("median", median), *brackets.items()):
            chosen[part].append(result.value)
            if part not in costliest or result.rho > costliest[part].rho:
                costliest[part] = result
        if offset >= MAX_BRACKET_OFFSET:
            figures.append(Figure(median.value, clamp.lower, clamp.upper, True))
        else:
            figures.append(
                median_figure(
                    median.value,
                    brackets["lower_bracket"].value,
                    brackets["upper_bracket"].value,
                    step=step,
                    bounds=(clamp.lower, clamp.upper),
                )
            )
    measurements = [
        *([bought] if bought is not None else []),
        *(_quantile_part(part, costliest[part], k, index, chosen[part]) for part in per_cell),
    ]
    return IndicatorRelease(indicator, layout, figures, measurements, [None] * len(layout), count)


def _quantile_part(part: str, costliest: NoisyQuantile, k: int, index: list[int], values: list[float]) -> Measurement:
    """One quantile part over all cells, accounted as k compositions of its costliest cell measurement.

    A unit has values in at most k cells, and the cells' measurements read disjoint values, so what a
    person's units can change is at most k cell measurements (parallel composition over the rest);
    OpenDP's composition of k copies of the costliest gives its ρ for any number of units.
    """
    accounting = _over_cells(costliest.measurement, k)
    return Measurement(part, "quantile", float(accounting.map(1)), costliest.scale, 1.0, index, values, accounting)


def _over_cells(cell_measurement: dp.Measurement, k: int) -> dp.Measurement:
    """A quantile part as it is accounted: k compositions of one cell's measurement (``_quantile_part``)."""
    return dp.c.make_composition([cell_measurement] * k)


def _bracket_offset(scale: float, people_at_least: float) -> float:
    """How far below and above one half the bracketing quantiles sit, as a share of the people.

    ``scale`` is the bracket's scale at alpha = 1/2. A quantile at 1/2 - d needs scale (1 + 2d) times
    that at the same rho (its score's sensitivity grows with max(alpha, 1 - alpha)), so its rank
    error is (1 + 2d) t0 with t0 the error at ``scale``; asking
    d n >= (1 + 2d) t0 gives d = (t0 / n) / (1 - 2 t0 / n).
    """
    if people_at_least <= 0:
        return MAX_BRACKET_OFFSET
    error = quantile_rank_error(scale, BRACKET_BETA) / people_at_least
    return MAX_BRACKET_OFFSET if error >= MAX_BRACKET_OFFSET / (1 + 2 * MAX_BRACKET_OFFSET) else error / (1 - 2 * error)


# The alphas each quantile part may be measured at (``_median``): a median's is 1/2; a bracket's lies up to
# MAX_BRACKET_OFFSET from it, on either side (the map is the same at alpha and 1 - alpha), set by the noisy count, and
# no package records it.
_PART_ALPHAS = {
    "median": (0.5, 0.5),
    "lower_bracket": (0.5, 0.5 + MAX_BRACKET_OFFSET),
    "upper_bracket": (0.5, 0.5 + MAX_BRACKET_OFFSET),
}


@dataclass(frozen=True)
class RecordedMeasurement:
    """A noisy measurement as a release package records it (``release.json``), with its indicator's bound on the
    cells one unit counts in (``max_cells_per_person``)."""

    indicator_id: str
    name: str
    mechanism: str
    rho: float
    scale: float
    sensitivity: float
    cells_per_person: int


def recorded_charge(recorded: RecordedMeasurement, *, units: int) -> Charge:
    """What a measurement a release made cost, from the OpenDP measurement its recorded parameters describe, rebuilt
    for its map and never run: its ρ per unit, which must be what that map gives (to ``ROUNDING``), and its ρ for a
    person held as ``units`` units. Raise ``ValueError`` where the map gives another ρ, or no release makes such a
    measurement.

    - discrete Gaussian: its scale and L2 sensitivity fix its map (``gaussian_measurement``);
    - a quantile part: the quantile mechanism at its scale, over ``cells_per_person`` cells (``_quantile_part``), at
      alpha 1/2 for a median; a bracket's alpha is not recorded, and is taken as the largest its ρ allows
      (``_quantile_alpha``).

    Both figures are those the release charged, never less (the ρ per unit is the recorded one, or the map's where
    that is a rounding more; a bracket's at ``units`` grows with its alpha).
    """
    try:
        if recorded.mechanism == "discrete_gaussian":
            measurement = gaussian_measurement(_not_run, l2_sensitivity=recorded.sensitivity, scale=recorded.scale)
        elif recorded.mechanism == "quantile" and recorded.name in _PART_ALPHAS and recorded.sensitivity == 1:
            measurement = _quantile_part_of(recorded, _quantile_alpha(recorded))
        else:
            raise ValueError(
                f"no release makes a {recorded.mechanism} measurement {recorded.name!r} of sensitivity "
                f"{recorded.sensitivity}"
            )
        mapped, at_units = float(measurement.map(1)), float(measurement.map(units))
    except dp.OpenDPException as error:
        raise ValueError(f"OpenDP cannot measure with its parameters: {str(error).strip()[:200]}") from error
    if not math.isfinite(at_units) or abs(mapped - recorded.rho) > ROUNDING * mapped:
        alphas = _PART_ALPHAS.get(recorded.name, ()) if recorded.mechanism == "quantile" else ()
        at = f" at any alpha from {alphas[0]} to {alphas[1]}" if len(set(alphas)) == 2 else ""
        raise ValueError(
            f"rho {recorded.rho!r} is not what OpenDP's map gives for its parameters (scale {recorded.scale!r}, "
            f"sensitivity {recorded.sensitivity!r}){at}: {mapped!r}"
        )
    return Charge(
        recorded.indicator_id,
        recorded.name,
        max(recorded.rho, mapped),
        recorded.mechanism,
        recorded.scale,
        recorded.sensitivity,
        units,
        at_units,
    )


def _quantile_part_of(recorded: RecordedMeasurement, alpha: float) -> dp.Measurement:
    """The quantile part ``recorded`` describes, at ``alpha`` (its map does not depend on the candidates)."""
    cell = quantile_measurement(0, candidates=(0, 1), alpha=alpha, scale=recorded.scale)
    return _over_cells(cell, recorded.cells_per_person)


def _quantile_alpha(recorded: RecordedMeasurement) -> float:
    """The largest alpha a quantile part may have had at which OpenDP's map gives no more than its recorded ρ (by
    OpenDP's search): its own, where the ρ is one the part gives, and its ρ at more units is then never below the
    release's, the maps growing with alpha. The least alpha where even that gives more (a ρ no alpha gives)."""
    least, most = _PART_ALPHAS[recorded.name]
    if _quantile_part_of(recorded, most).map(1) <= recorded.rho:
        return most
    if _quantile_part_of(recorded, least).map(1) > recorded.rho:
        return least
    return float(
        dp.binary_search_param(
            lambda alpha: _quantile_part_of(recorded, alpha), d_in=1, d_out=recorded.rho, bounds=(least, most), T=float
        )
    )


def _not_run(aggregates: BoundedAggregates) -> list[int]:
    raise AssertionError("a measurement rebuilt for its privacy map is never run")
