"""Loads: a submission's minimised contacts file, one transaction."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl
import pytest

from collab import warehouse
from collab.linkage import LinkagePolicy
from collab.warehouse import LoadResult, connect, load_submission
from collab.workspace import Workspace
from privacy.linkage import DEFAULT_THRESHOLD
from privacy.minimise import LINKAGE_UNIT_SCHEMA, minimise
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


def minimised(workspace: Workspace, submission_id: str, *frames: pl.DataFrame) -> Path:
    """The frames as the load reads them: minimised, in one Parquet file."""
    path = workspace.home / f"{submission_id}.minimised.parquet"
    rows = [
        minimise(
            frame,
            key=workspace.key(),
            charity_id="pantry",
            submission_id=submission_id,
            standard_version=STANDARD_VERSION,
        )
        for frame in frames
    ]
    pl.concat(rows).write_parquet(path)
    return path


def load(workspace: Workspace, submission_id: str, contacts_file: Path, **linking: object) -> LoadResult:
    with connect(workspace.warehouse_path) as con:
        return load_submission(
            con,
            submission_id=submission_id,
            charity_id="pantry",
            file_name=f"{submission_id}.csv",
            sha256="0" * 64,
            received_at=dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
            contacts=contacts_file,
            standard_version=STANDARD_VERSION,
            **linking,  # type: ignore[arg-type]
        )


def counts(workspace: Workspace) -> dict[str, int]:
    with connect(workspace.warehouse_path) as con:
        return dict(con.execute("SELECT submission_id, count(*) FROM contacts GROUP BY ALL").fetchall())


def submissions(workspace: Workspace) -> list[tuple[str]]:
    with connect(workspace.warehouse_path) as con:
        return con.execute("SELECT submission_id FROM submissions ORDER BY 1").fetchall()


def test_a_load_replaces_the_charitys_quarters_it_covers(workspace: Workspace) -> None:
    load(workspace, "first", minimised(workspace, "first", contacts(30, "2026Q1"), contacts(20, "2026Q2")))
    result = load(workspace, "second", minimised(workspace, "second", contacts(5, "2026Q1"), contacts(7, "2026Q1", 5)))
    assert result.rows_loaded == 12 and result.rows_replaced == 30 and result.quarters == ["2026Q1"]
    assert counts(workspace) == {"first": 20, "second": 12}  # 2026Q2 of the first file stays


def test_a_load_failing_after_its_rows_are_inserted_leaves_the_warehouse_as_it_was(workspace: Workspace) -> None:
    load(workspace, "first", minimised(workspace, "first", contacts(30, "2026Q1")))
    # Units that break the one-record-per-unit rule fail the load after its contacts went in, in its transaction.
    twice = pl.DataFrame(
        [dict.fromkeys(LINKAGE_UNIT_SCHEMA, None) | {"unit_key": 1, "charity_id": "pantry", "submission_id": "second"}]
        * 2,
        schema=LINKAGE_UNIT_SCHEMA,
    )
    policy = LinkagePolicy(linking=("pantry",), threshold=DEFAULT_THRESHOLD)
    with pytest.raises(ValueError, match="their own unit_key"):
        load(workspace, "second", minimised(workspace, "second", contacts(10, "2026Q1")), units=twice, linkage=policy)
    assert counts(workspace) == {"first": 30}
    assert submissions(workspace) == [("first",)]


@pytest.mark.parametrize("fault", ["another submission's rows", "a column missing", "no file"])
def test_a_contacts_file_the_load_cannot_take_is_refused_and_nothing_changes(workspace: Workspace, fault: str) -> None:
    load(workspace, "first", minimised(workspace, "first", contacts(30, "2026Q1")))
    path = minimised(workspace, "second", contacts(10, "2026Q1"))
    if fault == "another submission's rows":
        pl.read_parquet(path).with_columns(pl.lit("third").alias("submission_id")).write_parquet(path)
    elif fault == "a column missing":
        pl.read_parquet(path).drop("need").write_parquet(path)
    else:
        path.unlink()
    with pytest.raises((ValueError, duckdb.IOException)):
        load(workspace, "second", path)
    assert counts(workspace) == {"first": 30}
    assert submissions(workspace) == [("first",)]


def test_a_load_larger_than_its_memory_limit_is_written_as_it_comes(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = 900_000
    one = pl.read_parquet(minimised(workspace, "large", contacts(1, "2026Q1")))
    large = one.select(pl.all().repeat_by(rows).explode()).with_columns(
        pl.int_range(rows, dtype=pl.Int64).alias("person_key")
    )
    assert large.estimated_size() > 2 * 40e6  # held whole, the rows would need twice the limit
    path = workspace.home / "large.parquet"
    large.write_parquet(path, row_group_size=100_000)
    monkeypatch.setattr(warehouse, "LOAD_MEMORY_LIMIT", "40MB")
    assert load(workspace, "large", path).rows_loaded == rows
    assert counts(workspace) == {"large": rows}


class _CommitInterrupted:
    """A connection whose commit takes effect and then reports a Ctrl-C, as DuckDB's did once in a hostile trial."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def __getattr__(self, name: str) -> object:
        return getattr(self._con, name)

    def commit(self) -> None:
        self._con.commit()
        raise RuntimeError("Query interrupted")


def test_a_load_whose_commit_is_interrupted_says_so_and_is_not_rolled_back_after_it(workspace: Workspace) -> None:
    """A Ctrl-C during a load's commit: the error is the interrupt (which the runner leaves for the next run, whose load
    of the same submission replaces these rows), not the failed rollback that once hid it and failed the file though
    its rows were in."""
    path = minimised(workspace, "first", contacts(30, "2026Q1"))
    with connect(workspace.warehouse_path) as con, pytest.raises(RuntimeError, match="Query interrupted"):
        load_submission(
            _CommitInterrupted(con),  # type: ignore[arg-type]
            submission_id="first",
            charity_id="pantry",
            file_name="first.csv",
            sha256="0" * 64,
            received_at=dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
            contacts=path,
            standard_version=STANDARD_VERSION,
        )
    assert counts(workspace) == {"first": 30}
    assert load(workspace, "first", path).rows_replaced == 30 and counts(workspace) == {"first": 30}
