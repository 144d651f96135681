"""Post-processing of noisy outputs. Anything computed only from DP outputs and public facts (the
noise scale, the key sets) is itself DP with the same ρ, so nothing here spends budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from privacy.mechanisms import NoisyVector, interval_half_width


@dataclass(frozen=True)
class PublishedCount:
    noisy_value: int
    value: int
    ci_low: int
    ci_high: int
    low_reliability: bool


def publish_counts(noisy: NoisyVector, alpha: float = 0.05) -> list[PublishedCount]:
    """Non-negative integer counts with (1 - alpha) intervals from the known noise scale.

    The interval is the noisy value ± the discrete Gaussian's (1 - alpha) accuracy, clipped at zero
    because a count cannot be negative; the value is clipped the same way. A figure whose interval is
    wider than the figure itself is flagged ``low_reliability`` rather than withheld.
    """
    half_width = math.ceil(interval_half_width(noisy.scale, alpha))
    published = []
    for raw in noisy.values:
        value = max(0, raw)
        low, high = max(0, raw - half_width), max(0, raw + half_width)
        published.append(PublishedCount(raw, value, low, high, (high - low) > value))
    return published
