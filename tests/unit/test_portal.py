"""The portal's own logic, without a server: passwords, sessions, the sign-in limit, file names,
the row files, whose submissions are whose, and the mapping form's answers."""

from __future__ import annotations

import csv
import datetime as dt
import json
import time
from pathlib import Path

import pytest

from collab.landing import LocalLandingZone, landing_name
from collab.portal import accounts
from collab.portal.checks import safe_file_name
from collab.portal.mapping_form import mapping_form, mapping_from_answers
from collab.portal.sessions import MAX_PER_CHARITY, SessionTable, SignInLimiter
from collab.portal.submissions import charity_submission, charity_submissions, compared_with_last
from collab.registry import Registry
from collab.states import write_state
from collab.workspace import Workspace
from standards.check import CheckOptions, check_extract
from standards.mapping import CharityMapping
from standards.rows import RowFiles, read_affected
from tests.conftest import HEADER, contact_rows, write_csv, write_xlsx


def test_a_password_is_kept_only_as_an_argon2_hash_and_stops_when_revoked_or_replaced(workspace: Workspace) -> None:
    Registry(workspace).add("north-pantry", "North")
    first = accounts.issue_password(workspace, "north-pantry")
    stored = (workspace.registry / "north-pantry" / "portal.json").read_text()
    assert first not in stored and "$argon2id$" in stored
    assert (workspace.registry / "north-pantry" / "portal.json").stat().st_mode & 0o077 == 0
    assert accounts.verify(workspace, "north-pantry", first) is not None
    assert accounts.verify(workspace, "north-pantry", first + "x") is None
    assert accounts.verify(workspace, "no-such-charity", first) is None
    second = accounts.issue_password(workspace, "north-pantry")
    assert accounts.verify(workspace, "north-pantry", first) is None
    assert accounts.verify(workspace, "north-pantry", second) is not None
    accounts.revoke(workspace, "north-pantry")
    assert accounts.verify(workspace, "north-pantry", second) is None
    Registry(workspace).deactivate("north-pantry")
    assert accounts.account(workspace, "north-pantry") is None


def test_sessions_end_when_idle_or_signed_out() -> None:
    table = SessionTable(idle_seconds=0.05)
    session, _ = table.open("north-pantry", dt.datetime.now(dt.UTC))
    assert table.touch(session.sid) is session
    time.sleep(0.08)
    assert table.touch(session.sid) is None
    assert [s.sid for s in table.idle()] == [session.sid] and table.all() == []
    other, _ = table.open("north-pantry", dt.datetime.now(dt.UTC))
    assert table.end(other.sid) is other and table.touch(other.sid) is None
    assert table.touch("made-up") is None


def test_a_charity_keeps_at_most_a_few_sessions_and_their_files() -> None:
    table = SessionTable(idle_seconds=60)
    opened = [table.open("north-pantry", dt.datetime.now(dt.UTC))[0] for _ in range(MAX_PER_CHARITY)]
    table.open("south-pantry", dt.datetime.now(dt.UTC))
    newest, ended = table.open("north-pantry", dt.datetime.now(dt.UTC))
    assert ended == [opened[0]] and table.touch(opened[0].sid) is None
    assert table.touch(newest.sid) is newest and len(table.all()) == MAX_PER_CHARITY + 1


def test_the_sign_in_limit_counts_per_charity_and_address_and_allows_an_address_and_a_charity_more() -> None:
    limiter = SignInLimiter(attempts=3, window_seconds=0.2, per_address=5, per_charity=6)
    for _ in range(3):
        limiter.attempt(*limiter.keys("1", "a"))
    assert limiter.blocked(*limiter.keys("1", "a")) and not limiter.blocked(*limiter.keys("1", "b"))
    # Found by the attacker's trial: five wrong passwords from anywhere locked the charity itself out.
    assert not limiter.blocked(*limiter.keys("2", "a"))
    limiter.attempt(*limiter.keys("1", "b"))
    limiter.attempt(*limiter.keys("1", "c"))
    assert limiter.blocked(*limiter.keys("1", "d"))  # five failures from one address, across charities
    for address in ("3", "4", "5"):  # many addresses guessing one charity's password
        limiter.attempt(*limiter.keys(address, "a"))
    assert limiter.blocked(*limiter.keys("2", "a"))  # six failures for the charity, from any address
    time.sleep(0.25)
    assert not limiter.blocked(*limiter.keys("1", "a"))
    # A sign-in counts as failed before its password is checked, taken back when it was right: none of a burst
    # checked side by side passes the limit.
    counted = [limiter.attempt(*limiter.keys("7", "e")) for _ in range(4)]
    assert None not in counted[:3] and counted[3] is None
    right = limiter.attempt(*limiter.keys("8", "f"))
    assert right is not None
    limiter.withdraw(right, *limiter.keys("8", "f"))
    assert not limiter._failures.get("charity:f")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("clients Q1.xlsx", "clients Q1.xlsx"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\jo\\Desktop\\export.csv", "export.csv"),
        (".hidden.csv", "hidden.csv"),
        ("<img src=x onerror=alert(1)>.csv", "_img src_x onerror_alert(1)_.csv"),
        ("résumé 😀.csv", "résumé _.csv"),  # letters of any script stay (the attacker's trial: 'r_sum_ _.csv')
        ("x\u202egpj.csv", "x_gpj.csv"),  # a right-to-left override never reaches a name
        ("..", "file"),
        ("", "file"),
        ("a" * 300 + ".csv", "a" * 96 + ".csv"),  # cut before its extension, which stays
        ("利用者データ" * 40 + ".xlsx", "利用者データ" * 5 + "利.xlsx"),  # by bytes: 300 of them were a 500 page
        ("minutes of the 3.5 meeting " * 9, ("minutes of the 3.5 meeting " * 4)[:100].strip()),
        (".xlsx", "xlsx"),
    ],
)
def test_an_uploaded_file_name_becomes_one_plain_name(given: str, expected: str) -> None:
    assert safe_file_name(given) == expected
    assert len(safe_file_name(given).encode()) <= 100


