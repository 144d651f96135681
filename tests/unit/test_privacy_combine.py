"""``privacy.combine``: the one function for totals and differences, and the estimates it is given."""

from __future__ import annotations

import math

import numpy as np
import pytest

from privacy.bounding import BoundedAggregates, finest_cells
from privacy.combine import Z_95, combine, difference
from privacy.estimators import release_indicator
from standards.catalogue import load_catalogue


def test_a_weighted_sum_adds_estimates_and_weighted_variances() -> None:
    total = combine([10.0, -2.0, 5.0], [4.0, 4.0, 1.0])
    assert total.value == 13.0 and total.variance == 9.0 and not total.approximate
    assert (total.low, total.high) == pytest.approx((13 - Z_95 * 3, 13 + Z_95 * 3))
    change = difference(20.0, 9.0, 5.0, 16.0, approximate=True)
    assert change.value == 15.0 and change.variance == 25.0 and change.approximate and change.excludes_zero
    mean = combine([1.0, 3.0], [1.0, 1.0], [0.5, 0.5])
    assert mean.value == 2.0 and mean.variance == 0.5


def test_a_floor_clips_the_interval_never_the_estimate() -> None:
    empty = combine([-3.0, -1.0], [4.0, 4.0], floor=0.0)
    assert empty.value == -4.0 and empty.low == 0.0 and empty.high == pytest.approx(max(0.0, -4 + Z_95 * math.sqrt(8)))


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="one variance"):
        combine([1.0], [])
    with pytest.raises(ValueError, match="one weight"):
        combine([1.0], [1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="non-negative"):
        combine([1.0], [-1.0])


def test_each_count_cell_publishes_its_own_noisy_measurement_and_its_variance() -> None:
    indicator = load_catalogue().get("people_by_need_region")
    layout = finest_cells(indicator)
    people = np.zeros(len(layout), dtype=np.int64)
    people[:10] = 50
    aggregates = BoundedAggregates(cells=layout, vectors={"people": people})
    released = release_indicator(indicator, aggregates, rho=0.5)
    (measurement,) = released.measurements
    assert [e[0] for e in released.estimates] == measurement.values  # unclipped: empty cells can be negative
    assert all(e[1] == pytest.approx(measurement.scale**2) for e in released.estimates)
    # Ratios publish their delta-method estimate; a median has none.
    median = load_catalogue().get("median_debt_by_region")
    values = BoundedAggregates(
        cells=finest_cells(median),
        vectors={"people": np.full(len(finest_cells(median)), 5, dtype=np.int64)},
        values=[[1000, 2000, 3000, 4000, 5000]] * len(finest_cells(median)),
    )
    assert release_indicator(median, values, rho=0.5).estimates == [None] * len(finest_cells(median))
