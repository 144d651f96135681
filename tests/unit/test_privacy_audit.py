"""The audit's statistics (bench/privacy_audit.py): exact binomial bounds and a sound ε lower bound."""

from __future__ import annotations

import numpy as np
import pytest

from bench.privacy_audit import clopper_pearson, epsilon_lower_bound


def test_clopper_pearson_matches_known_intervals() -> None:
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 0.3085), abs=1e-4)
    assert clopper_pearson(5, 10) == pytest.approx((0.1871, 0.8129), abs=1e-4)
    assert clopper_pearson(10, 10)[1] == 1.0


def test_identical_outputs_give_no_evidence_and_separated_ones_give_much() -> None:
    rng = np.random.default_rng(1)  # test data only: the scores an attacker computed
    same = rng.normal(size=2000), rng.normal(size=2000)
    assert epsilon_lower_bound(*same, delta=1e-7) < 0.3
    apart = rng.normal(loc=6, size=2000), rng.normal(size=2000)
    assert epsilon_lower_bound(*apart, delta=1e-7) > 3
