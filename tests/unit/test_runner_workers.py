"""A forked worker runs with the environment of the `collab run` that made its pool, not with the one its fork
server started with: the server outlives a pool when a process runs several (pytest does), and a worker reading
the first run's DAGSTER_HOME would write another workspace's events."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import pytest

from pipelines import runner

PROBE = "COLLAB_TEST_WORKER_PROBE"


def _probe_in_new_pool(*, with_run_environment: bool) -> str | None:
    initialiser = {"initializer": runner._start_worker, "initargs": (dict(os.environ),)} if with_run_environment else {}
    with ProcessPoolExecutor(max_workers=1, mp_context=runner._worker_processes(), **initialiser) as pool:
        return pool.submit(os.getenv, PROBE).result(timeout=60)


def test_a_worker_takes_the_environment_of_its_run_not_of_the_fork_server(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only what a worker needs to start: the definitions and GX are beside the point here, and cost seconds.
    monkeypatch.setattr(runner, "WORKER_PRELOAD", ["pipelines.runner"])
    monkeypatch.setenv(PROBE, "first run")
    try:
        assert _probe_in_new_pool(with_run_environment=True) == "first run"
        monkeypatch.setenv(PROBE, "second run")
        # The server started in the first run's environment and is still up: a bare worker inherits that.
        assert _probe_in_new_pool(with_run_environment=False) == "first run"
        assert _probe_in_new_pool(with_run_environment=True) == "second run"
    finally:
        runner._stop_fork_server()
