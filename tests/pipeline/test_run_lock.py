"""`collab run` asks whether another run holds the workspace before starting its worker server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from collab.workspace import Workspace
from pipelines.run_lock import another_run_holds_the_lock, run_lock

HOLD = """
import sys
from pathlib import Path
from collab.workspace import Workspace
from pipelines.run_lock import run_lock
with run_lock(Workspace(Path(sys.argv[1]))):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_another_runs_lock_is_seen_and_a_free_one_is_left_free(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    assert another_run_holds_the_lock(workspace) is False
    with run_lock(workspace):  # asking left it free: this run takes it at once
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert another_run_holds_the_lock(workspace) is True
    finally:
        holder.communicate("", timeout=30)
    assert another_run_holds_the_lock(workspace) is False
