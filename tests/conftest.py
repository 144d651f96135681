"""Shared fixtures: a fresh workspace per test, and small extracts written the way charities write them."""

from __future__ import annotations

import csv
import datetime as dt
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest
import xlsxwriter

from collab.workspace import Workspace
from collab_demo.generator import write_sheet
from standards.validation import RowOutcome


def latest_ended_quarter(today: dt.date | None = None) -> tuple[str, dt.date]:
    """The last quarter that has ended, and its first day. Tests that release date their rows in it and
    report from it, so the calendar gives them one release to make whatever the date they run on."""
    today = today or dt.date.today()
    this_quarter = dt.date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    previous = this_quarter - dt.timedelta(days=1)
    start = dt.date(previous.year, 3 * ((previous.month - 1) // 3) + 1, 1)
    return f"{start.year}Q{(start.month - 1) // 3 + 1}", start


HEADER = ["Client ID", "Visit Date", "Reason for referral", "Post Code", "D.O.B", "Monthly Income"]


def contact_rows(count: int, *, start: dt.date = dt.date(2026, 1, 5), prefix: str = "P") -> list[list[str]]:
    """Valid rows in a food bank's own format (day-first dates, labels, full postcodes)."""
    needs = ["Food", "Fuel", "Debt advice", "Housing", "Benefits"]
    postcodes = ["B15 2TT", "S1 2AB", "LS1 4AP", "NE1 7RU", "CF10 3AT", "G2 1DY"]
    return [
        [
            f"{prefix}{i:04d}",
            (start + dt.timedelta(days=i % 80)).strftime("%d/%m/%Y"),
            needs[i % len(needs)],
            postcodes[i % len(postcodes)],
            f"{1 + i % 28:02d}/0{1 + i % 9}/19{60 + i % 40}",
            f"£{900 + i:,}.00",
        ]
        for i in range(count)
    ]


def write_csv(
    path: Path, rows: list[list[str]], header: list[str] = HEADER, encoding: str = "utf-8", delimiter: str = ","
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    """A workbook with one sheet per entry; dates are written as real Excel dates."""
    workbook = xlsxwriter.Workbook(str(path))
    for name, rows in sheets.items():
        write_sheet(workbook, name, rows)
    workbook.close()
    return path


class CollectingSink:
    """A ``ContactSink`` that keeps what a check sends it, for tests to look at."""

    def __init__(self) -> None:
        self.frames: list[pl.DataFrame] = []
        self.rejected_rows: list[RowOutcome] = []

    def accepted(self, contacts: pl.DataFrame) -> None:
        self.frames.append(contacts)

    def rejected(self, rows: list[RowOutcome]) -> None:
        self.rejected_rows.extend(rows)

    def contacts(self) -> pl.DataFrame:
        return pl.concat(self.frames) if self.frames else pl.DataFrame()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """An initialised, empty workspace that COLLAB_HOME and DAGSTER_HOME point at."""
    ws = Workspace(tmp_path / "var")
    ws.init()
    for name, value in ws.environment().items():
        monkeypatch.setenv(name, value)
    yield ws


# Slowest kinds first: pytest-xdist hands out test modules in collection order, so the long system
# tests start at once and the many short unit tests fill both workers at the end.
SUITE_ORDER = {"system": 0, "pipeline": 1, "unit": 2}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: SUITE_ORDER.get(item.path.parent.name, len(SUITE_ORDER)))


def workbook_edited(source: Path, target: Path, part: str, change: Callable[[bytes], bytes]) -> Path:
    """``source`` with its ``part`` changed by ``change``, as an attacker, or a program other than Excel, would."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as edited:
        for member in original.infolist():
            data = original.read(member.filename)
            edited.writestr(member, change(data) if member.filename == part else data)
    return target
