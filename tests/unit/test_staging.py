"""Staging a checked file: the contacts written once the file is complete, and read back in batches."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from collab.staging import CONTACTS_FILE, STAGED_CONTACT_SCHEMA, StagingSink, staged_batches
from standards.check import CheckOptions, check_extract
from tests.conftest import HEADER, contact_rows, write_csv

KEY = b"staging-test-key-of-32-bytes-ok!"


@pytest.mark.parametrize("linkage_key", [None, KEY])
def test_staged_contacts_are_the_accepted_rows_and_read_back_in_batches(
    tmp_path: Path, linkage_key: bytes | None
) -> None:
    rows = [[*row, "Smith"] for row in contact_rows(23)]  # a surname: a linking charity's contacts are linked
    rows[4][2] = "Not a need"  # rejected: quarantined, not staged
    path = write_csv(tmp_path / "contacts.csv", rows, header=[*HEADER, "Surname"])
    staging, quarantine = tmp_path / "staging", tmp_path / "quarantine"
    with StagingSink(staging, quarantine, linkage_key=linkage_key) as sink:
        report = check_extract(path, sink=sink, options=CheckOptions(batch_size=5)).report
    assert (report.rows_accepted, report.rows_rejected) == (22, 1)
    assert sorted(p.name for p in staging.iterdir()) == (
        [CONTACTS_FILE, "linkage_units.parquet"] if linkage_key else [CONTACTS_FILE]
    )
    assert "linkage_basis" not in pl.read_parquet_schema(staging / CONTACTS_FILE)
    [staged] = staged_batches(staging / CONTACTS_FILE, 100)
    assert staged.schema == pl.Schema(STAGED_CONTACT_SCHEMA)
    assert staged.get_column("source_row").to_list() == [n for n in range(2, 25) if n != 6]
    assert staged.get_column("linked").to_list() == [linkage_key is not None] * 22
    batches = list(staged_batches(staging / CONTACTS_FILE, 8))
    assert [batch.height for batch in batches] == [8, 8, 6]
    assert pl.concat(batches).equals(staged)


def test_nothing_staged_reads_as_no_batches(tmp_path: Path) -> None:
    assert list(staged_batches(tmp_path / CONTACTS_FILE, 8)) == []
