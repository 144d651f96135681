"""A forked worker runs with the environment of the `collab run` that made its pool, not with the one its fork
server started with: the server outlives a pool when a process runs several (pytest does), and a worker reading
the first run's DAGSTER_HOME would write another workspace's events."""

from __future__ import annotations

import multiprocessing.forkserver
import os
import resource
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from collab.workspace import Workspace
from pipelines import runner, worker_server

PROBE = "COLLAB_TEST_WORKER_PROBE"


def _probe_in_new_pool(*, with_run_environment: bool) -> str | None:
    initialiser = {"initializer": runner._start_worker, "initargs": (dict(os.environ),)} if with_run_environment else {}
    with ProcessPoolExecutor(max_workers=1, mp_context=worker_server.worker_processes(), **initialiser) as pool:
        return pool.submit(os.getenv, PROBE).result(timeout=60)


def test_a_worker_takes_the_environment_of_its_run_not_of_the_fork_server(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only what a worker needs to start: the definitions and GX are beside the point here, and cost seconds.
    monkeypatch.setattr(worker_server, "WORKER_PRELOAD", ["pipelines.runner"])
    monkeypatch.setenv(PROBE, "first run")
    try:
        assert _probe_in_new_pool(with_run_environment=True) == "first run"
        monkeypatch.setenv(PROBE, "second run")
        # The server started in the first run's environment and is still up: a bare worker inherits that.
        assert _probe_in_new_pool(with_run_environment=False) == "first run"
        assert _probe_in_new_pool(with_run_environment=True) == "second run"
    finally:
        worker_server.stop_worker_server()


def test_a_worker_server_started_before_the_run_is_stopped_whatever_its_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `collab run` starts the server before its own imports; a run left with nothing to do must not leave it up.
    monkeypatch.setattr(worker_server, "WORKER_PRELOAD", ["pipelines.runner"])
    worker_server.start_worker_server()
    server = multiprocessing.forkserver._forkserver
    assert server._forkserver_pid is not None
    assert runner.process_submissions(Workspace(tmp_path), []) == []
    assert server._forkserver_pid is None


def _busy(seconds: float) -> None:
    ended = time.process_time() + seconds
    while time.process_time() < ended:
        pass


def test_a_killed_worker_server_still_counts_its_workers_cpu_time_as_the_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server is killed, not asked to exit (``stop_worker_server``); what the benchmarks read of a run's
    children (``getrusage``) must still hold what its workers did: the server reaped them before the pool shut."""
    monkeypatch.setattr(worker_server, "WORKER_PRELOAD", [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    with ProcessPoolExecutor(max_workers=2, mp_context=worker_server.worker_processes()) as pool:
        list(pool.map(_busy, [0.5, 0.5]))
    worker_server.stop_worker_server()
    assert multiprocessing.forkserver._forkserver._forkserver_pid is None
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - before >= 0.9


def test_the_worker_server_ignores_ctrl_c_from_its_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A hostile trial: Ctrl-C in a run's first seconds reached the server while it imported what workers need, and
    printed that import's traceback under "Interrupted." (Python's server ignores it only once its imports are done)."""
    (tmp_path / "slow_worker_preload.py").write_text("import time\ntime.sleep(5)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(worker_server, "WORKER_PRELOAD", ["slow_worker_preload"])
    before = signal.getsignal(signal.SIGINT)
    try:
        worker_server.start_worker_server()
        pid = multiprocessing.forkserver._forkserver._forkserver_pid
        assert pid is not None
        ignored = int(
            next(
                line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("SigIgn:")
            ).split()[1],
            16,
        )
        assert ignored & (1 << (signal.SIGINT - 1))  # while it is still importing
        assert signal.getsignal(signal.SIGINT) is before  # this process takes Ctrl-C as before
    finally:
        worker_server.stop_worker_server()


def test_a_ctrl_c_before_processing_begins_says_so_and_stops_the_worker_server(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A hostile re-trial: a Ctrl-C after `collab run` started the worker server, before it began processing, exited
    130 in silence and left the server up."""
    from typer.testing import CliRunner

    import pipelines.cli.pipeline as pipeline_commands
    from collab.landing import LocalLandingZone
    from collab.registry import Registry
    from pipelines.cli import register_commands
    from pipelines.cli.app import app
    from tests.conftest import contact_rows, write_csv

    Registry(workspace).add("north-pantry", "North Pantry")
    for name in ("a.csv", "b.csv"):
        LocalLandingZone(root=str(workspace.home)).drop("north-pantry", write_csv(tmp_path / name, contact_rows(3)))
    monkeypatch.setattr(worker_server, "WORKER_PRELOAD", ["pipelines.runner"])
    monkeypatch.setattr(workspace.__class__, "max_concurrent_runs", property(lambda _: 2))

    def interrupted_after_starting() -> None:
        worker_server.start_worker_server()
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline_commands, "start_worker_server", interrupted_after_starting)
    register_commands()
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 130 and "Interrupted. Nothing is lost" in result.output
    assert multiprocessing.forkserver._forkserver._forkserver_pid is None
