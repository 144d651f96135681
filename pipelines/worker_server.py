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
import os
import signal

WORKER_PRELOAD = ["pipelines.worker_preload"]


def worker_processes() -> multiprocessing.context.BaseContext:
    """The context a pool of workers is made with: processes forked from the server."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_PRELOAD)
    return context


def start_worker_server() -> None:
    """Start the server (if it is not running) now, rather than when the first pool of workers needs it: its
    imports, several CPU seconds, then overlap with whatever this process does before it makes the pool.

    The server starts with Ctrl-C ignored, inherited from this process while it is started: it shares the run's
    process group, and Python's server ignores the interrupt only once its imports are done, so a Ctrl-C in a run's
    first seconds printed their traceback under "Interrupted." (a hostile trial, 6 times in 14). The run stops it;
    its workers take the interrupt in their runs (``pipelines.runner._start_worker``)."""
    worker_processes()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_worker_server() -> None:
    """Stop the server (if it runs) and wait for it, as a pool waits for spawned workers: none lingers after the
    run, and its CPU time and its workers' count as this process's children's (``getrusage``, what the benchmarks
    read: the server has reaped every worker of a pool that has shut down, since it reports each one's exit).

    Killed, not asked to exit: it holds nothing to flush or close, and tearing down its imports on the way out
    took 2.5 s, added to every `collab run` of two files or more. Python has no public call for either; ``_stop``
    (which waits for it) is the one its own tests use."""
    server = multiprocessing.forkserver._forkserver
    if server._forkserver_pid is not None:
        os.kill(server._forkserver_pid, signal.SIGKILL)
    server._stop()
