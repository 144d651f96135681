"""The demo workspace that the read-only system tests share.

Building it is the slowest step of the suite (every demo file through the pipeline, four releases, the
site), so it is built once per test process: the tests that read it carry ``DEMO_GROUP``, which keeps them
in one pytest-xdist worker (`--dist loadgroup`), and none of them changes what another one reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.system.commands import collab

DEMO_GROUP = pytest.mark.xdist_group("demo")


@dataclass(frozen=True)
class Demo:
    home: Path
    # What `collab demo --json` printed, and `collab budget --json` straight after (before the revision).
    summary: dict[str, Any]
    budget_after_demo: dict[str, Any]


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """`collab demo` on six charities over four quarters, every quarter published; then the latest quarter
    revised, so the site's history has a superseded release."""
    home = tmp_path_factory.mktemp("demo") / "var"
    summary = json.loads(
        collab(home, "demo", "--contacts", "3000", "--charities", "6", "--quarters", "4", "--json").stdout
    )
    budget = json.loads(collab(home, "budget", "--json").stdout)
    latest = summary["releases"][-1]["period"]
    revised = json.loads(collab(home, "release", latest, "--revise", "--json").stdout)
    assert revised["published"] and revised["release_id"] == f"{latest}-v2"
    return Demo(home=home, summary=summary, budget_after_demo=budget)
