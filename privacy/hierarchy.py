"""Consistency of noisy measurements over the geography hierarchy, as in the Census TopDown algorithm.

An indicator with an ``area`` breakdown is measured at several levels (UK, nations, regions, local
authorities), each with independent discrete Gaussian noise of a known variance. The published
figures are the weighted least squares estimate of the finest cells given every measurement,
computed exactly on the tree in two passes (Hay, Rastogi, Miklau & Suciu 2010): bottom up, each
area's own measurement is combined with the sum of its children's estimates by inverse-variance
weights; top down, each parent's estimate is shared among its children in proportion to their
variances. Non-negativity is imposed in the top-down pass, as TopDown does, by projecting each set
of children onto the non-negative values that sum to their parent (weighted by variance). Integer
rounding then keeps every sum: each area's integer is its estimate rounded up or down, chosen so
that children add up to their parent's integer.

Everything here is post-processing of DP outputs and public facts (the tree, the noise variances):
it spends no privacy budget and draws no randomness.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from standards.catalogue import Cell, Indicator, area_tree, cells

_SNAP = 1e-7


@dataclass(frozen=True)
class Forest:
    """Published cells as a forest: ``parent[i]`` is the cell that cell i adds up to (-1 for a root)."""

    cells: list[Cell]
    parent: np.ndarray
    depth: np.ndarray

    @cached_property
    def children(self) -> dict[int, np.ndarray]:
        groups: dict[int, list[int]] = {}
        for child, parent in enumerate(self.parent):
            if parent >= 0:
                groups.setdefault(int(parent), []).append(child)
        return {parent: np.array(kids) for parent, kids in groups.items()}

    def top_down(self) -> list[int]:
        """Parents in an order where every parent comes after its own parent."""
        return sorted(self.children, key=lambda i: self.depth[i])


def forest(indicator: Indicator) -> Forest:
    """The forest of an indicator's published cells: one tree per combination of its other breakdowns."""
    layout = cells(indicator)
    parent = np.full(len(layout), -1, dtype=np.int64)
    depth = np.zeros(len(layout), dtype=np.int64)
    if indicator.area_levels is not None:
        nodes = area_tree(tuple(indicator.area_levels))
        node_of = {(node.level, node.code): i for i, node in enumerate(nodes)}
        node_depth: list[int] = []
        for node in nodes:
            node_depth.append(0 if node.parent is None else node_depth[node.parent] + 1)
        area = indicator.breakdowns.index("area")
        position = {(cell.level, cell.keys): i for i, cell in enumerate(layout)}
        for i, cell in enumerate(layout):
            node = node_of[(cell.level or "", cell.keys[area])]
            depth[i] = node_depth[node]
            above = nodes[node].parent
            if above is not None:
                keys = (*cell.keys[:area], nodes[above].code, *cell.keys[area + 1 :])
                parent[i] = position[(nodes[above].level, keys)]
    return Forest(cells=layout, parent=parent, depth=depth)


def aggregate_up(tree: Forest, leaf_index: np.ndarray, leaf_values: np.ndarray) -> np.ndarray:
    """Every cell's exact value from the leaves' values: each parent is the sum of its children."""
    values = np.zeros(len(tree.cells), dtype=leaf_values.dtype)
    values[leaf_index] = leaf_values
    for parent in reversed(tree.top_down()):
        values[parent] = values[tree.children[parent]].sum()
    return values


@dataclass(frozen=True)
class Estimate:
    """Consistent estimates of every cell and their variances (ignoring the non-negativity step)."""

    value: np.ndarray
    variance: np.ndarray


