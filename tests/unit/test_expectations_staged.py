"""The Great Expectations suite reads staged contacts straight from their file (codes as the file's dictionaries,
dates as timestamps) and finds what it finds in the same contacts handed over from Polars."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from collab import expectations
from collab.expectations import ExpectationRun
from collab.staging import CONTACTS_FILE, StagingSink
from standards.check import check_extract
from standards.extract import FIELDS
from tests.conftest import CollectingSink, contact_rows, write_csv


def test_staged_contacts_read_from_their_file_meet_the_suite_as_from_polars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    collected = CollectingSink()
    assert check_extract(write_csv(tmp_path / "contacts.csv", contact_rows(30)), sink=collected).report.accepted
    contacts = pl.concat(collected.frames)
    bad = contacts.with_columns(
        pl.when(pl.col("source_row") == 2).then(pl.lit("not_a_need")).otherwise(pl.col("need")).alias("need"),
        pl.when(pl.col("source_row") == 3)
        .then(dt.date.today() + dt.timedelta(days=1))
        .otherwise(pl.col("contact_date"))
        .alias("contact_date"),
        pl.when(pl.col("source_row") == 4)
        .then(pl.lit("E99999999"))
        .otherwise(pl.col("local_authority_code"))
        .alias("local_authority_code"),
        # An NI number (any case) or an e-mail address as a reference: one rule, one pattern of the two shapes.
        pl.when(pl.col("source_row") == 5)
        .then(pl.lit("QQ 12 34 56 C"))
        .when(pl.col("source_row") == 6)
        .then(pl.lit("qq123456c"))
        .when(pl.col("source_row") == 7)
        .then(pl.lit("ref someone@example.org"))
        .otherwise(pl.col("person_ref"))
        .alias("person_ref"),
    )
    with StagingSink(tmp_path / "staging", tmp_path / "quarantine") as sink:
        for offset in range(0, bad.height, 8):  # a row group per batch, as a check writes them
            sink.accepted(bad.slice(offset, 8))
    monkeypatch.setattr(expectations, "EXPECTATION_BATCH_ROWS", 12)  # batches of whole row groups: 8, 8, 8, 6

    from_file = ExpectationRun()
    from_file.validate_staged(tmp_path / "staging" / CONTACTS_FILE)
    from_polars = ExpectationRun()
    from_polars.validate(bad, [name for name in bad.columns if name in FIELDS])

    assert len(from_file.raw_results) == 4
    assert from_file.outcomes == from_polars.outcomes
    failed = {o.rule: o.unexpected_count for o in from_file.outcomes.values() if not o.success}
    assert failed == {
        "need is a code of the need codelist": 1,
        "contact_date is between 01/01/2000 and today": 1,
        "local_authority_code is a UK local authority (LAD 2025)": 1,
        "person_ref is not shaped like a National Insurance number or an email address": 3,
    }


def test_nothing_staged_is_nothing_validated(tmp_path: Path) -> None:
    run = ExpectationRun()
    run.validate_staged(tmp_path / CONTACTS_FILE)
    assert run.outcomes == {} and run.raw_results == []
