"""Coverage of every published 95% interval kind, the site's totals and changes included.

`python -m bench.coverage [--runs 200] [--contacts 4000] [--seed 2026]`. A small synthetic quarter
from the demo generator (seeded; every charity, so many cells are empty) is loaded as the pipeline
loads it and bounded; every catalogue indicator is then released ``--runs`` times at the default ρ
per unit (``PrivacySettings().release_rho`` split by the catalogue), and for each interval kind the
benchmark prints the share of (run, cell) intervals that contain the truth (the exact bounded value).
OpenDP's samplers cannot be seeded, by design: the seed fixes the data, not the noise.

Site totals and bars are computed by the site's own ``combined`` (``privacy.combine`` over each
cell's unclipped estimate and variance); changes by the site's ``change_between`` between two
independent releases of the same quarter (true change zero). The old site total (the sum of
published, clipped values ± 1.96 σ√n) is printed beside them as the anchor. Targets: 93-97%.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import duckdb
import numpy as np

from bench.utility import SALT, build_warehouse, exact_values
from collab.site.model import Estimate, change_between, combined
from collab.workspace import PrivacySettings
from privacy.bounding import bounded_aggregates
from privacy.combine import Z_95
from privacy.estimators import ADDITIVE_VECTORS, IndicatorRelease, release_indicator
from standards.catalogue import load_catalogue

TARGET = (0.93, 0.97)


def _site_estimates(released: IndicatorRelease, index: list[int]) -> list[Estimate]:
    """The cells at ``index`` as the site reads them from the published CSV."""
    approximate = released.indicator.measure in ("mean", "share")
    result = []
    for i in index:
        figure, estimate = released.figures[i], released.estimates[i]
        unclipped, variance = estimate if estimate is not None else (None, None)
        result.append(
            Estimate(
                figure.value, figure.ci_low, figure.ci_high, figure.low_reliability, unclipped, variance, approximate
            )
        )
    return result


class Tally:
    def __init__(self) -> None:
        self.covered: dict[str, int] = defaultdict(int)
        self.total: dict[str, int] = defaultdict(int)

    def add(self, kind: str, low: float, high: float, truth: float) -> None:
        if np.isnan(truth):
            return
        self.total[kind] += 1
        self.covered[kind] += int(low - 1e-9 <= truth <= high + 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--contacts", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    started = time.perf_counter()
    con = duckdb.connect()
    quarter = build_warehouse(con, args.contacts, args.seed)
    catalogue = load_catalogue().indicators
    release_rho = PrivacySettings().release_rho
    aggregates = {i.id: bounded_aggregates(con, i, period=quarter, salt=SALT) for i in catalogue}
    truth = {i.id: exact_values(i, aggregates[i.id]) for i in catalogue}
    print(f"{args.contacts:,} synthetic contacts in {quarter} (seed {args.seed}); rho {release_rho} per unit a release")
    for indicator in catalogue:
        if indicator.measure in ADDITIVE_VECTORS:
            empty = int((truth[indicator.id] == 0).sum())
            print(f"  {indicator.id}: {len(truth[indicator.id])} cells, {empty} empty")
    tally = Tally()
    previous: dict[str, IndicatorRelease] = {}
    for _ in range(args.runs):
        for indicator in catalogue:
            released = release_indicator(indicator, aggregates[indicator.id], release_rho * indicator.budget_share)
            exact = truth[indicator.id]
            measure = indicator.measure
            kind = {
                "share": "share cell (delta method, approximate)",
                "mean": "mean cell (delta method, approximate)",
                "median": "median cell (bracketing quantiles)",
            }.get(measure, "count/sum cell (consistent, clipped at 0)")
            for figure, value in zip(released.figures, exact, strict=True):
                tally.add(kind, figure.ci_low, figure.ci_high, value)
                if measure in ADDITIVE_VECTORS and value == 0:
                    tally.add("count/sum cell, empty cells only", figure.ci_low, figure.ci_high, value)
            if measure in ADDITIVE_VECTORS:
                levels: dict[str | None, list[int]] = defaultdict(list)
                for i, cell in enumerate(released.cells):
                    levels[cell.level].append(i)
                scale = released.measurements[-1].scale
                for index in levels.values():
                    if len(index) < 2:
                        continue
                    truth_total = float(exact[index].sum())
                    site = combined(_site_estimates(released, index))
                    tally.add("site total of a table (privacy.combine)", site.low, site.high, truth_total)
                    old = sum(released.figures[i].value for i in index)
                    half = Z_95 * scale * np.sqrt(len(index))
                    tally.add(
                        "anchor: old site total (clipped values, σ√n)", max(0, old - half), old + half, truth_total
                    )
                if len(indicator.breakdowns) == 2 and indicator.area_levels is None:
                    for key in sorted({cell.keys[0] for cell in released.cells}):
                        index = [i for i, cell in enumerate(released.cells) if cell.keys[0] == key]
                        bar = combined(_site_estimates(released, index))
                        tally.add(
                            "site bar: total over a breakdown (privacy.combine)",
                            bar.low,
                            bar.high,
                            float(exact[index].sum()),
                        )
            if indicator.id in previous and measure != "median":
                before = previous[indicator.id]
                kind = (
                    "site change between releases, counts"
                    if measure in ADDITIVE_VECTORS
                    else "site change between releases, ratios (approximate)"
                )
                for i in range(len(released.cells)):
                    now, then = _site_estimates(released, [i])[0], _site_estimates(before, [i])[0]
                    if now.unclipped is None or then.unclipped is None:
                        continue
                    change = change_between(now, then, "previous")
                    tally.add(kind, change.low, change.high, 0.0)
            previous[indicator.id] = released
    print(f"\nCoverage of 95% intervals over {args.runs} releases ({time.perf_counter() - started:.0f} s):")
    print(f"{'interval kind':<56} {'intervals':>10} {'coverage':>9}")
    for kind in tally.total:
        share = tally.covered[kind] / tally.total[kind]
        mark = "" if kind.startswith("anchor") or TARGET[0] <= share <= TARGET[1] else "  outside 93-97%"
        print(f"{kind:<56} {tally.total[kind]:>10,} {share:>8.1%}{mark}")


if __name__ == "__main__":
    main()
