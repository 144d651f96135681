"""Noise, from OpenDP's samplers only.

Counts and sums are integer vectors released with the discrete Gaussian mechanism under
zero-concentrated DP (``dp.m.make_gaussian`` over an integer vector domain). For a query whose L2
sensitivity is Δ₂, adding discrete Gaussian noise of scale σ to every coordinate satisfies
ρ-zCDP with ρ = Δ₂² / (2σ²) (Canonne, Kamath & Steinke 2020, Thm 14).

Medians and other quantiles use OpenDP's quantile mechanism (``dp.m.make_private_quantile``, the
exponential mechanism over public candidates scored as in Smith 2011) under zCDP, with ρ from its
own privacy map.

OpenDP's integer L2 metric takes integer distances, but our bounded queries have Δ₂ = √k. The
privacy map of the float-typed Gaussian measurement is the same formula and accepts √k, so ρ is
always computed by OpenDP's own map on that measurement, while the noise is drawn by the integer
one with the identical scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import opendp.prelude as dp

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


@dataclass(frozen=True)
class NoisyVector:
    values: list[int]
    scale: float
    rho: float
    l2_sensitivity: float


def discrete_gaussian(counts: Sequence[int], *, l2_sensitivity: float, rho: float) -> NoisyVector:
    """Release integer ``counts`` under ``rho``-zCDP, given the query's L2 sensitivity.

    Guarantee: if changing one privacy unit moves ``counts`` by at most ``l2_sensitivity`` in L2
    norm, the output is ``rho``-zCDP for that unit. The returned ``rho`` is OpenDP's map at the
    chosen scale and never exceeds the requested one.
    """
    scale = scale_for(rho, l2_sensitivity)
    spent = rho_of(scale, l2_sensitivity)
    if spent > rho:
        raise AssertionError(f"OpenDP's map gives rho={spent} > requested {rho}")
    measurement = dp.m.make_gaussian(*_INT_VECTORS, scale=scale)
    return NoisyVector(
        values=[int(v) for v in measurement(np.asarray(counts, dtype=np.int64))],
        scale=scale,
        rho=spent,
        l2_sensitivity=l2_sensitivity,
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


def private_quantile(values: Sequence[int], *, candidates: Sequence[int], alpha: float, rho: float) -> NoisyQuantile:
    """The ``alpha``-quantile of ``values``, chosen among public ``candidates`` by OpenDP's quantile mechanism.

    Guarantee: if one privacy unit adds or removes at most one value, the output is ``rho``-zCDP for
    that unit (OpenDP's map at distance 1, never above ``rho``). A unit whose values appear in k
    separate calls spends k times that.
    """
    scale = quantile_scale(candidates, alpha, rho)
    measurement = _quantile(candidates, alpha, scale)
    spent = float(measurement.map(1))
    if spent > rho:
        raise AssertionError(f"OpenDP's map gives rho={spent} > requested {rho}")
    return NoisyQuantile(value=int(measurement(np.asarray(values, dtype=np.int64))), scale=scale, rho=spent)


def quantile_rank_error(scale: float, beta: float) -> float:
    """A rank distance the quantile mechanism at ``scale`` overshoots on one side with probability about ``beta``.

    Over candidates dense in rank, its choice lands a Laplace-like distance of scale ``scale`` from
    the target rank, so P(error > t) = exp(-t / scale) / 2 gives t = scale * ln(1 / (2 beta)).
    Coarser candidates only make the error smaller; ``bench/utility.py`` measures the coverage.
    """
    return scale * math.log(1 / (2 * beta))


def epsilon_at(rho: float, delta: float) -> float:
    """The (ε, δ)-DP equivalent of ρ-zCDP at ``delta``, by OpenDP's zCDP -> approximate-DP conversion."""
    if rho <= 0:
        return 0.0
    # A Gaussian measurement whose map at distance 1 is exactly rho carries rho's privacy profile.
    unit = dp.m.make_gaussian(*_FLOAT_VECTORS, scale=(2 * rho) ** -0.5)
    return float(dp.c.make_zCDP_to_approxDP(unit).map(1.0).epsilon(delta))
