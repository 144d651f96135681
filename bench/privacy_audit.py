"""An empirical privacy audit: a lower bound on ε from neighbouring warehouses, beside the stated ε.

`python -m bench.privacy_audit [--runs 3000] [--units 4] [--indicator people_by_need_region] [--rho R]`.
In the spirit of DP auditing tools (Jagielski, Ullman & Oprea 2020; Nasr et al. 2021): two
warehouses differ by one person, who is held as one key, or as m keys at m charities that do not
link records. Each is bounded in DuckDB as the pipeline does; the indicator is then released
``--runs`` times from each (OpenDP's noise, the real estimator), and an attacker who knows
everything but the noise scores each output by its projection on the person's contribution (the
likelihood-ratio test for Gaussian noise). A threshold chosen on one half of the runs is tested on
the other half. The outputs scored are those of the finest level's noisy measurement itself (the
OpenDP measurement the release invokes), since everything published is post-processing of it. With
95% Clopper-Pearson bounds on its false and true positive rates, any (ε, δ)-DP
mechanism must satisfy TPR ≤ e^ε FPR + δ, so ε ≥ ln((TPR_low - δ) / FPR_high) is a lower bound that
holds with 95% confidence. The stated ε is OpenDP's map of the same measurement at d_in = m units,
converted at δ. The lower bound must stay below the stated ε; it also shows what a person held as m
keys really spends against what one unit's ρ would claim.
"""

from __future__ import annotations

import argparse
import math
import time

import duckdb
import numpy as np

from collab.schema import migrate
from collab.workspace import PrivacySettings
from privacy.bounding import BoundedAggregates, bounded_aggregates
from privacy.estimators import release_indicator
from privacy.mechanisms import epsilon_at
from standards.catalogue import Indicator, load_catalogue

REGIONS = ["E12000001", "E12000002", "E12000007", "W92000004"]
NEEDS = ["food", "debt", "fuel_energy", "housing_homelessness"]


