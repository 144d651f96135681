"""Submissions through the real assets, in process, on an ephemeral Dagster instance."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest
from dagster import (
    AssetCheckSeverity,
    DagsterInstance,
    DagsterRunStatus,
    SensorResult,
    SkipReason,
    build_sensor_context,
    materialize,
)

import assets.submissions
from assets.resources import resources_for
from assets.submissions import (
    submission_feedback,
    submission_file,
    submission_quality,
    warehouse_contacts,
)
from collab.expectations import ExpectationRun
from collab.intake import purge_submission, read_receipt, submission_dir
from collab.landing import LocalLandingZone
from collab.registry import Registry
from collab.schema import migrate
from collab.staging import MINIMISED_CONTACTS_FILE
from collab.states import mirror_states, read_state
from collab.warehouse import connect
from collab.workspace import Workspace
from pipelines.sensors import landing_zone_sensor
from standards import STANDARD_VERSION
from standards.mapping import CharityMapping
from tests.conftest import HEADER, contact_rows, write_csv
from tests.fixtures.bad.corpus import CASES, build

SUBMISSION_ASSETS = [
    submission_file,
    submission_quality,
    submission_feedback,
    warehouse_contacts,
]


@pytest.fixture
def charity(workspace: Workspace) -> str:
    settings = workspace.settings.model_copy(deep=True)
    settings.intake.settle_seconds = 0
    workspace.save_settings(settings)
    Registry(workspace).add("test-food-bank", "Test Food Bank")
    LocalLandingZone(root=str(workspace.home)).create_area("test-food-bank")
    return "test-food-bank"


def drop(workspace: Workspace, charity: str, path: Path, name: str | None = None) -> None:
    LocalLandingZone(root=str(workspace.home)).drop(charity, path, name)


def sense(workspace: Workspace, instance: DagsterInstance) -> list[str]:
    """Evaluate the landing sensor once; add its partitions; return the submission ids it requested."""
    context = build_sensor_context(instance=instance, resources=resources_for(workspace))
    result = landing_zone_sensor(context)
    if isinstance(result, SkipReason):
        return []
    assert isinstance(result, SensorResult)
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return [request.partition_key for request in result.run_requests]


def process(workspace: Workspace, instance: DagsterInstance, key: str):  # type: ignore[no-untyped-def]
    return materialize(
        SUBMISSION_ASSETS,
        partition_key=key,
        resources=resources_for(workspace),
        instance=instance,
        raise_on_error=False,
    )


def processed(workspace: Workspace, charity: str, instance: DagsterInstance, path: Path) -> str:
    """Drop one file, run its submission, and return its partition."""
    drop(workspace, charity, path)
    [key] = sense(workspace, instance)
    assert process(workspace, instance, key).success
    return key


def submission_of(workspace: Workspace, key: str) -> str:
    """The submission id a partition's run received its file as."""
    receipt = read_receipt(workspace, key)
    assert receipt is not None, f"{key} was not received"
    return receipt.submission_id


def feedback_for(workspace: Workspace, charity: str, key: str) -> dict:
    [path] = (workspace.feedback / charity).glob(f"*--{submission_of(workspace, key)}.feedback.json")
    assert path.with_suffix(".html").exists()
    return json.loads(path.read_text())


def minimised_contacts(workspace: Workspace, key: str) -> Path:
    """Where the checking step leaves the contacts as the load reads them (pseudonymised, minimised)."""
    return submission_dir(workspace, submission_of(workspace, key)) / MINIMISED_CONTACTS_FILE


def warehouse_rows(workspace: Workspace, where: str = "true") -> int:
    with connect(workspace.warehouse_path) as con:
        return con.execute(f"SELECT count(*) FROM contacts WHERE {where}").fetchall()[0][0]


