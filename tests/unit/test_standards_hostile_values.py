"""Values that stopped a whole file with an internal error, found by fuzzing the check (2 December 2026): each now
gets the clear code any other bad value of its kind gets, and the rest of the file is judged as usual."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from standards.check import check_extract

HEADER = "Client ID,Visit Date,Reason for referral,Post Code,D.O.B,Monthly Income,Household"
ROWS = [
    "NFB-0001,13/01/2026,Food,B15 2TT,14/03/1961,£980.50,Single parent",
    "NFB-0002,14/01/2026,Fuel,S1 2AB,23/07/1985,£980.50,Single adult",
    "NFB-0003,15/01/2026,Debt advice,LS1 4AP,30/11/1972,£640.00,Couple with children",
    "NFB-0004,21/01/2026,Housing,NE1 7RU,17/05/1990,£640.00,Single adult",
    "NFB-0005,22/01/2026,Benefits,CF10 3AT,25/09/1958,£870.25,Couple without children",
    "NFB-0006,27/01/2026,Food,G2 1DY,13/02/2001,£450.00,Lone parent",
]


def _csv(tmp_path: Path, row: int, column: int, value: str) -> Path:
    rows = [line.split(",") for line in ROWS]
    rows[row][column] = value
    path = tmp_path / "contacts.csv"
    path.write_text("\n".join([HEADER, *(",".join(r) for r in rows)]) + "\n", encoding="utf-8")
    return path


def _codes(path: Path) -> set[str]:
    """The codes the check of ``path`` reports; it must neither raise nor fail inside."""
    result = check_extract(path)
    assert result.internal_error is None, repr(result.internal_error)
    return {group.code for group in result.report.issues}


@pytest.mark.parametrize("value", ["-2026-01-13", "01/01/0000", "+10000-01-01", "01/01/+10000"])
@pytest.mark.parametrize("column", [1, 4])  # Visit Date, D.O.B
def test_date_outside_python_range_is_not_an_internal_error(tmp_path: Path, column: int, value: str) -> None:
    """chrono reads signed and five-digit years (year 0, -2026, +10000); Python's date cannot hold them and
    ``validate_rows``' ``to_list()`` raised ValueError ('year -2026 is out of range')."""
    if column == 4 and value.startswith(("+", "01/01/+")):
        value = "+12026/01/13"  # a birth date after today is moved back 100 years, so only a far year stays out
    # A contact date is required: its row is rejected. A birth date is not: it is dropped with a warning.
    assert _codes(_csv(tmp_path, 2, column, value)) == ({"E_INVALID_DATE"} if column == 1 else {"W_INVALID_DATE"})


@pytest.mark.parametrize("zero", [0x11F50, 0x1E4F0, 0x10D40, 0x1CCF0])  # Kawi, Nag Mundari, Garay, Outlined
@pytest.mark.parametrize("column", [0, 2])  # the person reference, a coded column
def test_digits_newer_than_pythons_unicode_are_not_an_internal_error(tmp_path: Path, zero: int, column: int) -> None:
    """Polars' ``\\d`` knows Unicode 16's digits, Python 3.11's ``int()`` only Unicode 14's: ten Kawi digits have
    an NHS number's shape, and ``_nhs_check_digit_ok`` raised ValueError on them."""
    value = "".join(chr(zero + int(c)) for c in "9434765919")
    # Not an NHS number to Python (as a single value is judged), so a reference like any other; not a code either.
    assert _codes(_csv(tmp_path, 2, column, value)) == (set() if column == 0 else {"E_UNKNOWN_CODE"})


def _parquet(tmp_path: Path, column: str, array: pa.Array) -> Path:
    rows = [line.split(",") for line in ROWS]
    table = {name: pa.array([r[i] for r in rows]) for i, name in enumerate(HEADER.split(","))}
    table[column] = array
    path = tmp_path / "contacts.parquet"
    pq.write_table(pa.table(table), path)
    return path


@pytest.mark.parametrize(
    "array",
    [
        pa.array([dt.timedelta(days=3)] * len(ROWS), pa.duration("us")),
        pa.array([["a"]] * len(ROWS)),
        pa.array([b"\xff\xfe"] * len(ROWS), pa.binary()),
    ],
    ids=["duration", "list", "binary-not-utf8"],
)
def test_parquet_column_that_cannot_be_text_is_not_an_internal_error(tmp_path: Path, array: pa.Array) -> None:
    """``ExtractSource.batches`` casts every Parquet column to String strictly: a Duration, List or Map column
    raises InvalidOperationError, a Binary one that is not UTF-8 ComputeError."""
    result = check_extract(_parquet(tmp_path, "Reason for referral", array))
    assert result.internal_error is None and result.report.status == "rejected"
    (issue,) = result.report.issues
    assert issue.code == "E_UNREADABLE_FILE" and "'Reason for referral'" in issue.examples[0].message


def test_a_parquet_column_that_cannot_be_text_and_is_not_used_costs_nothing(tmp_path: Path) -> None:
    """Found by the attacker's trial: a list column the standard never reads rejected the whole file."""
    path = _parquet(tmp_path, "Reason for referral", pa.array(["Food"] * len(ROWS)))
    table = pq.read_table(path).append_column("Tags", pa.array([["x", "y"]] * len(ROWS)))
    pq.write_table(table, path)
    report = check_extract(path).report
    assert report.status != "rejected" and report.rows_accepted == len(ROWS)
    assert "Tags" in report.file.columns_not_used  # type: ignore[union-attr]


def test_parquet_date_beyond_chronos_range_does_not_escape(tmp_path: Path) -> None:
    """A date32 of 2**30 days: Polars' cast to String panics; pyo3's PanicException is a BaseException, so it
    passes ``except Exception`` in ``check_extract`` and the check raises instead of returning a report."""
    days = pa.array([0] * (len(ROWS) - 1) + [2**30], pa.date32())
    assert _codes(_parquet(tmp_path, "Visit Date", days)) == {"E_UNREADABLE_FILE"}
