"""`collab check --rejected-rows FILE` writes every rejected row with its reasons, formula-escaped, and
`--html` lists every row with a problem, in pages, not only the first examples."""

import csv
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from collab.portal.app import _templates
from standards.cli import checker
from standards.rows import AffectedRow
from tests.conftest import HEADER, contact_rows, write_csv


def test_every_rejected_and_affected_row_is_written(tmp_path: Path) -> None:
    rows = contact_rows(1_100)
    for i in range(0, 600):
        rows[i][5] = "about £900"  # an income that is no amount: a warning, the row is kept
    for i in (10, 700, 1_099):
        rows[i][1] = "=cmd|' /C calc'!A0"  # no date, and what a spreadsheet would run
    path = write_csv(tmp_path / "extract.csv", rows)
    rejected, html = tmp_path / "rejected.csv", tmp_path / "report.html"
    result = CliRunner().invoke(checker, [str(path), "--rejected-rows", str(rejected), "--html", str(html)])
    assert result.exit_code == 0, result.output
    assert "Rejected rows, with their reasons" in result.output
    written = list(csv.reader(rejected.open(encoding="utf-8")))
    assert written[0][:3] == ["row", "issue_codes", "messages"]
    assert [r[0] for r in written[1:]] == ["12", "702", "1101"]  # the spreadsheet's row numbers
    assert all("E_INVALID_DATE" in r[1].split() and r[4].startswith("'=cmd") for r in written[1:])
    page = html.read_text(encoding="utf-8")
    listed = re.findall(r"<tr><td>(\d+)</td><td>(No|Yes, with a warning)</td>", page)
    assert len(listed) == 602 and ("12", "No") in listed and ("601", "Yes, with a warning") in listed
    assert page.count("<details") == 2 and "Rows with a problem 501 to 602" in page


def test_rejected_rows_file_has_headers_when_no_row_is_rejected(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "extract.csv", contact_rows(20))
    rejected = tmp_path / "rejected.csv"
    assert CliRunner().invoke(checker, [str(path), "--rejected-rows", str(rejected)]).exit_code == 0
    assert rejected.read_text(encoding="utf-8") == "row,issue_codes,messages\n"


def test_full_width_formula_marks_are_escaped_too() -> None:
    from standards.rows import spreadsheet_safe

    for typed in ("=1+1", "+1", "-1", "@SUM(A1)", "\uff1d1+1", "\uff0b1", "\uff0d1", "\uff20SUM(A1)"):
        assert spreadsheet_safe(typed) == "'" + typed
    assert spreadsheet_safe("1=1") == "1=1"


def test_what_a_file_names_reaches_the_terminal_shown_not_acted_on(tmp_path: Path) -> None:
    """A hostile trial (session 31): a column named with escape sequences set the analyst's terminal title and
    cleared the screen, through `collab-check`, `collab run` and `collab submissions` (one console prints them
    all), and a right-to-left override reordered a file name."""
    header = [*HEADER, "\x1b]0;PWNED\x1b[2J\x1b[31mNotes\u202e"]
    path = write_csv(tmp_path / "evil\u202excsl.csv", [[*row, "x"] for row in contact_rows(100)], header)
    result = CliRunner().invoke(checker, [str(path)])
    assert "PWNED" in result.output and "Notes" in result.output
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", result.output)
    assert "\ufffd]0;PWNED\ufffd[2J" in result.output


@pytest.mark.parametrize("option", ["--html", "--rejected-rows"])
def test_a_report_that_cannot_be_written_is_a_usage_error_before_the_check(tmp_path: Path, option: str) -> None:
    """Found by the session-31 attacker's trial: a folder, or a file in a folder that does not exist, ran the whole
    check and then ended in a traceback."""
    path = write_csv(tmp_path / "contacts.csv", contact_rows(5))
    for target, said in ((tmp_path, "is a folder"), (tmp_path / "none" / "out", "does not exist")):
        result = CliRunner().invoke(checker, [str(path), option, str(target)])
        said_plainly = " ".join(result.output.split())  # the console wraps lines
        assert result.exit_code == 2 and said in said_plainly and "Traceback" not in result.output
        assert not isinstance(result.exception, OSError)


def test_text_from_a_file_is_printed_without_highlighting(tmp_path: Path) -> None:
    """Found by the attacker's trial: rich's highlighting searches what it prints with regular expressions that
    backtrack, and "Columns found: ..." listing 60 headers of 1,023 '<' took `collab-check` 130 s to print (a header
    of digits and dashes, 30 s)."""
    header = ["Client ID", *("<" * 1_023 + "a" for _ in range(60)), "1" * 511 + "-" + "1" * 510 + "9x"]
    path = write_csv(tmp_path / "odd-headers.csv", [["P1", *["x"] * 61]], header)
    result = CliRunner().invoke(checker, [str(path)])
    assert result.exit_code == 1 and "E_MISSING_COLUMN" in result.output
    assert "\x1b[" not in result.output


def test_no_row_of_a_rejected_file_is_said_to_be_kept(tmp_path: Path) -> None:
    """The volunteer trial: in a file "Not accepted", a row with a warning only was "Kept? Yes, with a warning"."""
    rows = contact_rows(6)
    rows[0][5] = "about £900"  # a warning only
    for row in rows[1:4]:
        row[1] = ""  # half the file without a date: rejected
    html = tmp_path / "report.html"
    result = CliRunner().invoke(checker, [str(write_csv(tmp_path / "extract.csv", rows)), "--html", str(html)])
    assert result.exit_code == 1, result.output
    listed = dict(re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td><td class=\"value\">", html.read_text("utf-8")))
    assert listed == {
        "2": "No: the file was not accepted (this row alone would be kept, with a warning)",
        "3": "No",
        "4": "No",
        "5": "No",
    }


def test_the_portals_check_page_says_whether_a_row_is_kept_as_the_report_does() -> None:
    row = AffectedRow(row=2, accepted=True, codes=["W_INVALID_AMOUNT"], messages=[""])
    kept = _templates().from_string('{% from "_kept.html.j2" import kept %}{{ kept(row, report) }}')
    rejected, accepted = SimpleNamespace(accepted=False), SimpleNamespace(accepted=True)
    assert kept.render(row=row, report=rejected).startswith("No: the file was not accepted")
    assert kept.render(row=row, report=accepted) == "Yes, with a warning"
