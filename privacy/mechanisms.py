"""Noise, from OpenDP's samplers only.

Counts and sums are integer vectors released with the discrete Gaussian mechanism under
zero-concentrated DP (``dp.m.make_gaussian`` over an integer vector domain). For a query whose L2
sensitivity is Δ₂, adding discrete Gaussian noise of scale σ to every coordinate satisfies
ρ-zCDP with ρ = Δ₂² / (2σ²) (Canonne, Kamath & Steinke 2020, Thm 14).

OpenDP's integer L2 metric takes integer distances, but our bounded queries have Δ₂ = √k. The
privacy map of the float-typed Gaussian measurement is the same formula and accepts √k, so ρ is
always computed by OpenDP's own map on that measurement, while the noise is drawn by the integer
one with the identical scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import opendp.prelude as dp

_INT_VECTORS = (dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=int))
_FLOAT_VECTORS = (dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l2_distance(T=float))


def rho_of(scale: float, l2_sensitivity: float) -> float:
    """ρ spent by the discrete Gaussian of ``scale`` on a query of L2 sensitivity ``l2_sensitivity``."""
    return float(dp.m.make_gaussian(*_FLOAT_VECTORS, scale=scale).map(float(l2_sensitivity)))


def scale_for(rho: float, l2_sensitivity: float) -> float:
    """The smallest noise scale whose ρ (by OpenDP's map) is at most ``rho``."""
    if rho <= 0:
        raise ValueError(f"rho must be positive, got {rho}")
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
        values=list(measurement([int(c) for c in counts])), scale=scale, rho=spent, l2_sensitivity=l2_sensitivity
    )


def interval_half_width(scale: float, alpha: float = 0.05) -> float:
    """Half-width a of the (1 - alpha) interval of discrete Gaussian noise: P(|noise| > a) <= alpha."""
    return float(dp.discrete_gaussian_scale_to_accuracy(scale=scale, alpha=alpha))


def epsilon_at(rho: float, delta: float) -> float:
    """The (ε, δ)-DP equivalent of ρ-zCDP at ``delta``, by OpenDP's zCDP -> approximate-DP conversion."""
    if rho <= 0:
        return 0.0
    # A Gaussian measurement whose map at distance 1 is exactly rho carries rho's privacy profile.
    unit = dp.m.make_gaussian(*_FLOAT_VECTORS, scale=(2 * rho) ** -0.5)
    return float(dp.c.make_zCDP_to_approxDP(unit).map(1.0).epsilon(delta))
