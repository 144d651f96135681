"""Consistency over the geography hierarchy: exact weighted least squares, non-negativity, rounding."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.hierarchy import aggregate_up, consistent_estimates, forest, round_keeping_sums
from standards.catalogue import load_catalogue

INDICATOR = load_catalogue().get("people_by_local_authority")
TREE = forest(INDICATOR)
LEAVES = np.array([i for i, cell in enumerate(TREE.cells) if cell.level == "local_authority"])
LEVEL_VARIANCE = {"uk": 400.0, "nation": 90.0, "region": 25.0, "local_authority": 4.0}


def _measure(truth: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # Test data only: the noise of releases comes from OpenDP, never from here.
    generator = np.random.default_rng(seed)
    variance = np.array([LEVEL_VARIANCE[cell.level or ""] for cell in TREE.cells])
    return aggregate_up(TREE, LEAVES, truth).astype(float) + generator.normal(0, np.sqrt(variance)), variance


def test_the_two_pass_estimate_is_the_exact_weighted_least_squares_solution() -> None:
    truth = np.arange(len(LEAVES)) % 50 + 100
    measured, variance = _measure(truth, seed=1)
    estimate = consistent_estimates(TREE, measured, variance, non_negative=False)
    design = np.zeros((len(TREE.cells), len(LEAVES)))  # each published cell as a sum of leaves
    design[LEAVES, np.arange(len(LEAVES))] = 1
    for parent in reversed(TREE.top_down()):
        design[parent] = design[TREE.children[parent]].sum(axis=0)
    weights = 1 / variance
    normal = design.T @ (design * weights[:, None])
    leaves = np.linalg.solve(normal, design.T @ (weights * measured))
    np.testing.assert_allclose(estimate.value, design @ leaves, rtol=1e-9, atol=1e-6)
    covariance = design @ np.linalg.inv(normal) @ design.T
    np.testing.assert_allclose(estimate.variance, np.diag(covariance), rtol=1e-9)
    assert (estimate.variance[LEAVES] < 4.0).all()  # every leaf gains from its ancestors' measurements


def test_unmeasured_levels_are_sums_of_their_children() -> None:
    truth = np.full(len(LEAVES), 10)
    measured, variance = _measure(truth, seed=2)
    upper = [i for i, cell in enumerate(TREE.cells) if cell.level in ("uk", "nation")]
    measured[upper], variance[upper] = np.nan, np.inf
    estimate = consistent_estimates(TREE, measured, variance)
    for parent, kids in TREE.children.items():
        assert (
            estimate.value[parent] == np.float64(estimate.value[kids].sum())
            or abs(estimate.value[parent] - estimate.value[kids].sum()) < 1e-6
        )


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), sparse=st.booleans())
def test_non_negative_estimates_stay_consistent_and_rounding_keeps_every_sum(seed, sparse) -> None:
    truth = np.where(np.arange(len(LEAVES)) % (7 if sparse else 1) == 0, (np.arange(len(LEAVES)) * seed) % 40, 0)
    measured, variance = _measure(truth, seed)
    estimate = consistent_estimates(TREE, measured, variance)
    assert (estimate.value >= 0).all()
    rounded = round_keeping_sums(TREE, estimate.value)
    assert (rounded >= 0).all() and (np.abs(rounded - estimate.value) < 1).all()
    for parent, kids in TREE.children.items():
        assert abs(estimate.value[parent] - estimate.value[kids].sum()) < 1e-6
        assert rounded[parent] == rounded[kids].sum()
