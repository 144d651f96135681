"""The `collab` command as a user runs it: a subprocess with the workspace in its environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

COLLAB = Path(sys.executable).with_name("collab")


def collab(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLLAB_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "COLUMNS": "200"}
    result = subprocess.run([str(COLLAB), *args], env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"collab {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result
