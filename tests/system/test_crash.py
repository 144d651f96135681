"""A `collab run` killed (SIGKILL, no cleanup) at any point strands nothing: the next run finishes the work.

Each case kills the run at one named point (``COLLAB_CRASH_AT``, see ``collab.faults``), then runs again
normally, and checks what an uninterrupted run gives: every file reported, finally; the warehouse holding
each accepted file's rows exactly once and nothing half-loaded; no Dagster run left STARTED; and budget
spent only for releases that exist, once per quarter.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.instance.ref import InstanceRef

from collab.faults import WORKER_DIES_VARIABLE
from collab.landing import LocalLandingZone
from collab.registry import Registry
from collab.site import site_is_current
from collab.states import submission_states
from collab.warehouse import calendar_quarters
from collab.workspace import Workspace
from tests.conftest import HEADER, contact_rows, latest_ended_quarter, write_csv
from tests.system.commands import COLLAB, collab

pytestmark = pytest.mark.system

ALL_POINTS = [
    "mid-copy",
    "before-staging",
    "mid-staging",
    "after-staging",
    "mid-check",
    "after-feedback",
    "mid-load",
    "after-load",
    "before-release",
    "mid-link",
    "before-publish",
    "before-site",
]
# Each case is runs killed at its points, one after another, then a full run (one to four minutes on a shared 2-core
# machine). The suite kills a run mid-check, then the next mid-load, where a charity was once told "accepted" with
# nothing stored; and two runs killed from outside (kill -9, a power cut) once failed every file they had been
# checking with E_INTERNAL, for good, a run's death counted against each of its files (an attacker's trial, session
# 37). COLLAB_CRASH_POINTS=all kills a run at every point, a case each.
KILLED_TWICE = ("mid-check", "mid-load")
POINTS = [(point,) for point in ALL_POINTS] if os.environ.get("COLLAB_CRASH_POINTS") == "all" else [KILLED_TWICE]


# The files are dated in the last quarter that has ended, and the collaborative reports from it: one release.
QUARTER, QUARTER_START = latest_ended_quarter()
QUARTERS = calendar_quarters(QUARTER)


def _drop_files(home: Path, directory: Path) -> dict[str, str]:
    """Two charities: two good files and one with a required column missing. Returns file name -> charity.

    Registered and dropped as `collab charity add` and `collab submit` do (tests/system/test_cli.py runs those),
    in this process: five commands' start-up was a quarter of each case's time."""
    workspace = Workspace(home)
    workspace.init()
    landing = LocalLandingZone(root=str(home))
    for charity in ("north-pantry", "south-pantry"):
        Registry(workspace).add(charity, charity.replace("-", " ").title(), linkage=True)
        landing.create_area(charity)
    settings = workspace.settings.model_copy(deep=True)
    settings.publication.first_quarter = QUARTER
    workspace.save_settings(settings)
    # Both charities link records (the default), so the good files carry surnames: their units are linked by the
    # release (``collab.warehouse.link_units``).
    surnamed = [*HEADER, "Surname"]
    north = [[*row, "Okafor"] for row in contact_rows(20, start=QUARTER_START)]
    south = [[*row, "Nowak"] for row in contact_rows(20, start=QUARTER_START, prefix="S")]
    files = {
        "north.csv": ("north-pantry", write_csv(directory / "north.csv", north, surnamed)),
        "south.csv": ("south-pantry", write_csv(directory / "south.csv", south, surnamed)),
        "no-need.csv": (
            "north-pantry",
            write_csv(
                directory / "no-need.csv",
                [r[:2] + r[3:] for r in contact_rows(5, start=QUARTER_START)],
                HEADER[:2] + HEADER[3:],
            ),
        ),
    }
    for charity, path in files.values():
        landing.drop(charity, path)
    return {name: charity for name, (charity, _) in files.items()}


def _query(home: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _finish_uninterrupted(home: Path) -> None:
    """A run after the interrupted ones ends as one uninterrupted run would have: no file failed, each one's final
    state, each accepted file's rows once, every quarter released."""
    report = json.loads(collab(home, "run", "--json").stdout)
    assert report["failed"] == []
    assert {s.file_name: s.state for s in submission_states(Workspace(home))} == {
        "north.csv": "loaded",
        "south.csv": "loaded",
        "no-need.csv": "rejected",
    }
    assert _query(home, "SELECT charity_id, count(*) FROM contacts GROUP BY ALL ORDER BY 1") == [
        ("north-pantry", 20),
        ("south-pantry", 20),
    ]
    assert [period for (period,) in _query(home, "SELECT period FROM releases ORDER BY 1")] == QUARTERS


