"""Submission states: readable by anyone without the warehouse, and what makes a re-dropped file resume."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import duckdb
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from collab.intake import MANIFEST, submission_dir
from collab.landing import LocalLandingZone
from collab.schema import migrate
from collab.states import STATES, mirror_states, read_state, submission_states, unfinished, write_state
from collab.workspace import Workspace
from pipelines.runner import unfinished_manifests
from tests.conftest import contact_rows, write_csv
from tests.intake_pass import receive_pending

CHARITY = "north-pantry"


def test_states_are_read_per_charity_without_the_warehouse(workspace: Workspace) -> None:
    for index, (charity, state) in enumerate([(CHARITY, "received"), (CHARITY, "loaded"), ("south", "checked")]):
        (workspace.staging / f"s{index}").mkdir(parents=True)
        write_state(workspace, submission_id=f"s{index}", charity_id=charity, file_name=f"f{index}.csv", state=state)
    assert {s.submission_id for s in submission_states(workspace, CHARITY)} == {"s0", "s1"}
    assert [s.submission_id for s in unfinished(workspace)] == ["s0", "s2"]
    assert read_state(workspace, "s1") is not None and read_state(workspace, "s1").final  # type: ignore[union-attr]
    # Written whole: no temporary file is left beside it, and it is plain JSON anyone can read.
    assert sorted(p.name for p in (workspace.staging / "s0").iterdir()) == ["state.json"]
    assert json.loads((workspace.staging / "s0" / "state.json").read_text())["state"] == "received"
    assert STATES[-3:] == ("loaded", "rejected", "failed")


def test_the_warehouse_mirrors_states_but_never_unsets_loaded(workspace: Workspace) -> None:
    (workspace.staging / "s0").mkdir(parents=True)
    write_state(workspace, submission_id="s0", charity_id=CHARITY, file_name="f.csv", state="feedback_sent")
    con = duckdb.connect()
    migrate(con)
    con.execute(
        "INSERT INTO submission_states VALUES ('s0', $c, 'loaded', now()::TIMESTAMP, NULL, NULL)", {"c": CHARITY}
    )
    mirror_states(con, workspace)
    assert con.execute("SELECT state FROM submission_states").fetchall() == [("loaded",)]
    (workspace.staging / "s1").mkdir()
    write_state(workspace, submission_id="s1", charity_id=CHARITY, file_name="g.csv", state="rejected")
    mirror_states(con, workspace)
    assert con.execute("SELECT submission_id, state FROM submission_states ORDER BY 1").fetchall() == [
        ("s0", "loaded"),
        ("s1", "rejected"),
    ]


def test_a_file_dropped_again_before_its_submission_finished_is_resumed_not_a_duplicate(
    workspace: Workspace, tmp_path: Path
) -> None:
    zone = LocalLandingZone(root=str(workspace.home))
    zone.create_area(CHARITY)
    path = write_csv(tmp_path / "q1.csv", contact_rows(5))
    zone.drop(CHARITY, path)
    [first] = receive_pending(workspace, zone, [CHARITY]).received
    assert read_state(workspace, first.submission_id).state == "staged"  # type: ignore[union-attr]
    zone.drop(CHARITY, path, "again.csv")
    again = receive_pending(workspace, zone, [CHARITY])
    assert [m.submission_id for m in again.received] == [first.submission_id] and again.duplicates == []
    assert not list((workspace.feedback / CHARITY).glob("*.duplicate-*.json"))
    # Once finished, the same bytes are a duplicate.
    write_state(workspace, submission_id=first.submission_id, charity_id=CHARITY, file_name="q1.csv", state="loaded")
    zone.drop(CHARITY, path, "third.csv")
    third = receive_pending(workspace, zone, [CHARITY])
    assert third.received == [] and [s for _, s in third.duplicates] == [first.submission_id]


def test_the_same_file_twice_in_one_pass_is_a_duplicate(workspace: Workspace, tmp_path: Path) -> None:
    zone = LocalLandingZone(root=str(workspace.home))
    zone.create_area(CHARITY)
    path = write_csv(tmp_path / "q1.csv", contact_rows(5))
    zone.drop(CHARITY, path)
    zone.drop(CHARITY, path, "r-copy.csv")
    result = receive_pending(workspace, zone, [CHARITY])
    assert len(result.received) == 1 and [s for _, s in result.duplicates] == [result.received[0].submission_id]


def test_an_unreadable_submission_record_is_reported_and_the_other_unfinished_ones_resume(
    workspace: Workspace, tmp_path: Path
) -> None:
    zone = LocalLandingZone(root=str(workspace.home))
    zone.create_area(CHARITY)
    for name, prefix in (("q1.csv", "A"), ("q2.csv", "B"), ("q3.csv", "C")):
        zone.drop(CHARITY, write_csv(tmp_path / name, contact_rows(5, prefix=prefix)))
    received = receive_pending(workspace, zone, [CHARITY]).received
    damaged, going, waiting = sorted(received, key=lambda m: m.original_name)
    # A record emptied by a power cut, and a submission whose run the daemon is running now (tagged by partition).
    (submission_dir(workspace, damaged.submission_id) / MANIFEST).write_text("")
    instance = DagsterInstance.ephemeral()
    run = DagsterRun(job_name="submission_job", run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTED)
    instance.run_storage.add_run(run.with_tags({"dagster/partition": going.name}))
    manifests, unreadable = unfinished_manifests(workspace, instance)
    assert [m.submission_id for m in manifests] == [waiting.submission_id]
    assert [(u["file"], "cannot be read" in u["reason"]) for u in unreadable] == [(damaged.original_name, True)]


def test_the_submissions_table_says_when_a_loaded_files_rows_were_since_replaced(workspace: Workspace) -> None:
    """Found by the operator's trial: a file whose quarter a later file replaced was listed as "loaded", stamped with
    the time its rows were removed; only `--json` said it was replaced."""
    from typer.testing import CliRunner

    from pipelines.cli import register_commands
    from pipelines.cli.app import app

    register_commands()
    for submission in ("north-1", "north-2"):
        (workspace.staging / submission).mkdir(parents=True)
    write_state(
        workspace, submission_id="north-1", charity_id="north", file_name="old.csv", state="loaded", replaced=True
    )
    write_state(workspace, submission_id="north-2", charity_id="north", file_name="new.csv", state="loaded")
    listed = CliRunner().invoke(app, ["submissions"]).output
    [old] = [line for line in listed.splitlines() if "old.csv" in line]
    [new] = [line for line in listed.splitlines() if "new.csv" in line]
    assert "loaded; rows since" in old and "rows since" not in new  # the table wraps the rest of the cell
    assert "replaced by a later file" in " ".join(listed.replace("│", " ").split())