def _project(estimates: np.ndarray, variances: np.ndarray, total: float) -> np.ndarray:
    """argmin sum((x - estimates)^2 / variances) subject to sum(x) = total, x >= 0 (total >= 0).

    The solution is x_i = max(0, estimates_i + lambda * variances_i) for the lambda that meets the
    total; lambda is found exactly among the breakpoints -estimates_i / variances_i.
    """
    if total <= 0:
        return np.zeros_like(estimates)
    breakpoints = -estimates / variances
    order = np.argsort(breakpoints)
    sums, weights = np.cumsum(estimates[order]), np.cumsum(variances[order])
    lambdas = (total - sums) / weights
    upper = np.append(breakpoints[order][1:], np.inf)
    valid = np.nonzero((lambdas > breakpoints[order] - 1e-12) & (lambdas <= upper + 1e-12))[0]
    chosen = lambdas[valid[0]] if len(valid) else lambdas[-1]
    return np.maximum(0.0, estimates + chosen * variances)


def consistent_estimates(
    tree: Forest, measured: np.ndarray, variance: np.ndarray, *, non_negative: bool = True
) -> Estimate:
    """Weighted least squares over ``tree`` given noisy ``measured`` values (NaN where a cell was not
    measured, with infinite ``variance``); leaves must all be measured.

    Without ``non_negative`` this is the exact BLUE for the tree; with it, each step of the top-down
    pass is the non-negative weighted projection, so every estimate is >= 0 and children still sum
    exactly to their parent.
    """
    combined = np.where(np.isnan(measured), 0.0, measured).astype(float)
    combined_var = variance.astype(float).copy()
    children = tree.children
    order = tree.top_down()
    for parent in reversed(order):
        kids = children[parent]
        total, total_var = combined[kids].sum(), combined_var[kids].sum()
        if np.isfinite(variance[parent]):
            weight = total_var / (total_var + variance[parent])
            combined[parent] = weight * measured[parent] + (1 - weight) * total
            combined_var[parent] = total_var * variance[parent] / (total_var + variance[parent])
        else:
            combined[parent], combined_var[parent] = total, total_var
    value = combined.copy()
    final_var = combined_var.copy()
    roots = tree.parent < 0
    if non_negative:
        value[roots] = np.maximum(0.0, value[roots])
    for parent in order:
        kids = children[parent]
        share = combined_var[kids] / combined_var[kids].sum()
        if non_negative:
            value[kids] = _project(combined[kids], combined_var[kids], value[parent])
        else:
            value[kids] = combined[kids] + share * (value[parent] - combined[kids].sum())
        final_var[kids] = combined_var[kids] * (1 - share) + share**2 * final_var[parent]
    return Estimate(value=value, variance=final_var)


def _round_children(values: np.ndarray, total: int) -> np.ndarray:
    """Round ``values`` (>= 0, summing to about ``total``) up or down so that they sum to ``total``."""
    floors = np.floor(values + _SNAP)
    fractions = np.where(values - floors > _SNAP, values - floors, 0.0)
    missing = int(total - floors.sum())
    rounded = floors.astype(np.int64)
    candidates = np.nonzero(fractions)[0]
    if 0 <= missing <= len(candidates):
        rounded[candidates[np.argsort(-fractions[candidates], kind="stable")[:missing]]] += 1
        return rounded
    # Only floating-point drift lands here: move the largest cells by one until the sum is exact.
    step = 1 if missing > 0 else -1
    while missing:
        index = int(np.argmax(rounded))
        if step > 0:
            index = int(np.argmax(values - rounded))
        rounded[index] += step
        missing -= step
    return rounded


def round_keeping_sums(tree: Forest, values: np.ndarray) -> np.ndarray:
    """Integers for non-negative consistent ``values``: roots rounded to nearest, then each parent's
    children rounded up or down so that they add up exactly to the parent's integer."""
    rounded = np.zeros(len(values), dtype=np.int64)
    roots = tree.parent < 0
    rounded[roots] = np.rint(values[roots]).astype(np.int64)
    for parent in tree.top_down():
        kids = tree.children[parent]
        rounded[kids] = _round_children(values[kids], int(rounded[parent]))
    return rounded
