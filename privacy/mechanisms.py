"""Noise, from OpenDP's samplers only, and privacy loss, from OpenDP's maps only.

Every noisy output is an OpenDP measurement on one indicator's bounded aggregates
(``privacy.bounding.BoundedAggregates``): a user transformation, whose stability map is the
sensitivity stated in ``privacy.bounding`` per privacy unit, chained to an OpenDP mechanism. Its
input distance is the number of privacy units one person is held as (``PRIVACY_UNITS``), so
``measurement.map(m)`` is the ρ for a person held as m units: the stability map gives m times the
per-unit sensitivity (triangle inequality: each unit moves the output by at most that much) and the
mechanism's own map does the rest (for the Gaussian, (m Δ₂)² / (2σ²) = m² ρ₁; group privacy under
zCDP is quadratic).

Counts and sums are integer vectors released with the discrete Gaussian mechanism under
zero-concentrated DP (``dp.m.make_gaussian`` over an integer vector domain). For a query whose L2
sensitivity is Δ₂, adding discrete Gaussian noise of scale σ to every coordinate satisfies
ρ-zCDP with ρ = Δ₂² / (2σ²) (Canonne, Kamath & Steinke 2020, Thm 14). OpenDP's discrete Gaussian
accepts a float-typed L2 distance (our Δ₂ = √k is rarely an integer), so one chained measurement both
draws the noise and gives ρ.

Medians and other quantiles use OpenDP's quantile mechanism (``dp.m.make_private_quantile``, the
exponential mechanism over public candidates scored as in Smith 2011) under zCDP, with ρ from its
own privacy map; one unit adds or removes at most one value of a cell.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import opendp.prelude as dp

from privacy.bounding import BoundedAggregates

# "honest-but-curious": our bounded queries enter OpenDP as user transformations whose stability maps
# are the sensitivities stated (and property-tested) in ``privacy.bounding``; OpenDP then computes ρ
# for any number of privacy units by chaining those maps to its mechanisms' own.
dp.enable_features("contrib", "honest-but-curious")

# The input of every measurement: one indicator's bounded aggregates for one period.
AGGREGATES = dp.user_domain("BoundedAggregates", member=lambda value: isinstance(value, BoundedAggregates))
# Its distance: how many privacy units differ. A person held as m units (m charities that do not link
# records) is at distance m from the warehouse without them.
PRIVACY_UNITS = dp.user_distance("privacy units (add or remove one unit's bounded rows)")

# 64-bit integers: a sum of clamped pounds over a million people passes 2**31.
_INT_VECTORS = (dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="i64"))
_FLOAT_VECTORS = (dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l2_distance(T=float))


def rho_of(scale: float, l2_sensitivity: float) -> float:
    """ρ spent by the discrete Gaussian of ``scale`` on a query of L2 sensitivity ``l2_sensitivity``."""
    return float(dp.m.make_gaussian(*_FLOAT_VECTORS, scale=scale).map(float(l2_sensitivity)))


def scale_for(rho: float, l2_sensitivity: float) -> float:
    """The smallest noise scale whose ρ (by OpenDP's map) is at most ``rho``.

    ρ = Δ₂² / (2σ²) gives σ = Δ₂ / sqrt(2ρ); OpenDP's map checks it (and σ a billionth larger, for
    when floating point puts it a hair over ``rho``), and a binary search on the map is the fallback.
    """
    if rho <= 0:
        raise ValueError(f"rho must be positive, got {rho}")
    exact = float(l2_sensitivity) / math.sqrt(2 * rho)
    for scale in (exact, exact * (1 + 1e-9)):
        if rho_of(scale, l2_sensitivity) <= rho:
            return scale
    return float(
        dp.binary_search_param(
            lambda scale: dp.m.make_gaussian(*_FLOAT_VECTORS, scale=scale), d_in=float(l2_sensitivity), d_out=rho
        )
    )


def gaussian_measurement(
    query: Callable[[BoundedAggregates], Sequence[int]], *, l2_sensitivity: float, scale: float
) -> dp.Measurement:
    """``query`` of the bounded aggregates, then discrete Gaussian noise of ``scale`` on each coordinate.

    Stability: one privacy unit moves ``query``'s output by at most ``l2_sensitivity`` in L2 norm (the
    caller's stated bound), so m units move it by at most m times that.
    """
    transformation = dp.t.make_user_transformation(
        AGGREGATES,
        PRIVACY_UNITS,
        _INT_VECTORS[0],
        dp.l2_distance(T=float),
        function=lambda aggregates: np.asarray(query(aggregates), dtype=np.int64),
        stability_map=lambda units: float(units) * float(l2_sensitivity),
    )
    return transformation >> dp.m.then_gaussian(scale=scale)


@dataclass(frozen=True)
class NoisyVector:
    values: list[int]
    scale: float
    rho: float
    l2_sensitivity: float
    measurement: dp.Measurement


def discrete_gaussian(
    aggregates: BoundedAggregates,
    query: Callable[[BoundedAggregates], Sequence[int]],
    *,
    l2_sensitivity: float,
    rho: float,
) -> NoisyVector:
    """Release ``query(aggregates)`` under ``rho``-zCDP per privacy unit, given the query's L2 sensitivity.

    Guarantee: if changing one privacy unit moves the query by at most ``l2_sensitivity`` in L2 norm,
    the output is ``rho``-zCDP for that unit. The returned ``rho`` is OpenDP's map at one unit and
    never exceeds the requested one; ``measurement.map(m)`` is the ρ for a person held as m units.
    """
    scale = scale_for(rho, l2_sensitivity)
    measurement = gaussian_measurement(query, l2_sensitivity=l2_sensitivity, scale=scale)
    spent = float(measurement.map(1))
    if spent > rho:
        raise AssertionError(f"OpenDP's map gives rho={spent} > requested {rho}")
    return NoisyVector(
        values=[int(v) for v in measurement(aggregates)],
        scale=scale,
        rho=spent,
        l2_sensitivity=l2_sensitivity,
        measurement=measurement,
    )


@cache
def interval_half_width(scale: float, alpha: float = 0.05) -> float:
    """Half-width a of the (1 - alpha) interval of discrete Gaussian noise: P(|noise| > a) <= alpha."""
    return float(dp.discrete_gaussian_scale_to_accuracy(scale=scale, alpha=alpha))


_INT_SAMPLES = (dp.vector_domain(dp.atom_domain(T="i64")), dp.symmetric_distance())


def _quantile(candidates: Sequence[int], alpha: float, scale: float) -> dp.Measurement:
    return dp.m.make_private_quantile(
        *_INT_SAMPLES,
        dp.zero_concentrated_divergence(),
        candidates=np.asarray(candidates, dtype=np.int64),
        alpha=alpha,
        scale=scale,
    )


@dataclass(frozen=True)
class NoisyQuantile:
    value: int
    scale: float
    rho: float
    measurement: dp.Measurement


def quantile_scale(candidates: Sequence[int], alpha: float, rho: float) -> float:
    """The smallest scale at which OpenDP's quantile mechanism spends at most ``rho`` per unit value.

    The score's sensitivity is proportional to max(alpha, 1 - alpha), so the scale found for the
    median, times 2 max(alpha, 1 - alpha), is the answer for ``alpha``; OpenDP's own map checks it,
    and a binary search on the map is the fallback.
    """
    if rho <= 0:
        raise ValueError(f"rho must be positive, got {rho}")
    scale = _quantile_scale(tuple(candidates), 0.5, rho) * 2 * max(alpha, 1 - alpha)
    if _quantile(candidates, alpha, scale).map(1) <= rho:
        return scale
    return _quantile_scale(tuple(candidates), alpha, rho)


@cache
def _quantile_scale(candidates: tuple[int, ...], alpha: float, rho: float) -> float:
    return float(dp.binary_search_param(lambda s: _quantile(candidates, alpha, s), d_in=1, d_out=rho, T=float))


def quantile_measurement(cell: int, *, candidates: Sequence[int], alpha: float, scale: float) -> dp.Measurement:
    """The values of cell ``cell``, then OpenDP's quantile mechanism at ``alpha`` and ``scale`` over ``candidates``.

    Stability: one privacy unit adds or removes at most one value of a cell (``bounded_aggregates`` keeps one row
    per unit and cell), so m units change at most m values. Its map depends on ``alpha`` and ``scale``, not on the
    candidates (checked in tests).
    """
    values_of_cell = dp.t.make_user_transformation(
        AGGREGATES,
        PRIVACY_UNITS,
        _INT_SAMPLES[0],
        _INT_SAMPLES[1],
        function=lambda a: np.asarray(a.values[cell], dtype=np.int64),
        stability_map=lambda units: int(units),
    )
    return values_of_cell >> _quantile(candidates, alpha, scale)


def private_quantile(
    aggregates: BoundedAggregates, cell: int, *, candidates: Sequence[int], alpha: float, rho: float
) -> NoisyQuantile:
    """The ``alpha``-quantile of cell ``cell``'s values, chosen among public ``candidates`` by OpenDP's
    quantile mechanism.

    Stability as ``quantile_measurement``'s. The output is ``rho``-zCDP per unit (OpenDP's map at one unit, never
    above ``rho``). A unit whose values reach k cells is in k such measurements (see ``privacy.estimators``).
    """
    if aggregates.values is None:
        raise ValueError("the aggregates hold no values for a quantile")
    scale = quantile_scale(candidates, alpha, rho)
    measurement = quantile_measurement(cell, candidates=candidates, alpha=alpha, scale=scale)
    spent = float(measurement.map(1))
    if spent > rho:
        raise AssertionError(f"OpenDP's map gives rho={spent} > requested {rho}")
    return NoisyQuantile(value=int(measurement(aggregates)), scale=scale, rho=spent, measurement=measurement)


def quantile_rank_error(scale: float, beta: float) -> float:
    """A rank distance the quantile mechanism at ``scale`` overshoots on one side with probability about ``beta``.

    Over candidates dense in rank, its choice lands a Laplace-like distance of scale ``scale`` from
    the target rank, so P(error > t) = exp(-t / scale) / 2 gives t = scale * ln(1 / (2 beta)).
    Coarser candidates only make the error smaller; ``bench/utility.py`` measures the coverage.
    """
    return scale * math.log(1 / (2 * beta))


def rho_at_units(rho: float, units: int) -> float:
    """ρ for a person held as ``units`` privacy units by a measurement whose ρ at one unit is ``rho``.

    Every measurement here is a zCDP mechanism behind a stability map linear in units (``PRIVACY_UNITS``),
    so its map at m units is that of a Gaussian whose map at one unit is ``rho`` (m² ρ; checked against
    each indicator's own measurements in tests): OpenDP's map of that Gaussian at ``units``. What the
    ledger keeps of a measurement, its ρ at one unit, is enough to charge it at more units later.
    """
    if rho <= 0:
        return 0.0
    return float(dp.m.make_gaussian(*_FLOAT_VECTORS, scale=(2 * rho) ** -0.5).map(float(units)))


def epsilon_at(rho: float, delta: float) -> float:
    """The (ε, δ)-DP equivalent of ρ-zCDP at ``delta``, by OpenDP's zCDP -> approximate-DP conversion."""
    if rho <= 0:
        return 0.0
    # A Gaussian measurement whose map at distance 1 is exactly rho carries rho's privacy profile.
    unit = dp.m.make_gaussian(*_FLOAT_VECTORS, scale=(2 * rho) ** -0.5)
    return float(dp.c.make_zCDP_to_approxDP(unit).map(1.0).epsilon(delta))
