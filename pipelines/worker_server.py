"""The server process `collab run`'s workers are forked from.

It imports what a worker needs once (``pipelines.worker_preload``: Dagster, the assets, Great Expectations set
up) and every worker it forks starts with that: never forked from the run's own process, which would copy its
Dagster instance, connections and threads mid-flight; not spawned, which would import everything again in each
worker. This module imports nothing heavy itself, so that a run can start the server before its own imports
(``start_worker_server``) and the two import side by side, each on its own core.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver

WORKER_PRELOAD = ["pipelines.worker_preload"]


def worker_processes() -> multiprocessing.context.BaseContext:
    """The context a pool of workers is made with: processes forked from the server."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_PRELOAD)
    return context


def start_worker_server() -> None:
    """Start the server (if it is not running) now, rather than when the first pool of workers needs it: its
    imports, several CPU seconds, then overlap with whatever this process does before it makes the pool."""
    worker_processes()
    multiprocessing.forkserver.ensure_running()


def stop_worker_server() -> None:
    """Wait for the server to exit (if it runs), as a pool waits for spawned workers: none lingers after the run,
    and its CPU time and its workers' count as this process's children's (``getrusage``, what the benchmarks
    read). Python has no public call for it; ``_stop`` is the one its own tests use."""
    multiprocessing.forkserver._forkserver._stop()