@pytest.mark.parametrize("points", POINTS, ids="+".join)
def test_a_run_killed_anywhere_is_finished_by_the_next(
    points: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "var"
    files = _drop_files(home, tmp_path)
    publishing = bool({"before-publish", "before-site"} & set(points))
    if publishing:  # releases publish without an analyst's approval, so the run reaches publication
        settings = Workspace(home).settings.model_copy(deep=True)
        settings.publication.auto_publish = True
        Workspace(home).save_settings(settings)
    for point in points:
        monkeypatch.setenv("COLLAB_CRASH_AT", point)
        killed = collab(home, "run", "--json", check=False)
        assert killed.returncode == -signal.SIGKILL, f"the run never reached {point}:\n{killed.stdout}\n{killed.stderr}"
    monkeypatch.delenv("COLLAB_CRASH_AT")
    report = json.loads(collab(home, "run", "--json").stdout)
    assert report["failed"] == []

    # Every file was reported, with its final word.
    workspace = Workspace(home)
    states = {s.file_name: s for s in submission_states(workspace)}
    assert {name: s.state for name, s in states.items()} == {
        "north.csv": "loaded",
        "south.csv": "loaded",
        "no-need.csv": "rejected",
    }
    for name, charity in files.items():
        [feedback] = (home / "feedback" / charity).glob(f"*--{states[name].submission_id}.feedback.json")
        sent = json.loads(feedback.read_text())
        assert sent["status"] == ("rejected" if name == "no-need.csv" else "accepted")
        assert sent["loaded"] is (None if name == "no-need.csv" else True)
    assert not [p for p in (home / "landing").rglob("*") if p.is_file()]
    # No raw copy is left behind by the killed run (an empty one, made but not written to, goes once a minute old).
    assert not [p for p in (home / "staging").glob(".incoming-*") if p.stat().st_size]

    # The warehouse holds what an uninterrupted run gives: each accepted file's rows once, nothing half-loaded.
    assert _query(home, "SELECT charity_id, count(*) FROM contacts GROUP BY ALL ORDER BY 1") == [
        ("north-pantry", 20),
        ("south-pantry", 20),
    ]
    assert _query(home, "SELECT count(*), count(DISTINCT submission_id) FROM submissions") == [(2, 2)]
    assert _query(home, "SELECT count(*) FROM submission_states WHERE state NOT IN ('loaded', 'rejected')") == [(0,)]
    # Every reference's unit stored once and clustered before the release read it.
    assert _query(home, "SELECT count(*) FROM linkage_units") == [(40,)]
    assert _query(home, "SELECT count(*) FROM linkage_units ANTI JOIN linkage_clusters USING (unit_key)") == [(0,)]

    # No run is left STARTED, and budget was spent once for each quarter released.
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(home / "dagster")))
    going = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.QUEUED]
    assert instance.get_runs(filters=RunsFilter(statuses=going)) == []
    releases = _query(home, "SELECT period, release_id FROM releases ORDER BY 1")
    assert [period for period, _ in releases] == QUARTERS
    spent = _query(home, "SELECT DISTINCT release_id FROM privacy_ledger ORDER BY 1")
    assert spent == sorted((release_id,) for _, release_id in releases)
    # A release killed after spending, before publishing, is published by the next run, spending nothing more.
    assert all((home / "publish" / "releases" / release_id).is_dir() is publishing for _, release_id in releases)
    # And the site shows them, though the run that published them stopped before building it.
    assert site_is_current(home / "publish", workspace.settings.publication)
    assert (home / "publish" / "site").is_dir() is publishing


