"""The DuckDB warehouse: pseudonymised contacts, submissions, releases and the privacy ledger.

Only ``privacy.minimise.WAREHOUSE_SCHEMA`` columns enter ``contacts``. Loads are atomic: a
submission's rows for a (charity, quarter) replace the earlier ones in one transaction, or nothing
changes. DuckDB admits one writing process at a time, so connecting waits politely for a lock
held by another run instead of failing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from privacy.minimise import WAREHOUSE_SCHEMA
from privacy.release import ensure_release_tables

_DUCKDB_TYPES = {pl.String: "VARCHAR", pl.Date: "DATE", pl.Int64: "BIGINT", pl.Float64: "DOUBLE"}

CONTACTS_DDL = "CREATE TABLE IF NOT EXISTS contacts (\n    {}\n)".format(
    ",\n    ".join(f"{name} {_DUCKDB_TYPES[type(dtype)]}" for name, dtype in WAREHOUSE_SCHEMA.items())
)

SUBMISSIONS_DDL = """
CREATE TABLE IF NOT EXISTS submissions (
    submission_id VARCHAR PRIMARY KEY,
    charity_id VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    received_at TIMESTAMP NOT NULL,
    loaded_at TIMESTAMP NOT NULL,
    rows_loaded BIGINT NOT NULL,
    rows_replaced BIGINT NOT NULL,
    quarters VARCHAR[] NOT NULL,
    standard_version VARCHAR NOT NULL
)
"""

AUDIT_DDL = """
CREATE TABLE IF NOT EXISTS audit_log (
    recorded_at TIMESTAMP NOT NULL,
    actor VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    subject VARCHAR NOT NULL,
    detail VARCHAR
)
"""


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for ddl in (CONTACTS_DDL, SUBMISSIONS_DDL, AUDIT_DDL):
        con.execute(ddl)
    ensure_release_tables(con)


@contextmanager
def connect(path: Path, *, read_only: bool = False, wait_seconds: float = 120.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse, waiting up to ``wait_seconds`` for another process's lock."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        if not read_only:
            ensure_schema(con)
        yield con
    finally:
        con.close()


@dataclass(frozen=True)
class LoadResult:
    rows_loaded: int
    rows_replaced: int
    quarters: list[str]


def load_submission(
    con: duckdb.DuckDBPyConnection,
    *,
    submission_id: str,
    charity_id: str,
    file_name: str,
    sha256: str,
    received_at: dt.datetime,
    rows: pl.DataFrame,
    standard_version: str,
) -> LoadResult:
    """Replace the charity's rows for every quarter in ``rows`` with ``rows``, atomically."""
    if list(rows.schema) != list(WAREHOUSE_SCHEMA):
        raise ValueError(f"rows do not have the warehouse schema: {list(rows.schema)}")
    quarters = sorted(rows.get_column("quarter").unique().to_list())
    con.begin()
    try:
        replaced = con.execute(
            "DELETE FROM contacts WHERE charity_id = $charity AND (quarter IN (SELECT unnest($quarters)) OR submission_id = $submission)",
            {"charity": charity_id, "quarters": quarters, "submission": submission_id},
        ).fetchall()[0][0]
        con.register("incoming", rows.to_arrow())
        con.execute("INSERT INTO contacts SELECT * FROM incoming")
        con.unregister("incoming")
        con.execute("DELETE FROM submissions WHERE submission_id = $s", {"s": submission_id})
        con.execute(
            "INSERT INTO submissions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                submission_id,
                charity_id,
                file_name,
                sha256,
                received_at.replace(tzinfo=None),
                dt.datetime.now(dt.UTC).replace(tzinfo=None),
                rows.height,
                replaced,
                quarters,
                standard_version,
            ],
        )
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return LoadResult(rows_loaded=rows.height, rows_replaced=int(replaced), quarters=quarters)


def quarter_end(period: str) -> dt.date:
    """The last day of a quarter such as ``2026Q1``."""
    year, quarter = int(period[:4]), int(period[-1])
    return dt.date(year + (quarter == 4), quarter * 3 % 12 + 1, 1) - dt.timedelta(days=1)


def unreleased_complete_quarters(con: duckdb.DuckDBPyConnection, today: dt.date | None = None) -> list[str]:
    """Quarters that have ended, hold data and have no release yet: what gets released next."""
    today = today or dt.date.today()
    rows = con.execute(
        "SELECT DISTINCT quarter FROM contacts WHERE quarter NOT IN (SELECT period FROM releases) ORDER BY quarter"
    ).fetchall()
    return [row[0] for row in rows if quarter_end(row[0]) < today]


def stale_quarters(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Released quarters that received data after their latest release (they need a revision)."""
    rows = con.execute(
        """
        SELECT DISTINCT r.period FROM releases r JOIN submissions s ON list_contains(s.quarters, r.period)
        WHERE r.revision = (SELECT max(revision) FROM releases WHERE period = r.period) AND s.loaded_at > r.created_at
        ORDER BY r.period
        """
    ).fetchall()
    return [row[0] for row in rows]


def audit(con: duckdb.DuckDBPyConnection, *, actor: str, action: str, subject: str, detail: str = "") -> None:
    con.execute(
        "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?)",
        [dt.datetime.now(dt.UTC).replace(tzinfo=None), actor, action, subject, detail],
    )