def test_one_bad_file_never_stops_the_others(workspace: Workspace, charity: str, tmp_path: Path) -> None:
    files = {
        "good.csv": write_csv(tmp_path / "good.csv", contact_rows(25)),
        "windows.csv": write_csv(
            tmp_path / "windows.csv", contact_rows(15, start=dt.date(2026, 4, 2), prefix="W"), encoding="cp1252"
        ),
        "empty.csv": tmp_path / "empty.csv",
        "no-need.csv": write_csv(
            tmp_path / "no-need.csv", [r[:2] + r[3:] for r in contact_rows(5)], HEADER[:2] + HEADER[3:]
        ),
        "binary.csv": tmp_path / "binary.csv",
    }
    files["empty.csv"].write_bytes(b"")
    files["binary.csv"].write_bytes(bytes(range(256)) * 50)
    for name, path in files.items():
        drop(workspace, charity, path, name)
    instance = DagsterInstance.ephemeral()
    keys = sense(workspace, instance)
    assert len(keys) == 5
    outcomes, loaded = {}, set()
    for key in keys:
        result = process(workspace, instance, key)
        report = feedback_for(workspace, charity, key)
        outcomes[report["file_name"]] = (result.success, report["status"], [i["code"] for i in report["issues"]])
        if any(e.asset_key.path == ["warehouse_contacts"] for e in result.get_asset_materialization_events()):
            loaded.add(report["file_name"])
    assert loaded == {"good.csv", "windows.csv"}
    assert outcomes["good.csv"][:2] == (True, "accepted")
    assert outcomes["windows.csv"][:2] == (True, "accepted_with_warnings")
    # A rejected file is the pipeline working, not a failed run: its feedback is materialised, its load is not.
    assert outcomes["empty.csv"] == (True, "rejected", ["E_EMPTY_FILE"])
    assert outcomes["no-need.csv"] == (True, "rejected", ["E_MISSING_COLUMN"])
    assert outcomes["binary.csv"] == (True, "rejected", ["E_UNREADABLE_FILE"])
    assert warehouse_rows(workspace) == 40  # only the two accepted files (2026Q1 and 2026Q2), all of their rows
    with connect(workspace.warehouse_path) as con:
        assert con.execute("SELECT count(*) FROM submissions").fetchall()[0][0] == 2
    # The next tick mirrors every state into the warehouse, as `collab run` does (rejections are only there so).
    assert sense(workspace, instance) == []
    with connect(workspace.warehouse_path) as con:
        mirrored = con.execute("SELECT state, count(*) FROM submission_states GROUP BY ALL ORDER BY 1").fetchall()
    assert mirrored == [("loaded", 2), ("rejected", 3)]
    # Rejected raw files stay in the archive until purged; nothing of theirs reached the warehouse.
    assert len(list((workspace.archive / charity).rglob("empty.csv"))) == 1


def test_a_rejected_file_is_a_successful_run_whose_status_is_rejected(
    workspace: Workspace, charity: str, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "no-need.csv", [r[:2] + r[3:] for r in contact_rows(5)], HEADER[:2] + HEADER[3:])
    drop(workspace, charity, path)
    instance = DagsterInstance.ephemeral()
    [key] = sense(workspace, instance)
    result = process(workspace, instance, key)
    assert result.success and instance.get_run_by_id(result.run_id).status == DagsterRunStatus.SUCCESS  # type: ignore[union-attr]
    for step in ("submission_file", "submission_quality", "submission_feedback"):
        [materialised] = result.asset_materializations_for_node(step)
        expected = "received" if step == "submission_file" else "rejected"
        assert materialised.metadata["status"].value == expected, step
    # The check says so as a warning, and the load never happens: nothing of the file reaches the warehouse.
    [accepted] = [c for c in result.get_asset_check_evaluations() if c.check_name == "check_submission_accepted"]
    assert not accepted.passed and accepted.severity == AssetCheckSeverity.WARN
    assert not result.asset_materializations_for_node("warehouse_contacts")
    assert read_state(workspace, submission_of(workspace, key)).state == "rejected"  # type: ignore[union-attr]
    assert warehouse_rows(workspace) == 0
    assert not minimised_contacts(workspace, key).exists()  # nothing is made ready for a load that never comes