def test_row_files_hold_every_affected_row_and_escape_formulas(tmp_path: Path) -> None:
    rows = contact_rows(30)
    rows[2][1] = "not a date"
    rows[4][1] = "=1+1"
    rows[6][5] = "@SUM(A1)"  # an income that is no amount: a warning, the row is kept
    path = write_csv(tmp_path / "extract.csv", rows)
    files = RowFiles(rejected=tmp_path / "r.csv", accepted=tmp_path / "a.csv", affected=tmp_path / "x.jsonl")
    with files:
        report = check_extract(path, on_rows=files).report
    assert report.rows_rejected == 2
    rejected = list(csv.reader((tmp_path / "r.csv").open(encoding="utf-8")))
    assert [r[0] for r in rejected[1:]] == ["4", "6"]
    assert "'=1+1" in rejected[2] and all(not c.startswith(("=", "@", "+")) for r in rejected for c in r)
    accepted = list(csv.reader((tmp_path / "a.csv").open(encoding="utf-8")))
    assert len(accepted) == 1 + 28
    assert next(r for r in accepted if r[0] == "8")[1:2] == ["W_INVALID_AMOUNT"]
    assert "'@SUM(A1)" in next(r for r in accepted if r[0] == "8")
    affected = list(read_affected(tmp_path / "x.jsonl"))
    assert [(a.row, a.accepted) for a in affected] == [(4, False), (6, False), (8, True)]
    assert files.rows_affected == 3
    assert [a.row for a in read_affected(tmp_path / "x.jsonl", start=1, count=1)] == [6]
    # Batch by batch, the clean rows written by Polars and the rest one by one: the same files, in the file's order.
    batched = tmp_path / "batched"
    batched.mkdir()
    names = ("r.csv", "a.csv", "x.jsonl")
    with RowFiles(**dict(zip(("rejected", "accepted", "affected"), (batched / n for n in names), strict=True))) as rows:
        check_extract(path, options=CheckOptions(batch_size=4), on_rows=rows)
    for name in names:
        assert (batched / name).read_bytes() == (tmp_path / name).read_bytes(), name
    assert (tmp_path / "a.csv").read_bytes().count(b"\r\n") == 1 + 28