@pytest.mark.parametrize("point", ["mid-check"])
def test_ctrl_c_stops_a_run_fails_no_file_and_the_next_run_finishes_it(point: str, tmp_path: Path) -> None:
    """Ctrl-C reaches the run and every process it started (the terminal signals the process group): the files
    under way were once marked failed with E_INTERNAL, their charities told it was our error, and the run went on
    to the end and exited 0."""
    home = tmp_path / "var"
    _drop_files(home, tmp_path)
    env = {**os.environ, "COLLAB_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "COLLAB_INTERRUPT_AT": point}
    # A session of its own, as a terminal gives a command: the interrupt reaches the run's processes, not pytest.
    interrupted = subprocess.run(
        [str(COLLAB), "run"], env=env, capture_output=True, text=True, timeout=600, start_new_session=True
    )
    assert interrupted.returncode == 130, f"{interrupted.stdout}\n{interrupted.stderr}"
    assert "Interrupted. Nothing is lost" in interrupted.stdout
    assert "Traceback" not in interrupted.stderr
    workspace = Workspace(home)
    assert not [s for s in submission_states(workspace) if s.state == "failed"]
    assert not list((home / "feedback").rglob("*.feedback.json")) or all(
        "E_INTERNAL" not in p.read_text() for p in (home / "feedback").rglob("*.feedback.json")
    )

    _finish_uninterrupted(home)


def test_a_file_that_kills_its_worker_fails_alone_and_the_others_are_processed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile trial (session 31): a 2 KB workbook aborted fastexcel, and with it its worker process; the pool then
    ended every file it held, and another charity's file, checked beside it, was failed with E_INTERNAL for good.
    Now the files the broken pool held run again, each in a worker of its own: only the one that kills it fails."""
    home = tmp_path / "var"
    _drop_files(home, tmp_path)
    monkeypatch.setenv(WORKER_DIES_VARIABLE, "south.csv")
    report = json.loads(collab(home, "run", "--json", check=False).stdout)
    workspace = Workspace(home)
    assert {s.file_name: s.state for s in submission_states(workspace)} == {
        "north.csv": "loaded",
        "south.csv": "failed",
        "no-need.csv": "rejected",
    }
    [failed] = report["failed"]
    assert failed["file_name"] == "south.csv" and failed["codes"] == ["E_INTERNAL"] and failed["reference"]
    [feedback] = (home / "feedback" / "south-pantry").glob("*.feedback.json")
    assert failed["reference"] in feedback.read_text()  # the charity is told, by reference
    assert _query(home, "SELECT charity_id, count(*) FROM contacts GROUP BY ALL") == [("north-pantry", 20)]
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(home / "dagster")))
    going = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.QUEUED]
    assert instance.get_runs(filters=RunsFilter(statuses=going)) == []


def test_a_lone_file_that_kills_its_run_each_time_is_failed_on_the_third_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alone in a run, a file is checked in the run's own process (no worker between them): one that kills it would
    be taken up again, and kill it, by every later run."""
    home = tmp_path / "var"
    workspace = Workspace(home)
    workspace.init()
    Registry(workspace).add("north-pantry", "North Pantry")
    LocalLandingZone(root=str(home)).create_area("north-pantry")
    LocalLandingZone(root=str(home)).drop("north-pantry", write_csv(tmp_path / "north.csv", contact_rows(5)))
    monkeypatch.setenv(WORKER_DIES_VARIABLE, "north.csv")
    for _ in range(2):
        killed = collab(home, "run", "--json", check=False)
        assert killed.returncode == -signal.SIGABRT, killed.stdout + killed.stderr
    report = json.loads(collab(home, "run", "--json", check=False).stdout)
    [failed] = report["failed"]
    assert failed["file_name"] == "north.csv" and failed["codes"] == ["E_INTERNAL"] and failed["reference"]
    assert [s.state for s in submission_states(workspace)] == ["failed"]
    assert json.loads(collab(home, "run", "--json").stdout)["failed"] == []  # not taken up again


def test_two_runs_at_once_process_each_file_once_and_release_once(tmp_path: Path) -> None:
    home = tmp_path / "var"
    _drop_files(home, tmp_path)
    env = {**os.environ, "COLLAB_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    runs = [
        subprocess.Popen(
            [str(COLLAB), "run", "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    reports = [json.loads(run.communicate(timeout=600)[0]) for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    # One run took every file and released the quarters; the other, waiting on the lock, found nothing left.
    assert sorted(len(r["submissions"]) for r in reports) == [0, 3]
    assert sorted(len(r["releases"]) for r in reports) == [0, len(QUARTERS)]
    assert _query(home, "SELECT count(*) FROM contacts") == [(40,)]
    assert _query(home, "SELECT count(*) FROM releases") == [(len(QUARTERS),)]
    assert _query(home, "SELECT count(DISTINCT release_id) FROM privacy_ledger") == [(len(QUARTERS),)]
    # States are read without the warehouse (as the portal does), here through the analyst's command.
    listed = json.loads(collab(home, "submissions", "--json").stdout)
    assert sorted(s["state"] for s in listed) == ["loaded", "loaded", "rejected"]


def test_an_approval_killed_while_publishing_holds_nothing_the_next_commands_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile trial (session 20): `collab approve` killed mid-publication left its Dagster run STARTED, untagged,
    holding the warehouse slot, and every later run, approve and release waited for it for ever."""
    home = tmp_path / "var"
    _drop_files(home, tmp_path)
    report = json.loads(collab(home, "run", "--json").stdout)
    waiting = [r["release_id"] for r in report["releases"] if not r["published"]]
    assert len(waiting) == len(QUARTERS)  # publication waits for an analyst's approval
    monkeypatch.setenv("COLLAB_CRASH_AT", "before-publish")
    killed = collab(home, "approve", waiting[-1], check=False)
    assert killed.returncode == -signal.SIGKILL, f"{killed.stdout}\n{killed.stderr}"
    monkeypatch.delenv("COLLAB_CRASH_AT")
    env = {**os.environ, "COLLAB_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    # Bounded: the defect was a wait without end.
    after = subprocess.run([str(COLLAB), "run", "--json"], env=env, capture_output=True, text=True, timeout=240)
    assert after.returncode == 0, after.stderr
    assert len(json.loads(after.stdout)["abandoned_runs"]) == 1  # the killed approval's run, marked failed
    [approved] = json.loads(collab(home, "approve", waiting[-1], "--json").stdout)["releases"]
    assert approved["published"] is True and approved["error"] is None
    assert (home / "publish" / "releases" / waiting[-1]).is_dir()


def test_a_run_loads_again_what_a_lost_warehouse_held_and_refuses_to_release_until_the_ledger_is_whole(
    tmp_path: Path,
) -> None:
    """A hostile trial: `collab recover-releases` killed after charging, before setting the lost loads back, left every
    file "loaded" in a warehouse holding none; the next `collab run` said "Nothing pending", and a revision then
    published figures of nothing. Every run now sets back first what the warehouse does not hold."""
    home = tmp_path / "var"
    _drop_files(home, tmp_path)
    collab(home, "run")
    assert _query(home, "SELECT count(*) FROM contacts") == [(40,)]
    (home / "warehouse.duckdb").unlink()  # lost, its releases' packages kept: the ledger cannot be trusted yet

    again = collab(home, "run", "--json", check=False)
    assert again.returncode == 1, again.stdout + again.stderr  # nothing may be released until the ledger is whole
    assert _query(home, "SELECT charity_id, count(*) FROM contacts GROUP BY ALL ORDER BY 1") == [
        ("north-pantry", 20),
        ("south-pantry", 20),
    ]
    assert _query(home, "SELECT count(*) FROM privacy_ledger") == [(0,)]
    assert "recover-releases" in json.loads(again.stdout)["releases"][0]["error"]
