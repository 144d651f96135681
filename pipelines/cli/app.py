"""The ``collab`` application object and what every command shares."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from collab.workspace import POSTGRES_URL_VARIABLE, SettingsError, Workspace
from standards.cli import JsonOption, console, emit_json, errors, fail, shown_in_terminal

# What every command shares, from the charity's checker, so both command lines speak alike.
__all__ = [
    "JsonOption",
    "app",
    "console",
    "emit_json",
    "errors",
    "existing_workspace",
    "fail",
    "progress_bar",
    "transfer_bar",
    "workspace",
]

app = typer.Typer(
    name="collab",
    help="Poverty Insight Collaborative: charity extracts in, differentially private indicators out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def workspace(*, restoring: bool = False) -> Workspace:
    """The workspace, initialised, with its variables exported for Dagster; a usage error (exit 2) if its
    settings cannot be used, before any command acts on them, or if a restore stopped part-way: its files are part
    the backup's, and its key may be missing, which initialising would replace with a new one. Neither stops
    ``restoring`` (`collab restore` itself), which puts back the backup's settings and key."""
    ws = Workspace.from_env()
    if not restoring and ws.restore_marker.exists():
        backup = ws.restore_marker.read_text(encoding="utf-8")
        fail(f"a restore of {backup} stopped part-way: run `collab restore {backup}` again first", code=2)
    try:
        ws.init()  # reads the settings, once the folders and the key are made
    except SettingsError as error:
        if not restoring:  # a restore puts back settings that can be used, or refuses
            fail(str(error), code=2)
    os.environ.update(ws.environment())
    return ws


def existing_workspace() -> Workspace:
    """``workspace()`` for a command that only reads or tidies one: a usage error (exit 2) if there is none where
    ``COLLAB_HOME`` points. A mistyped COLLAB_HOME once made an empty workspace, which said "No submissions yet"."""
    found = Workspace.from_env()
    if not found.key_path.exists():
        fail(
            f"there is no workspace at {found.home}: set COLLAB_HOME to yours, or `collab init` makes one there", code=2
        )
    return workspace()


def instance_workspace() -> Workspace:
    """``workspace()`` for a command that runs Dagster jobs: a usage error (exit 2) if the settings choose the
    PostgreSQL instance and its URL is not in the environment (an operator's trial met Dagster's traceback)."""
    ws = workspace()
    if ws.settings.instance.database == "postgres" and not os.environ.get(POSTGRES_URL_VARIABLE):
        fail(
            f"settings.yaml puts the Dagster instance on PostgreSQL, and ${POSTGRES_URL_VARIABLE} is not set: export "
            "it (`make postgres` prints the line) and run this again.",
            code=2,
        )
    return ws


@contextmanager
def progress_bar(description: str, total: int | None, *, enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar whose ``advance(label)`` moves one step; silent when disabled (--json)."""

    class _Bar:
        def __init__(self, progress: Progress | None, task: Any) -> None:
            self._progress, self._task = progress, task

        def advance(self, label: str = "") -> None:
            if self._progress is not None:
                # Steps found on the way (a run's releases, known once its files are done) grow the total: a bar
                # once counted past it ("6/5").
                total = self._progress.tasks[self._task].total
                grown = None if total is None else max(total, self._progress.tasks[self._task].completed + 1)
                self._progress.update(
                    self._task,
                    advance=1,
                    total=grown,
                    description=f"{description} {escape(shown_in_terminal(label))}".strip(),
                )

    if not enabled:
        yield _Bar(None, None)
        return
    columns = [
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield _Bar(progress, task)
        # Estimates can overshoot (a duplicate file is never processed): end the bar where the work ended.
        progress.update(task, total=progress.tasks[task].completed, description=f"{description} done")


@contextmanager
def transfer_bar(description: str, total_bytes: int, *, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A rich bar of bytes sent; yields ``advance(n)`` (safe to call from transfer threads)."""
    if not enabled:
        yield lambda _: None
        return
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total_bytes)
        yield lambda sent: progress.update(task, advance=sent)