def _manifest(workspace: Workspace, charity_id: str, digest: str, name: str, report: dict | None = None) -> str:
    submission_id = f"{charity_id}-{digest}"
    directory = workspace.staging / submission_id
    directory.mkdir(parents=True)
    manifest = {
        "submission_id": submission_id,
        "charity_id": charity_id,
        "original_name": name,
        "object_key": name,
        "size": 1,
        "sha256": digest * 5,
        "received_at": "2026-03-01T10:00:00Z",
        "archived_to": "x",
        "source_file": "source.csv",
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    if report is not None:
        (directory / "report.json").write_text(json.dumps(report))
    return submission_id


def test_a_charity_sees_only_its_own_submissions_even_when_ids_share_a_prefix(workspace: Workspace) -> None:
    landing = LocalLandingZone(str(workspace.home))
    for charity in ("food", "food-bank"):
        landing.create_area(charity)
    ours = _manifest(workspace, "food", "aaaaaaaaaaaa", "ours.csv")
    theirs = _manifest(workspace, "food-bank", "bbbbbbbbbbbb", "theirs.csv")
    (workspace.landing / "food" / "waiting.csv").write_text("x")
    found = charity_submissions(workspace, landing, "food")
    assert [(s.file_name, s.status) for s in found] == [("waiting.csv", "waiting"), ("ours.csv", "received")]
    assert charity_submission(workspace, "food", ours) is not None
    assert charity_submission(workspace, "food", theirs) is None  # "food-bank-…" starts with "food-"
    assert charity_submission(workspace, "food", "../food-bank-bbbbbbbbbbbb") is None


def test_a_file_that_will_be_refused_is_listed_as_such_and_a_name_that_is_not_text_shows(workspace: Workspace) -> None:
    landing = LocalLandingZone(str(workspace.home))
    landing.create_area("food")
    (workspace.landing / "food" / "caf\udce9.csv").write_bytes(b"x")  # the Latin-1 byte 0xE9 (surrogateescape)
    (workspace.landing / "food" / "link.csv").symlink_to("/etc/passwd")
    found = sorted((s.file_name, s.status) for s in charity_submissions(workspace, landing, "food"))
    assert found == [("caf\ufffd.csv", "refused"), ("link.csv", "refused")]
    assert all(s.status_words for s in charity_submissions(workspace, landing, "food"))


@pytest.mark.parametrize(
    ("name", "file_format", "sent_as"),
    [
        ("contacts.tmp", "csv", "contacts.tmp.csv"),
        ("contacts.csv.crdownload", "csv", "contacts.csv.crdownload.csv"),
        ("~$contacts.xlsx", "xlsx", "contacts.xlsx"),
        (".contacts.csv", "csv", "contacts.csv"),
        ("contacts.csv", "csv", "contacts.csv"),
    ],
)
def test_a_temporary_looking_name_is_sent_under_one_the_landing_area_picks_up(
    workspace: Workspace, name: str, file_format: str, sent_as: str
) -> None:
    """Found by the attacker's trial: 'contacts.tmp' was thanked for and sent, then never picked up."""
    assert landing_name(name, file_format) == sent_as
    landing = LocalLandingZone(str(workspace.home))
    landing.create_area("food")
    (workspace.landing / "food" / sent_as).write_text("x")
    assert [obj.name for obj in landing.pending(["food"])] == [sent_as]


def test_a_submission_is_called_loaded_only_once_the_pipeline_has_stored_its_rows(workspace: Workspace) -> None:
    landing = LocalLandingZone(str(workspace.home))
    landing.create_area("food")
    report = {
        "file_name": "ours.csv",
        "checked_at": "2026-03-01T10:01:00Z",
        "status": "accepted_with_warnings",
        "rows_received": 2,
        "rows_accepted": 2,
        "rows_rejected": 0,
    }
    ours = _manifest(workspace, "food", "aaaaaaaaaaaa", "ours.csv", report)

    def seen() -> tuple[str, str]:
        [found] = charity_submissions(workspace, landing, "food")
        return found.status, found.status_words

    states = dict(submission_id=ours, charity_id="food", file_name="ours.csv")
    write_state(workspace, state="feedback_sent", status="accepted_with_warnings", **states)
    assert seen() == ("loading", "Accepted with warnings, being loaded")
    write_state(workspace, state="loaded", status="accepted_with_warnings", **states)
    assert seen() == ("loaded", "Accepted with warnings and loaded")
    write_state(workspace, state="failed", reference="E-1234", **states)
    assert seen() == ("failed", "Not processed: we are looking into it (reference E-1234)")


def test_the_mapping_form_saves_choices_by_position_and_refuses_what_is_not_on_the_list(tmp_path: Path) -> None:
    header = ["Client ID", "Visit Date", "Problem", "Post Code"]
    rows = [[r[0], r[1], ["Food parcel", "Sky high bills"][i % 2], r[3]] for i, r in enumerate(contact_rows(40))]
    path = write_csv(tmp_path / "own.csv", rows, header=header)
    current = CharityMapping(columns={"Old layout column": "support_type"})
    form = mapping_form(path, current)
    position = [c.header for c in form.columns].index("Problem")
    answers = {f"column-{i}": c.chosen or "" for i, c in enumerate(form.columns)} | {f"column-{position}": "need"}
    with pytest.raises(ValueError, match="Choose a code from the list"):
        mapping_from_answers(form, answers | {"value-0": "not-a-code"}, current)
    with pytest.raises(ValueError, match="always read as postcode"):
        mapping_from_answers(form, answers | {f"column-{header.index('Post Code')}": ""}, current)
    with pytest.raises(ValueError, match="both need"):
        mapping_from_answers(form, answers | {"column-0": "need"}, current)
    chosen = mapping_from_answers(form, answers | {"date_format": "%d/%m/%Y"}, current)
    assert chosen.columns == {"Old layout column": "support_type", "Problem": "need"}
    assert chosen.date_format == "%d/%m/%Y"
    again = mapping_form(path, chosen)  # once the column is known, its wording is offered for codes
    assert {v.wording for v in again.values} >= {"Sky high bills"}
    codes = {f"value-{i}": "food" for i, _ in enumerate(again.values)}
    answers = {f"column-{i}": c.chosen or "" for i, c in enumerate(again.columns)}
    saved = mapping_from_answers(again, answers | codes, chosen)
    assert saved.values["need"]["Sky high bills"] == "food"


def test_a_saved_sheet_the_workbook_no_longer_has_gives_way_to_the_sheet_of_its_contacts(tmp_path: Path) -> None:
    """A charity's trial (session 31): the form saved the sheet's name; next quarter's workbook, its sheet renamed,
    was refused, and the form, reading the saved sheet, could not be shown: no way out but a new account."""
    path = write_xlsx(tmp_path / "q4.xlsx", {"Notes": [["Exported by the casebook"]], "Q4": [HEADER, *contact_rows(8)]})
    current = CharityMapping(sheet="Q3", values={"need": {"Sky high bills": "fuel_energy"}})
    form = mapping_form(path, current)
    assert form.sheet == "Q4" and form.notices == [
        "Your saved choices read the sheet 'Q3', which this workbook does not have. The form reads the sheet 'Q4'; "
        "saving it reads that sheet from now on."
    ]
    answers = {f"column-{i}": c.chosen or "" for i, c in enumerate(form.columns)}
    saved = mapping_from_answers(form, answers, current)
    assert saved.sheet == "Q4" and saved.values == current.values
    assert check_extract(path, mapping=saved).report.rows_accepted == 8


def _report(rows_received: int, rows_rejected: int, quarters: list[str], warnings: int) -> dict:
    issues = []
    if warnings:
        issues.append(
            {
                "code": "W_INVALID_AMOUNT",
                "severity": "warning",
                "scope": "row",
                "title": "t",
                "fix": "f",
                "count": warnings,
                "share_of_rows": warnings / rows_received,
                "examples": [],
            }
        )
    return {
        "file_name": "f.csv",
        "checked_at": "2026-03-01T10:00:00Z",
        "status": "accepted_with_warnings" if issues or rows_rejected else "accepted",
        "rows_received": rows_received,
        "rows_accepted": rows_received - rows_rejected,
        "rows_rejected": rows_rejected,
        "quarters": quarters,
        "issues": issues,
    }


def test_each_accepted_report_says_how_it_compares_with_the_last_accepted_file(workspace: Workspace) -> None:
    landing = LocalLandingZone(str(workspace.home))
    landing.create_area("food")
    first = _manifest(workspace, "food", "aaaaaaaaaaaa", "q1.csv", _report(200, 0, ["2026Q1"], 0))
    manifest = workspace.staging / first / "manifest.json"
    manifest.write_text(manifest.read_text().replace("2026-03-01T10:00:00Z", "2026-02-01T10:00:00Z"))
    second = _manifest(workspace, "food", "cccccccccccc", "q2.csv", _report(400, 20, ["2026Q1", "2026Q2"], 8))
    everything = charity_submissions(workspace, landing, "food")
    assert [s.submission_id for s in everything] == [second, first]
    assert compared_with_last(everything, everything[1]) == "This is your first accepted file."
    assert compared_with_last(everything, everything[0]) == (
        "Compared with your last accepted file: 380 rows accepted (last time 200); quarters 2026Q1, 2026Q2 "
        "(last time 2026Q1); 2.0 warnings per 100 rows (last time 0.0)."
    )


def test_choices_saved_at_once_from_two_sessions_each_leave_a_whole_mapping(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Two portal sessions of one charity save their choices at the same moment: with one partial file for both, a
    save found it moved away by the other (FileNotFoundError); the mapping left is always one of them, whole."""
    import threading

    registry = Registry(workspace)
    registry.add("north-pantry", "North Pantry")
    sources = []
    for index in range(6):
        sources.append(tmp_path / f"choices-{index}.yaml")
        CharityMapping(columns={f"Column {index} {'x' * 4000}": "need"}).dump(sources[-1])
    failures: list[Exception] = []

    def save(source: Path) -> None:
        try:
            for _ in range(20):
                registry.set_mapping("north-pantry", source)
        except Exception as error:  # any failure of a save is what this test looks for
            failures.append(error)

    savers = [threading.Thread(target=save, args=(source,)) for source in sources]
    for saver in savers:
        saver.start()
    for saver in savers:
        saver.join()
    assert failures == []
    assert registry.mapping("north-pantry") in [CharityMapping.load(source) for source in sources]