def warehouse(person_units: int) -> duckdb.DuckDBPyConnection:
    """300 background people, and (unless ``person_units`` is 0) one person held as that many keys, each
    at its own non-linking charity, with contacts under three needs in one region."""
    con = duckdb.connect()
    migrate(con)
    rows = [(f"c{i % 3}", i, NEEDS[i % len(NEEDS)], REGIONS[(i // 4) % len(REGIONS)]) for i in range(300)]
    # The person's key at each of their charities.
    rows += [(f"u{unit}", 1000 + unit, need, REGIONS[0]) for unit in range(person_units) for need in NEEDS[:3]]
    con.executemany(
        "INSERT INTO contacts (submission_id, charity_id, person_key, quarter, need, region_code, nation_code, linked) "
        "VALUES ('s', ?, ?, '2026Q1', ?, ?, 'E92000001', FALSE)",
        [list(row) for row in rows],
    )
    return con


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """A two-sided exact binomial interval (by bisection on the binomial tail; no SciPy needed)."""
    alpha = (1 - confidence) / 2

    def tail_at_least(p: float) -> float:  # P(X >= successes)
        return 1 - sum(math.comb(trials, i) * p**i * (1 - p) ** (trials - i) for i in range(successes))

    def tail_at_most(p: float) -> float:  # P(X <= successes)
        return sum(math.comb(trials, i) * p**i * (1 - p) ** (trials - i) for i in range(successes + 1))

    def solve(f, target: float, increasing: bool) -> float:  # type: ignore[no-untyped-def]
        low, high = 0.0, 1.0
        for _ in range(60):
            middle = (low + high) / 2
            if (f(middle) < target) == increasing:
                low = middle
            else:
                high = middle
        return (low + high) / 2

    lower = 0.0 if successes == 0 else solve(tail_at_least, alpha, increasing=True)
    upper = 1.0 if successes == trials else solve(tail_at_most, alpha, increasing=False)
    return lower, upper


def epsilon_lower_bound(with_person: np.ndarray, without: np.ndarray, delta: float) -> float:
    """ε lower bound from scores (higher: more like the warehouse with the person)."""
    half_with, half_without = len(with_person) // 2, len(without) // 2
    choose_with, test_with = with_person[:half_with], with_person[half_with:]
    choose_without, test_without = without[:half_without], without[half_without:]

    def bound(tpr_hits: int, tpr_n: int, fpr_hits: int, fpr_n: int) -> float:
        tpr_low, _ = clopper_pearson(tpr_hits, tpr_n)
        _, fpr_high = clopper_pearson(fpr_hits, fpr_n)
        return math.log((tpr_low - delta) / fpr_high) if tpr_low > delta else 0.0

    # Choose the threshold on the first halves, using point estimates of both rates.
    thresholds = np.quantile(choose_without, np.linspace(0.5, 0.999, 60))
    best = max(
        thresholds,
        key=lambda t: math.log(
            max((choose_with > t).mean(), 1e-12) / max((choose_without > t).mean(), 1 / half_without)
        ),
    )
    return max(
        0.0, bound(int((test_with > best).sum()), len(test_with), int((test_without > best).sum()), len(test_without))
    )


def scores(
    indicator: Indicator,
    aggregates: BoundedAggregates,
    rho: float,
    runs: int,
    baseline: np.ndarray,
    direction: np.ndarray,
) -> np.ndarray:
    """The attacker's score of ``runs`` outputs of the indicator's finest-level noisy measurement (the
    OpenDP measurement the release invokes; everything published is post-processing of it)."""
    measurement = release_indicator(indicator, aggregates, rho).measurements[-1].opendp
    return np.array(
        [float(np.dot(np.asarray(measurement(aggregates), dtype=float) - baseline, direction)) for _ in range(runs)]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3000, help="releases from each warehouse")
    parser.add_argument("--rho", type=float, default=None, help="rho per unit (default: the indicator's share)")
    parser.add_argument("--units", type=int, default=4, help="keys the person is held as (besides 1)")
    parser.add_argument("--indicator", default="people_by_need_region")
    args = parser.parse_args()
    settings = PrivacySettings()
    delta = settings.report_delta
    indicator = load_catalogue().get(args.indicator)
    rho = args.rho or settings.release_rho * indicator.budget_share
    salt = "audit"
    without = bounded_aggregates(warehouse(0), indicator, period="2026Q1", salt=salt)
    print(
        f"Auditing {indicator.id} at rho {rho:.4g} per unit ({args.runs:,} releases per warehouse; "
        f"delta {delta:g}; 95% confidence)"
    )
    print(f"{'person held as':<16}{'stated epsilon (map at m)':>27}{'per-unit claim':>16}{'empirical lower bound':>23}")
    for units in sorted({1, args.units}):
        started = time.perf_counter()
        with_person = bounded_aggregates(warehouse(units), indicator, period="2026Q1", salt=salt)
        name = "people" if indicator.measure == "people_count" else next(iter(with_person.vectors))
        direction = (with_person.vectors[name] - without.vectors[name]).astype(float)
        baseline = without.vectors[name].astype(float)

        with_scores = scores(indicator, with_person, rho, args.runs, baseline, direction)
        without_scores = scores(indicator, without, rho, args.runs, baseline, direction)
        stated_rho = release_indicator(indicator, with_person, rho).rho_at(units)
        lower = epsilon_lower_bound(with_scores, without_scores, delta)
        one_unit = epsilon_at(rho, delta)
        print(
            f"{units} key(s){'':<8}{epsilon_at(stated_rho, delta):>27.3f}{one_unit:>16.3f}{lower:>23.3f}"
            f"   ({time.perf_counter() - started:.0f} s; the person moves the vector by {np.linalg.norm(direction):.2f})"
        )
    print("A lower bound above the stated epsilon would falsify the guarantee (each bound holds with 95% confidence).")


if __name__ == "__main__":
    main()
