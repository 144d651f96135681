"""Published intervals are never narrower than the intervals computed: rounding a mean's or a share's ends moves
them outwards (found by an analyst's trial of a release, session 31: 22 intervals rounded inwards)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from privacy.postprocess import Z_95, ratio_estimate, ratio_figure, share_estimate, share_figure

noisy_count = st.floats(min_value=-50, max_value=1e6, allow_nan=False)
variance = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False)
decimals = st.integers(min_value=0, max_value=4)


@given(noisy_count, variance, noisy_count, variance, decimals)
def test_a_ratios_published_interval_holds_the_computed_one(
    numerator: float, numerator_variance: float, denominator: float, denominator_variance: float, places: int
) -> None:
    bounds = (0.0, 10_000.0)
    figure = ratio_figure(
        numerator, numerator_variance, denominator, denominator_variance, bounds=bounds, decimals=places
    )
    estimate = ratio_estimate(numerator, numerator_variance, denominator, denominator_variance)
    assert figure.ci_low <= figure.value <= figure.ci_high
    if estimate is not None:
        ratio, ratio_variance = estimate
        half_width = Z_95 * math.sqrt(ratio_variance)
        assert figure.ci_low <= max(bounds[0], ratio - half_width)
        assert figure.ci_high >= min(bounds[1], ratio + half_width)


@given(noisy_count, noisy_count, variance, decimals)
def test_a_shares_published_interval_holds_the_computed_one(
    with_condition: float, without_condition: float, count_variance: float, places: int
) -> None:
    figure = share_figure(with_condition, without_condition, count_variance, decimals=places)
    estimate = share_estimate(max(0.0, with_condition), max(0.0, without_condition), count_variance)
    assert 0.0 <= figure.ci_low <= figure.value <= figure.ci_high <= 1.0
    if estimate is not None:
        share, share_variance = estimate
        half_width = Z_95 * math.sqrt(share_variance)
        assert figure.ci_low <= max(0.0, share - half_width)
        assert figure.ci_high >= min(1.0, share + half_width)


def test_a_share_or_a_mean_of_a_cell_that_may_hold_nobody_says_nothing() -> None:
    """Found by an analyst's trial (session 31): a share of 0.94, its interval 0.5 to 1, unflagged, and a mean debt of
    £0.00, each of a cell whose noisy count of people (3.2, its noise's deviation 5) may well be nobody."""
    share = share_figure(3.0, 0.2, 25.0, decimals=5)
    assert (share.value, share.ci_low, share.ci_high, share.low_reliability) == (0.5, 0.0, 1.0, True)
    mean = ratio_figure(-2.0, 400.0, 3.2, 25.0, offset=0.0, bounds=(0.0, 5_000.0), decimals=2)
    assert (mean.value, mean.ci_low, mean.ci_high, mean.low_reliability) == (2_500.0, 0.0, 5_000.0, True)
    # Ten deviations from zero, the cell holds people: the figure is the ratio.
    assert share_figure(90.0, 10.0, 25.0, decimals=5).value == 0.9
