"""The command line's progress bar: what it counts is what was done."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from pipelines.cli import app


def test_a_bar_given_more_steps_than_announced_never_counts_past_its_total(monkeypatch: pytest.MonkeyPatch) -> None:
    """`collab run` announces its pending files; its releases are steps too, found once the files are done."""
    screen = io.StringIO()
    monkeypatch.setattr(app, "console", Console(file=screen, force_terminal=True, width=100))
    with app.progress_bar("Processing", total=2) as bar:
        for label in ("north: a.csv", "south: b.csv", "release 2026Q1"):
            bar.advance(label)
        time.sleep(0.5)  # drawn by rich's own thread, ten times a second: the release's step is shown before the end
    shown = screen.getvalue()
    assert "Processing done" in shown and "3/3" in shown.rsplit("Processing done", 1)[1]
    assert "3/2" not in shown