class _OneRuleFails(ExpectationRun):
    """The real suite, with its first rule then marked failed: staged data the suite would reject."""

    def validate_staged(self, path: Path) -> None:
        super().validate_staged(path)
        rule = next(iter(self.outcomes))
        self.outcomes[rule] = self.outcomes[rule].model_copy(update={"success": False})


def test_a_failed_expectations_check_blocks_feedback_and_load(
    workspace: Workspace, charity: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Great Expectations check runs in the quality step; failing, it is recorded and nothing after it runs."""
    monkeypatch.setattr(assets.submissions, "ExpectationRun", _OneRuleFails)
    drop(workspace, charity, write_csv(tmp_path / "contacts.csv", contact_rows(8)))
    instance = DagsterInstance.ephemeral()
    [key] = sense(workspace, instance)
    result = process(workspace, instance, key)
    assert not result.success
    [quality] = result.asset_materializations_for_node("submission_quality")
    assert quality.metadata["status"].value.startswith("accepted")
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "check_staged_contacts_expectations"]
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR
    assert not result.asset_materializations_for_node("submission_feedback")
    assert not result.asset_materializations_for_node("warehouse_contacts")
    assert warehouse_rows(workspace) == 0
    assert not minimised_contacts(workspace, key).exists()


def test_the_sensor_tick_only_lists_and_the_run_takes_the_file(
    workspace: Workspace, charity: str, tmp_path: Path
) -> None:
    drop(workspace, charity, write_csv(tmp_path / "Jan contacts (final).csv", contact_rows(6)))
    instance = DagsterInstance.ephemeral()
    [key] = sense(workspace, instance)
    assert key.startswith(f"{charity}/Jan-contacts-final/")
    # The tick copied and hashed nothing: no submission in staging, the file still in the landing area.
    assert not workspace.staging.exists() or not [p for p in workspace.staging.iterdir() if p.name != ".partitions"]
    assert [p.name for p in (workspace.landing / charity).iterdir()] == ["Jan contacts (final).csv"]
    assert sense(workspace, instance) == [key]  # asked for again, under the same run key, until its run takes it
    result = process(workspace, instance, key)
    assert result.success
    submission_id = submission_of(workspace, key)
    staged = workspace.staging / submission_id
    assert (staged / "source.csv").read_bytes() == (tmp_path / "Jan contacts (final).csv").read_bytes()
    assert not any((workspace.landing / charity).iterdir())
    state = read_state(workspace, submission_id)
    assert state is not None and state.state == "loaded" and state.name == key
    [received] = result.asset_materializations_for_node("submission_file")
    assert received.metadata["submission_id"].value == submission_id


def test_identical_file_dropped_twice_is_processed_once(workspace: Workspace, charity: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "q1.csv", contact_rows(10))
    instance = DagsterInstance.ephemeral()
    drop(workspace, charity, path)
    [key] = sense(workspace, instance)
    assert process(workspace, instance, key).success
    submission_id = submission_of(workspace, key)
    drop(workspace, charity, path, "Copy of q1.csv")
    [copy] = sense(workspace, instance)
    result = process(workspace, instance, copy)
    # Found in the copy's own run: received and archived, said to be a duplicate, neither checked nor loaded.
    assert result.success
    [received] = result.asset_materializations_for_node("submission_file")
    assert received.metadata["status"].value == "duplicate" and received.metadata["duplicate_of"].value == key
    assert not result.asset_materializations_for_node("submission_quality")
    notes = list((workspace.feedback / charity).glob(f"{submission_id}.duplicate-*.json"))
    assert len(notes) == 1 and json.loads(notes[0].read_text())["duplicate_of"] == submission_id
    # Beside it, a page for people (found by trial: the notice was JSON only).
    page = notes[0].with_suffix(".html").read_text()
    assert "<h1>Duplicate: Copy of q1.csv</h1>" in page and "was not processed again" in page
    assert not any((workspace.landing / charity).iterdir())
    assert warehouse_rows(workspace) == 10


def test_resubmission_replaces_the_charitys_quarter_atomically(
    workspace: Workspace, charity: str, tmp_path: Path
) -> None:
    instance = DagsterInstance.ephemeral()
    first = processed(workspace, charity, instance, write_csv(tmp_path / "first.csv", contact_rows(30)))
    assert warehouse_rows(workspace) == 30
    drop(workspace, charity, write_csv(tmp_path / "corrected.csv", contact_rows(12, prefix="C")))
    [second] = sense(workspace, instance)
    result = process(workspace, instance, second)
    assert result.success
    assert warehouse_rows(workspace) == 12
    assert warehouse_rows(workspace, f"submission_id = '{submission_of(workspace, first)}'") == 0
    materialization = result.asset_materializations_for_node("warehouse_contacts")[0]
    assert materialization.metadata["rows_replaced"].value == 30
    assert materialization.metadata["dagster/row_count"].value == 12


def test_a_file_is_read_with_the_mapping_in_effect_when_it_landed(
    workspace: Workspace, charity: str, tmp_path: Path
) -> None:
    """A charity's trial (session 31): a file checked and sent, then choices saved for another layout (its dates
    month first) before the pipeline read the first, which was read with them: its dates moved quarter."""
    registry = Registry(workspace)
    day_first, month_first = tmp_path / "day-first.yaml", tmp_path / "month-first.yaml"
    CharityMapping(date_format="%d/%m/%Y").dump(day_first)
    CharityMapping(date_format="%m/%d/%Y").dump(month_first)
    registry.set_mapping(charity, day_first)
    time.sleep(0.05)  # file times are as coarse as the kernel's clock tick
    drop(workspace, charity, write_csv(tmp_path / "sent.csv", contact_rows(10, start=dt.date(2026, 1, 5))))
    time.sleep(0.05)
    registry.set_mapping(charity, month_first)
    instance = DagsterInstance.ephemeral()
    [sent] = sense(workspace, instance)
    assert process(workspace, instance, sent).success
    report = feedback_for(workspace, charity, sent)
    assert (report["rows_accepted"], report["quarters"]) == (10, ["2026Q1"])  # 05/01 to 14/01, January
    # A file sent after the new choices is read with them.
    us_rows = [[r[0], f"{r[1][3:5]}/{r[1][:2]}/{r[1][6:]}", *r[2:]] for r in contact_rows(10, prefix="U")]
    later = processed(workspace, charity, instance, write_csv(tmp_path / "later.csv", us_rows))
    assert (
        feedback_for(workspace, charity, later)["rows_accepted"],
        feedback_for(workspace, charity, later)["quarters"],
    ) == (10, ["2026Q1"])
    assert registry.mapping(charity).date_format == "%m/%d/%Y"


def test_a_file_whose_rows_a_later_file_replaced_is_loaded_again_when_dropped_again(
    workspace: Workspace, charity: str, tmp_path: Path
) -> None:
    """Found trying the pipeline as a charity would: one mistyped date in a later file replaced a whole quarter, and
    dropping the original file again to put it back was "a duplicate; its feedback still applies". Now the original,
    its rows replaced, is loaded again, even after its raw copies were purged; a file whose rows all stand is still a
    duplicate."""
    instance = DagsterInstance.ephemeral()
    original = write_csv(tmp_path / "q1.csv", contact_rows(30))
    first = processed(workspace, charity, instance, original)
    first_id = submission_of(workspace, first)
    typo = contact_rows(20, start=dt.date(2026, 4, 6), prefix="T")
    typo[0][1] = "07/01/2026"  # one date in the first quarter
    drop(workspace, charity, write_csv(tmp_path / "q2.csv", typo))
    [second] = sense(workspace, instance)
    result = process(workspace, instance, second)
    assert result.asset_materializations_for_node("warehouse_contacts")[0].metadata["submissions_replaced"].value == (
        first_id
    )
    assert warehouse_rows(workspace, "quarter = '2026Q1'") == 1
    assert read_state(workspace, first_id).replaced  # type: ignore[union-attr]
    # The charity is told at once, with the counts, and what to do.
    told = feedback_for(workspace, charity, second)
    [warning] = [g for g in told["issues"] if g["code"] == "W_QUARTER_MOSTLY_REPLACED"]
    assert warning["examples"][0]["message"] == (
        "This file has 1 contact(s) in 2026Q1, and they replaced the 30 you sent for 2026Q1 before."
    )
    assert "send the earlier file for that quarter again" in warning["fix"]
    assert told["status"] == "accepted_with_warnings" and told["loaded"] is True
    purge_submission(workspace, first_id)
    drop(workspace, charity, original, "q1-again.csv")
    [again] = sense(workspace, instance)
    assert process(workspace, instance, again).success
    assert not read_receipt(workspace, again).duplicate  # type: ignore[union-attr]
    assert submission_of(workspace, again) == first_id
    assert warehouse_rows(workspace, "quarter = '2026Q1'") == 30
    assert warehouse_rows(workspace, f"submission_id = '{first_id}'") == 30
    state = read_state(workspace, first_id)
    assert state is not None and state.state == "loaded" and not state.replaced
    restored = feedback_for(workspace, charity, again)
    assert restored["rows_accepted"] == 30 and "W_QUARTER_MOSTLY_REPLACED" not in {
        g["code"] for g in restored["issues"]
    }
    # The later file lost its first-quarter row in turn; the original, all its rows held, is a duplicate again.
    assert read_state(workspace, submission_of(workspace, second)).replaced  # type: ignore[union-attr]
    drop(workspace, charity, original, "q1-third.csv")
    [third] = sense(workspace, instance)
    assert process(workspace, instance, third).success
    assert read_receipt(workspace, third).duplicate  # type: ignore[union-attr]


def test_of_two_files_for_one_quarter_the_one_sent_last_keeps_it_whichever_loads_last(
    workspace: Workspace, charity: str, tmp_path: Path
) -> None:
    """Found by the attacker's trial: a full extract and, sent after it, a correction of the same quarter, picked up
    by one run: the two load in whatever order their checks end, and the full extract loaded last overwrote the
    correction, both files told "accepted". Now the file sent last keeps the quarter; the other is told so, and
    sending it again makes it the latest."""
    instance = DagsterInstance.ephemeral()
    drop(workspace, charity, write_csv(tmp_path / "full.csv", contact_rows(60)), "a-full.csv")
    drop(workspace, charity, write_csv(tmp_path / "fix.csv", contact_rows(5, prefix="C")), "b-correction.csv")
    by_name = {key.split("/")[1]: key for key in sense(workspace, instance)}
    # The correction's run ends first, the full extract's after it.
    assert process(workspace, instance, by_name["b-correction"]).success
    assert process(workspace, instance, by_name["a-full"]).success
    correction, full = (submission_of(workspace, by_name[n]) for n in ("b-correction", "a-full"))
    assert warehouse_rows(workspace, "quarter = '2026Q1'") == 5
    assert warehouse_rows(workspace, f"submission_id = '{correction}'") == 5
    told = feedback_for(workspace, charity, by_name["a-full"])
    [warning] = [g for g in told["issues"] if g["code"] == "W_QUARTER_IN_A_LATER_FILE"]
    assert (
        "contacts in 2026Q1 were not loaded: a file you sent after this one covers 2026Q1"
        in (warning["examples"][0]["message"])
    )
    assert told["status"] == "accepted_with_warnings" and told["loaded"] is True and told["rows_stored"] == 0
    # Its headline says so too, not "accepted" alone (the attacker's third trial).
    [html] = (workspace.feedback / charity).glob(f"*--{full}.feedback.html")
    assert "60 of 60 row(s) accepted. None of them were stored: files you sent later" in html.read_text()
    assert feedback_for(workspace, charity, by_name["b-correction"])["rows_stored"] == 5
    # Sent again, the full extract is the latest: it replaces the quarter.
    drop(workspace, charity, tmp_path / "full.csv", "a-full-again.csv")
    [again] = sense(workspace, instance)
    assert process(workspace, instance, again).success and submission_of(workspace, again) == full
    assert warehouse_rows(workspace, "quarter = '2026Q1'") == 60
    # Sent again, it counts from when it arrived, not from when a run took it: a correction sent after it still
    # wins, whichever is processed last (the attacker's second trial).
    processed(workspace, charity, instance, write_csv(tmp_path / "fix1.csv", contact_rows(3, prefix="E")))
    assert warehouse_rows(workspace, "quarter = '2026Q1'") == 3 and read_state(workspace, full).replaced  # type: ignore[union-attr]
    drop(workspace, charity, tmp_path / "full.csv", "a-full-third.csv")
    drop(workspace, charity, write_csv(tmp_path / "fix2.csv", contact_rows(4, prefix="D")), "d-correction.csv")
    later = {key.split("/")[1]: key for key in sense(workspace, instance)}
    assert process(workspace, instance, later["d-correction"]).success
    assert process(workspace, instance, later["a-full-third"]).success
    assert not read_receipt(workspace, later["a-full-third"]).duplicate  # type: ignore[union-attr]
    assert warehouse_rows(workspace, "quarter = '2026Q1'") == 4


def test_a_load_stopped_before_marking_what_it_replaced_is_caught_up_by_the_next_mirror(
    workspace: Workspace, charity: str, tmp_path: Path
) -> None:
    instance = DagsterInstance.ephemeral()
    first = processed(workspace, charity, instance, write_csv(tmp_path / "first.csv", contact_rows(30)))
    first_id = submission_of(workspace, first)
    state = read_state(workspace, first_id)
    assert state is not None
    with connect(workspace.warehouse_path) as con:
        con.execute("DELETE FROM contacts WHERE submission_id = $s AND person_key % 2 = 0", {"s": first_id})
        assert not read_state(workspace, first_id).replaced  # type: ignore[union-attr]
        mirror_states(con, workspace)
    assert read_state(workspace, first_id).replaced  # type: ignore[union-attr]


def _texts(rows: list[tuple[object, ...]]) -> str:
    return str([value for row in rows for value in row if isinstance(value, str)])


def test_warehouse_holds_no_raw_identifiers(workspace: Workspace, charity: str, tmp_path: Path) -> None:
    rows = [[*row, "Jane Doe", "07700 900123"] for row in contact_rows(10)]
    drop(workspace, charity, write_csv(tmp_path / "ids.csv", rows, [*HEADER, "Client Name", "Phone"]))
    instance = DagsterInstance.ephemeral()
    [key] = sense(workspace, instance)
    result = process(workspace, instance, key)
    assert result.success
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "check_warehouse_contacts_minimised"]
    assert check.passed
    # Text values only: a keyed person_key is a 64-bit integer, whose digits held "07700" by chance in one run.
    with connect(workspace.warehouse_path) as con:
        dump = _texts(con.execute("SELECT * FROM contacts").fetchall())
    # What the checking step made ready for the load, and left in staging, is as minimised as the warehouse.
    ready = _texts(pl.read_parquet(minimised_contacts(workspace, key)).rows())
    for raw in ("P0000", "Jane Doe", "07700", "B15 2TT", "/19"):
        assert raw not in dump and raw not in ready
    metadata = result.asset_materializations_for_node("submission_quality")[0].metadata
    assert metadata["rows_accepted"].value == 10
    assert "Jane" not in str(metadata)


def test_the_minimised_check_fails_linkage_units_whose_components_are_not_keyed_codes() -> None:
    con = duckdb.connect()
    migrate(con)
    assert assets.submissions._check_minimised(con, "s").passed
    # Columns that could hold a raw surname: a component of strings, or a column not declared.
    con.execute("ALTER TABLE linkage_units ALTER surname SET DATA TYPE VARCHAR")
    con.execute("ALTER TABLE linkage_units ADD COLUMN name VARCHAR")
    check = assets.submissions._check_minimised(con, "s")
    assert not check.passed and check.metadata["linkage_unit_columns_not_keyed"].value == "name, surname"


def test_the_minimised_check_fails_person_keys_that_are_small_integers_as_raw_references_are() -> None:
    """A BIGINT column holds a charity's numeric case numbers as readily as keyed codes; a keyed code is below 2^32 in
    magnitude with chance 2^-31, a case number almost always."""
    con = duckdb.connect()
    migrate(con)
    con.executemany(
        "INSERT INTO contacts (submission_id, charity_id, person_key, quarter) VALUES ('s', 'a', ?, '2026Q1')",
        [[100231], [-6894140743239217826]],
    )
    check = assets.submissions._check_minimised(con, "s")
    assert not check.passed and check.metadata["malformed_person_keys"].value == 1


def test_only_a_charity_that_links_records_is_warned_of_a_surname_it_cannot_link(
    workspace: Workspace, charity: str, tmp_path: Path
) -> None:
    """The check warns of a surname with no Latin letters only if the registry says the charity links records:
    for one that does not, no surname is linked anyway."""
    instance = DagsterInstance.ephemeral()
    warned = {}
    for links in (False, True):
        Registry(workspace).set_linkage(charity, links)
        rows = [[*row, "Иванов"] for row in contact_rows(5, prefix="L" if links else "N")]
        drop(workspace, charity, write_csv(tmp_path / f"surnames-{links}.csv", rows, [*HEADER, "Surname"]))
        [key] = sense(workspace, instance)
        assert process(workspace, instance, key).success
        codes = [issue["code"] for issue in feedback_for(workspace, charity, key)["issues"]]
        warned[links] = "W_SURNAME_NOT_LINKABLE" in codes
    assert warned == {False: False, True: True}


def test_the_pipeline_carries_on_through_the_whole_robustness_corpus(
    workspace: Workspace, charity: str, tmp_path: Path
) -> None:
    """Every kind of bad file, dropped together with a good one: each gets its feedback, only
    accepted rows reach the warehouse, and a rejected file leaves nothing there."""
    files = build(tmp_path / "corpus")
    for name, path in files.items():
        drop(workspace, charity, path, name)
    good = write_csv(tmp_path / "good.csv", contact_rows(25, start=dt.date(2026, 4, 2)))
    drop(workspace, charity, good, "zz-good.csv")
    instance = DagsterInstance.ephemeral()
    keys = sense(workspace, instance)
    assert len(keys) == len(CASES) + 1
    expected = {case.name: case for case in CASES}
    seen = set()
    for key in keys:
        result = process(workspace, instance, key)
        report = feedback_for(workspace, charity, key)
        name = report["file_name"]
        seen.add(name)
        loaded = warehouse_rows(workspace, f"submission_id = '{submission_of(workspace, key)}'")
        if name == "zz-good.csv":
            assert result.success and report["status"] == "accepted" and loaded == 25
            continue
        case = expected[name]
        # The corpus's files are one charity's, so each replaces the quarter of those loaded before it, or keeps out
        # of the quarters of those sent after it: which one warns depends on the order they load in, not on the file.
        later = "W_QUARTER_IN_A_LATER_FILE" in {i["code"] for i in report["issues"]}
        codes = {i["code"] for i in report["issues"]} - {"W_QUARTER_MOSTLY_REPLACED", "W_QUARTER_IN_A_LATER_FILE"}
        status = "accepted" if report["status"] == "accepted_with_warnings" and not codes else report["status"]
        assert (status, codes) == (case.status, set(case.codes)), name
        assert result.success, name  # a rejected file is the pipeline working, not a failed run
        assert read_state(workspace, submission_of(workspace, key)).state == (
            "rejected" if case.status == "rejected" else "loaded"
        ), name  # type: ignore[union-attr]
        # Accepted rows are all loaded, but those of a quarter a later file keeps; a rejected file leaves no rows.
        assert loaded == report["rows_accepted"] or (later and loaded < report["rows_accepted"]), name
        assert report["standard_version"] == STANDARD_VERSION
    assert seen == {*expected, "zz-good.csv"}
    with connect(workspace.warehouse_path) as con:
        versions = con.execute("SELECT DISTINCT standard_version FROM contacts").fetchall()
    assert versions == [(STANDARD_VERSION,)]
    # Rejected rows go to quarantine with every cell a spreadsheet would run neutralised.
    [injection] = [k for k in keys if feedback_for(workspace, charity, k)["file_name"] == "csv-injection.csv"]
    quarantined = (workspace.quarantine / submission_of(workspace, injection) / "rejected_rows.csv").read_text(
        encoding="utf-8"
    )
    assert "'=cmd|' /C calc'!A0" in quarantined and ",=cmd" not in quarantined


def test_purge_removes_raw_copies_but_keeps_history_and_duplicate_detection(
    workspace: Workspace, charity: str, tmp_path: Path
) -> None:
    rows = contact_rows(10)
    rows[0][1] = "31/02/2026"  # one rejected row, so the quarantine holds something
    path = write_csv(tmp_path / "q1.csv", rows)
    instance = DagsterInstance.ephemeral()
    drop(workspace, charity, path)
    [partition] = sense(workspace, instance)
    assert process(workspace, instance, partition).success
    key = submission_of(workspace, partition)
    # The same bytes again: archived as a duplicate, a raw copy the purge must delete too (a trial found it kept).
    drop(workspace, charity, path, "sent-twice.csv")
    [twice] = sense(workspace, instance)
    assert process(workspace, instance, twice).success
    duplicate = read_receipt(workspace, twice)
    assert duplicate is not None and duplicate.duplicate
    assert (workspace.archive / charity / duplicate.archive_name / "sent-twice.csv").exists()
    staging = workspace.staging / key
    assert (staging / "contacts.parquet").exists() and (workspace.quarantine / key).exists()
    removed = purge_submission(workspace, key) + LocalLandingZone(root=str(workspace.home)).purge_archive(charity, key)
    assert sorted(p.name for p in staging.iterdir()) == ["manifest.json", "report.json", "state.json"]
    assert not (workspace.quarantine / key).exists() and not (workspace.archive / charity / key).exists()
    assert not [p for p in (workspace.archive / charity).rglob("*") if p.is_file()]  # no copy of the file anywhere
    assert len(removed) >= 5
    assert warehouse_rows(workspace) == 9  # the pseudonymised rows stay
    drop(workspace, charity, path, "again.csv")
    [again] = sense(workspace, instance)
    assert process(workspace, instance, again).success
    assert read_receipt(workspace, again).duplicate  # type: ignore[union-attr]  # still recognised as received


def test_raw_and_identifiable_files_are_the_pipeline_users_only(
    workspace: Workspace, charity: str, tmp_path: Path
) -> None:
    # A trial found staged extracts, quarantined rows and the warehouse readable by every user of the machine.
    rows = contact_rows(10)
    rows[0][1] = "31/02/2026"
    drop(workspace, charity, write_csv(tmp_path / "q1.csv", rows))
    instance = DagsterInstance.ephemeral()
    [partition] = sense(workspace, instance)
    assert process(workspace, instance, partition).success
    key = submission_of(workspace, partition)
    assert (workspace.quarantine / key / "rejected_rows.csv").exists() and any((workspace.archive / charity).iterdir())
    for folder in workspace.private_folders:
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    assert workspace.warehouse_path.stat().st_mode & 0o777 == 0o600
    folder = workspace.staging
    folder.chmod(0o755)  # a workspace made before: tightened by the next command
    workspace.init()
    assert folder.stat().st_mode & 0o777 == 0o700
