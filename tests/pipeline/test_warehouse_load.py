"""Streaming loads: many batches, one transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import polars as pl
import pytest

from collab.warehouse import connect, load_submission
from collab.workspace import Workspace
from privacy.minimise import minimise
from standards import STANDARD_VERSION
from standards.extract import STANDARD_CONTACT_SCHEMA


def contacts(count: int, quarter: str, start: int = 0) -> pl.DataFrame:
    first_day = {"2026Q1": dt.date(2026, 1, 5), "2026Q2": dt.date(2026, 4, 5)}[quarter]
    row: dict[str, object] = dict.fromkeys(STANDARD_CONTACT_SCHEMA)
    rows = [
        {
            **row,
            "source_row": i + 2,
            "person_ref": f"P{start + i}",
            "contact_date": first_day,
            "quarter": quarter,
            "need": "food",
            "local_authority_code": "E08000025",
        }
        for i in range(count)
    ]
    return pl.DataFrame(rows, schema=STANDARD_CONTACT_SCHEMA)


def batches(workspace: Workspace, submission_id: str, *frames: pl.DataFrame) -> Iterator[pl.DataFrame]:
    for frame in frames:
        yield minimise(
            frame,
            key=workspace.key(),
            charity_id="pantry",
            submission_id=submission_id,
            standard_version=STANDARD_VERSION,
        )


def load(workspace: Workspace, submission_id: str, frames: object) -> object:
    with connect(workspace.warehouse_path) as con:
        return load_submission(
            con,
            submission_id=submission_id,
            charity_id="pantry",
            file_name=f"{submission_id}.csv",
            sha256="0" * 64,
            received_at=dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
            batches=frames,  # type: ignore[arg-type]
            standard_version=STANDARD_VERSION,
        )


def counts(workspace: Workspace) -> dict[str, int]:
    with connect(workspace.warehouse_path) as con:
        return dict(con.execute("SELECT submission_id, count(*) FROM contacts GROUP BY ALL").fetchall())


def test_batches_replace_the_charitys_quarters_in_one_load(workspace: Workspace) -> None:
    load(workspace, "first", batches(workspace, "first", contacts(30, "2026Q1"), contacts(20, "2026Q2")))
    result = load(workspace, "second", batches(workspace, "second", contacts(5, "2026Q1"), contacts(7, "2026Q1", 5)))
    assert result.rows_loaded == 12 and result.rows_replaced == 30 and result.quarters == ["2026Q1"]
    assert counts(workspace) == {"first": 20, "second": 12}  # 2026Q2 of the first file stays


def test_a_failing_batch_leaves_the_warehouse_as_it_was(workspace: Workspace) -> None:
    load(workspace, "first", batches(workspace, "first", contacts(30, "2026Q1")))

    def failing() -> Iterator[pl.DataFrame]:
        yield from batches(workspace, "second", contacts(10, "2026Q1"))
        raise OSError("the staged file could not be read")

    with pytest.raises(OSError):
        load(workspace, "second", failing())
    assert counts(workspace) == {"first": 30}
    with connect(workspace.warehouse_path) as con:
        assert con.execute("SELECT submission_id FROM submissions").fetchall() == [("first",)]
