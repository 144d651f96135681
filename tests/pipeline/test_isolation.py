"""One file never stops another: hostile files, errors of ours and vanishing files in one `collab run`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import DagsterInstance, SkipReason, build_sensor_context, materialize

from assets.resources import resources_for
from collab.intake import submission_dir
from collab.landing import LandingObject, LandingObjectGone, LocalLandingZone
from collab.registry import Registry
from collab.staging import CONTACTS_FILE
from collab.states import read_state
from collab.submissions import find_incident
from collab.warehouse import connect
from collab.workspace import Workspace
from pipelines.runner import run_pending
from pipelines.sensors import landing_zone_sensor
from tests.conftest import contact_rows, write_csv
from tests.fixtures.bad.corpus import CASES
from tests.intake_pass import receive_pending
from tests.pipeline.test_submissions import SUBMISSION_ASSETS, submission_of

CHARITIES = ("north-food-bank", "south-advice")


@pytest.fixture
def charities(workspace: Workspace) -> tuple[str, ...]:
    settings = workspace.settings.model_copy(deep=True)
    settings.intake.settle_seconds = 0
    workspace.save_settings(settings)
    for charity in CHARITIES:
        Registry(workspace).add(charity, charity.replace("-", " ").title())
        LocalLandingZone(root=str(workspace.home)).create_area(charity)
    return CHARITIES


def _corpus_file(name: str, directory: Path) -> Path:
    [case] = [case for case in CASES if case.name == name]
    assert case.build is not None
    path = directory / name
    case.build(path)
    return path


def _feedback(workspace: Workspace, charity: str, submission_id: str) -> tuple[dict, str]:
    [path] = (workspace.feedback / charity).glob(f"*--{submission_id}.feedback.json")
    return json.loads(path.read_text()), path.with_suffix(".html").read_text()


def test_hostile_files_and_an_error_of_ours_never_stop_the_other_files(
    workspace: Workspace, charities: tuple[str, ...], tmp_path: Path
) -> None:
    north, south = charities
    zone = LocalLandingZone(root=str(workspace.home))
    good_north = write_csv(tmp_path / "north.csv", contact_rows(20))
    good_south = write_csv(tmp_path / "south.csv", contact_rows(30, prefix="S"))
    sabotaged = write_csv(tmp_path / "sabotaged.csv", contact_rows(10, prefix="X"))
    zone.drop(north, _corpus_file("fifty-megabyte-cell.csv", tmp_path))
    zone.drop(north, good_north)
    zone.drop(north, sabotaged)
    zone.drop(south, _corpus_file("external-entity.xlsx", tmp_path))
    zone.drop(south, _corpus_file("undefined-entity.xlsx", tmp_path))
    zone.drop(south, good_south)
    # A real fault of ours, not of the file: where the sabotaged file's contacts would be staged is a folder.
    sabotaged_id = f"{north}-{hashlib.sha256(sabotaged.read_bytes()).hexdigest()[:12]}"
    (submission_dir(workspace, sabotaged_id) / CONTACTS_FILE).mkdir(parents=True)

    report = run_pending(workspace)

    outcomes = {s.file_name: s for s in report.submissions}
    assert len(outcomes) == 6
    assert outcomes["north.csv"].status == outcomes["south.csv"].status == "accepted"
    assert outcomes["fifty-megabyte-cell.csv"].codes == ["E_LINE_TOO_LONG"]
    assert outcomes["external-entity.xlsx"].codes == outcomes["undefined-entity.xlsx"].codes == ["E_UNSAFE_FILE"]
    failed = outcomes["sabotaged.csv"]
    assert [s.file_name for s in report.failed] == ["sabotaged.csv"]
    assert failed.status == "failed" and failed.codes == ["E_INTERNAL"] and failed.reference
    with connect(workspace.warehouse_path) as con:
        assert con.execute("SELECT count(*) FROM contacts").fetchall()[0][0] == 50

    # The charity gets a report with the reference, and nothing of the error itself.
    feedback, html = _feedback(workspace, north, sabotaged_id)
    assert feedback["status"] == "rejected" and [i["code"] for i in feedback["issues"]] == ["E_INTERNAL"]
    assert failed.reference in json.dumps(feedback) and failed.reference in html
    for leak in ("Traceback", "IsADirectoryError", str(workspace.home)):
        assert leak not in json.dumps(feedback) and leak not in html
    # The analyst finds the details by the reference; the raw bytes are kept in quarantine.
    record = find_incident(workspace, failed.reference)
    assert record is not None and "IsADirectoryError" in record.read_text()
    assert (workspace.quarantine / sabotaged_id / "source.csv").read_bytes() == sabotaged.read_bytes()
    # Every file has feedback, the hostile ones included.
    for submission in report.submissions:
        assert _feedback(workspace, submission.charity_id, submission.submission_id)[0]["status"]


def test_a_file_name_that_is_not_text_is_refused_and_never_stops_another_charitys_file(
    workspace: Workspace, charities: tuple[str, ...], tmp_path: Path
) -> None:
    north, south = charities
    zone = LocalLandingZone(root=str(workspace.home))
    zone.drop(south, write_csv(tmp_path / "south.csv", contact_rows(30, prefix="S")))
    # 'café.csv' saved in Latin-1: Python lists the byte 0xE9 as a lone surrogate, which no UTF-8 text can hold.
    latin1 = workspace.landing / north / "caf\udce9.csv"  # written as the byte 0xE9 (surrogateescape)
    latin1.write_bytes(write_csv(tmp_path / "north.csv", contact_rows(20)).read_bytes())
    assert [os.fsencode(p.name) for p in latin1.parent.iterdir()] == [b"caf\xe9.csv"]

    report = run_pending(workspace)

    assert [s.file_name for s in report.submissions] == ["south.csv"] and report.submissions[0].status == "accepted"
    [refused] = report.refused
    assert refused["file"] == "caf\ufffd.csv" and refused["reason"].startswith("E_FILE_NAME_NOT_TEXT: ")
    assert not any((workspace.landing / north).iterdir())  # moved aside unread
    [note] = (workspace.feedback / north).glob("refused-*.json")
    assert "Rename it using plain letters and digits" in json.loads(note.read_text())["message"]
    assert "caf\ufffd.csv" in note.with_suffix(".html").read_text(encoding="utf-8")
    assert run_pending(workspace).refused == []  # and the next run goes on as usual


@dataclass(frozen=True)
class VanishingLandingZone(LocalLandingZone):
    """A local landing zone where a charity deletes one file between the listing and the fetch."""

    vanishing: str = ""

    def pending(self, charity_ids: Iterable[str], min_age_seconds: float = 0.0) -> list[LandingObject]:
        listed = super().pending(charity_ids, min_age_seconds)
        for obj in listed:
            if obj.name == self.vanishing:
                (Path(self.root) / "landing" / obj.charity_id / obj.key).unlink()
        return listed


def test_a_file_that_vanishes_after_listing_is_skipped_not_an_abort(
    workspace: Workspace, charities: tuple[str, ...], tmp_path: Path
) -> None:
    north, _ = charities
    zone = VanishingLandingZone(root=str(workspace.home), vanishing="a.csv")
    zone.drop(north, write_csv(tmp_path / "a.csv", contact_rows(5)))
    zone.drop(north, write_csv(tmp_path / "b.csv", contact_rows(6, start=dt.date(2026, 2, 1))))
    result = receive_pending(workspace, zone, [north])
    assert [m.original_name for m in result.received] == ["b.csv"]
    assert [(obj.name, "removed" in why) for obj, why in result.skipped] == [("a.csv", True)]
    with pytest.raises(LandingObjectGone):
        zone.fetch(result.skipped[0][0], tmp_path / "copy")
    # Nothing half-received is left in staging.
    assert sorted(p.name for p in workspace.staging.iterdir() if not p.name.startswith(".")) == [
        result.received[0].submission_id
    ]


@dataclass(frozen=True)
class AppendedAfterReadLandingZone(LocalLandingZone):
    """A local landing zone where a charity adds a row to its file just after the pipeline read it, before it is
    archived (its export finishing late, or a correction)."""

    def fetch(self, obj: LandingObject, destination: Path) -> str:
        sha256 = super().fetch(obj, destination)
        with (Path(self.root) / "landing" / obj.charity_id / obj.key).open("a", encoding="utf-8") as landed:
            landed.write(",".join(contact_rows(1, prefix="LATE")[0]) + "\n")
        return sha256


def test_a_file_changed_after_it_was_read_is_received_as_read_and_its_new_version_next(
    workspace: Workspace, charities: tuple[str, ...], tmp_path: Path
) -> None:
    """An attacker's trial (session 37): appended to after it was read, before it was archived, a file's submission
    had its receipt and manifest written, then failed as an error of ours (E_INTERNAL), and `collab run` exited 1.
    What was read is the submission, archived from the copy read; the changed file is the next pass's."""
    north, _ = charities
    sent = write_csv(tmp_path / "q1.csv", contact_rows(5))
    AppendedAfterReadLandingZone(root=str(workspace.home)).drop(north, sent)
    zone = AppendedAfterReadLandingZone(root=str(workspace.home))
    [first] = receive_pending(workspace, zone, [north]).received
    assert read_state(workspace, first.submission_id).state == "staged"  # type: ignore[union-attr]
    assert Path(first.archived_to).read_bytes() == sent.read_bytes()
    [changed] = LocalLandingZone(root=str(workspace.home)).pending([north])
    assert changed.size > sent.stat().st_size
    [second] = receive_pending(workspace, LocalLandingZone(root=str(workspace.home)), [north]).received
    assert second.submission_id != first.submission_id and "LATE0000" in Path(second.archived_to).read_text()
    assert second.received_at >= first.received_at  # arrived after it: its quarters replace the first's


def test_the_sensor_takes_up_a_submission_whose_run_never_finished(
    workspace: Workspace, charities: tuple[str, ...], tmp_path: Path
) -> None:
    north, _ = charities
    LocalLandingZone(root=str(workspace.home)).drop(north, write_csv(tmp_path / "q1.csv", contact_rows(8)))
    instance = DagsterInstance.ephemeral()

    def tick() -> list[tuple[str, str]]:
        result = landing_zone_sensor(build_sensor_context(instance=instance, resources=resources_for(workspace)))
        if isinstance(result, SkipReason):
            return []
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return [(r.partition_key, r.run_key) for r in result.run_requests]

    [(partition, run_key)] = tick()
    assert partition.startswith(f"{north}/q1/") and run_key.startswith(f"{north}/q1.csv@")
    # Its run never happened (the process died first): the next tick asks again, under the same run key, so
    # the daemon starts it once however many ticks ask.
    assert tick() == [(partition, run_key)]
    assert materialize(
        SUBMISSION_ASSETS, partition_key=partition, resources=resources_for(workspace), instance=instance
    ).success
    assert read_state(workspace, submission_of(workspace, partition)).state == "loaded"  # type: ignore[union-attr]
    assert tick() == []
