"""Baseline (b) of ``bench/utility.py``: the same indicators through OpenDP's own Polars ``Context``.

Runs in its own virtual environment (``bench/.venv-opendp-polars``, made by ``make bench-utility``)
because OpenDP's Polars integration pins polars 1.36.1. It imports nothing from the project: it
reads a spec and the bounded rows (Parquet, one row per person and cell, written by
``bench/utility.py``) and writes every release back as Parquet with its wall time.

Usage: python bench/opendp_polars_baseline.py WORKDIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import opendp.prelude as dp
import polars as pl

dp.enable_features("contrib")


def aggregate(spec: dict) -> pl.Expr:
    """The OpenDP Polars expression a user of the Context would write for the indicator's measure."""
    measure = spec["measure"]
    if measure == "people_count":
        return dp.len(signed=True).alias("value")
    if measure == "contact_count":
        return pl.col("contacts").dp.sum((0, spec["max_contacts"])).alias("value")
    if measure == "sum":
        return pl.col("amount").dp.sum(tuple(spec["clamp"])).alias("value")
    if measure == "mean":
        return pl.col("amount").cast(pl.Float64).dp.mean(tuple(spec["clamp"])).alias("value")
    if measure == "share":
        return pl.col("condition").cast(pl.Float64).dp.mean((0.0, 1.0)).alias("value")
    if measure == "median":
        return pl.col("amount").dp.median(spec["candidates"]).alias("value")
    raise ValueError(f"unknown measure {measure}")


def release_indicator(spec: dict, rows: pl.DataFrame, keys: list[pl.DataFrame], rho: float) -> list[pl.DataFrame]:
    """One Context per indicator: its rho, split over its queries (one per area level) by weight."""
    by_sets = [query["by"] for query in spec["queries"]]
    # The rows are already bounded (bench/utility.py): one row per person and cell, at most
    # max_cells cells per person, in one area. These bounds tell OpenDP so; it truncates nothing.
    bounds = [dp.polars.Bound(by=by, per_group=1, num_groups=spec["max_cells"]) for by in by_sets]
    margins = [dp.polars.Margin(by=by, max_length=spec["max_length"]) for by in by_sets]
    context = dp.Context.compositor(
        data=rows.lazy(),
        privacy_unit=dp.unit_of(contributions=bounds),
        privacy_loss=dp.loss_of(rho=rho),
        split_by_weights=[query["weight"] for query in spec["queries"]],
        margins=margins,
    )
    results = []
    for query, public in zip(spec["queries"], keys, strict=True):
        plan = context.query().group_by(query["by"]).agg(aggregate(spec)).with_keys(public)
        results.append(plan.release().collect())
    return results


def main() -> None:
    workdir = Path(sys.argv[1])
    spec = json.loads((workdir / "spec.json").read_text())
    data = {i["id"]: pl.read_parquet(workdir / i["rows"]) for i in spec["indicators"]}
    keys = {i["id"]: [pl.read_parquet(workdir / q["keys"]) for q in i["queries"]] for i in spec["indicators"]}
    timings = []
    for rho in spec["rhos"]:
        for run in range(spec["runs"]):
            started = time.perf_counter()
            released = {
                i["id"]: release_indicator(i, data[i["id"]], keys[i["id"]], rho * i["budget_share"])
                for i in spec["indicators"]
            }
            seconds = time.perf_counter() - started
            timings.append({"rho": rho, "run": run, "seconds": seconds})
            for indicator_id, frames in released.items():
                for index, frame in enumerate(frames):
                    frame.write_parquet(workdir / f"out-{rho}-{run}-{indicator_id}-{index}.parquet")
            print(f"  (b) rho={rho} run {run + 1}/{spec['runs']}: {seconds:.1f} s", flush=True)
    (workdir / "timings.json").write_text(json.dumps(timings))


if __name__ == "__main__":
    main()
