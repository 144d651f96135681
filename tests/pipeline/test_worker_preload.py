"""`collab run`'s workers are forked from a server that set Great Expectations up once: each starts warm, and
Polars (whose thread pool a fork cannot carry) still works in them."""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor

import polars as pl

from pipelines.worker_server import stop_worker_server, worker_processes


def _in_worker() -> tuple[bool, int, int]:
    from collab import expectations

    warm = "great_expectations" in sys.modules and expectations._context.cache_info().currsize == 1
    # A parallel Polars query: it would wait for ever had the fork server started Polars' thread pool.
    frame = pl.DataFrame({"charity": [i % 7 for i in range(200_000)], "rows": range(200_000)})
    groups = frame.group_by("charity").agg(pl.col("rows").sum()).height
    run = expectations.ExpectationRun()
    run.validate(pl.DataFrame({"person_ref": ["A1", "B2"]}), ["person_ref"])
    return warm, groups, len(run.outcomes)


def test_workers_start_with_great_expectations_set_up_and_polars_working() -> None:
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=worker_processes()) as pool:
            warm, groups, rules = pool.submit(_in_worker).result(timeout=300)
    finally:
        stop_worker_server()
    assert warm and groups == 7 and rules > 1
