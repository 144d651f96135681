"""The fork server `collab run`'s submission workers are forked from, kept apart from the runner so that a
command can start it before importing anything heavy.

The server imports ``WORKER_PRELOAD`` (Dagster, the assets, Great Expectations set up: about 10 CPU s) once, and
every worker forked from it starts with them. Started at the top of `collab run` (``start_worker_server``), it
imports while the command itself imports the runner and opens the instance (several seconds more), instead of
after; otherwise the runner starts it when it makes its pool. This module imports nothing but the standard
library, so starting the server early costs the command nothing.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
from collections.abc import Iterator
from contextlib import contextmanager

# What a worker needs before its first file, imported (and Great Expectations set up) once, by the fork server,
# and shared by every worker it forks.
WORKER_PRELOAD = ["pipelines.worker_preload"]


def worker_processes() -> multiprocessing.context.BaseContext:
    """Workers forked from a server process that holds nothing but those imports: never forked from the
    runner's process, which would copy its Dagster instance, connections and threads mid-flight; not spawned,
    which would import everything again in each worker."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_PRELOAD)
    return context


def start_worker_server() -> None:
    """Start the fork server now (it imports in the background, in its own process); a pool made later finds
    it running. Whoever starts it stops it (``stop_worker_server``), whether or not a pool used it."""
    worker_processes()
    multiprocessing.forkserver.ensure_running()


def stop_worker_server() -> None:
    """Wait for the fork server to exit, as a pool waits for spawned workers: none lingers after the run, and its
    CPU time and its workers' count as this process's children's (``getrusage``, what the benchmarks read).
    Python has no public call for it; ``_stop`` is the one its own tests use. Does nothing if none is running."""
    multiprocessing.forkserver._forkserver._stop()


@contextmanager
def worker_server_started(early: bool) -> Iterator[None]:
    """Start the fork server on entry if ``early`` (a command about to run several submissions at once), and
    make sure it is stopped on exit, used or not."""
    if not early:
        yield
        return
    start_worker_server()
    try:
        yield
    finally:
        stop_worker_server()
