"""The DuckDB warehouse: pseudonymised contacts, submissions, releases and the privacy ledger.

Only ``privacy.minimise.WAREHOUSE_SCHEMA`` columns enter ``contacts``. Loads stream batch by batch
and are atomic: a submission's rows for a (charity, quarter) replace the earlier ones in one
transaction, or nothing changes. DuckDB admits one writing process at a time, so connecting waits politely for a lock
held by another run instead of failing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from collab.faults import crash_point
from collab.linkage import LinkagePolicy, RelinkResult, StoredUnits, relink, store_units
from collab.schema import migrate, with_codes_of_hex
from privacy.accountant import last_spent_order
from privacy.clustering import SplinkMemory
from privacy.minimise import LINKAGE_UNIT_SCHEMA, WAREHOUSE_SCHEMA

# DuckDB's memory while a load moves its rows; beyond it, DuckDB spills to disk.
LOAD_MEMORY_LIMIT = "128MB"
# The linkage step's (the units awaiting linking and those sharing a blocking key with them, keyed variant lists
# and all), on top of the contacts the transaction holds uncommitted: at 128 MB, 3 of the 35 loads of
# `bench.scale --contacts 1000000` ran out of memory there.
LINK_MEMORY_LIMIT = "512MB"
# A release's, bounding every indicator of a quarter: DuckDB's default (80% of the machine) let one quarter of a
# 10M-contact warehouse (2.56M contacts) reach 1,809 MB of resident memory, in 16.3 s; at 1 GB, 1,238 MB in 17.1 s
# (bounding from one copy of the quarter's rows, ``privacy.bounding.hold_period``); at 512 MB, 741 MB and
# 27.0 s (without that copy, against 22.6 s at 1 GB).
RELEASE_MEMORY_LIMIT = "1GB"


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
        # No progress bar: DuckDB would draw one on the run's output for any statement of a few seconds.
        con.execute("SET enable_progress_bar = false")
        if not read_only:
            path.chmod(0o600)  # pseudonymised, not anonymous: the pipeline's user only (DuckDB makes it 0644)
            migrate(con)
        yield con
    finally:
        con.close()


@dataclass(frozen=True)
class QuarterReplaced:
    """A quarter a load covers where its charity had rows of other submissions: how many, and how many it has now."""

    quarter: str
    rows_before: int
    rows_now: int


@dataclass(frozen=True)
class LoadResult:
    rows_loaded: int
    rows_replaced: int
    quarters: list[str]
    units: StoredUnits | None = None
    quarters_replaced: list[QuarterReplaced] = field(default_factory=list)
    # Quarters the file covers that a file of its charity received after it already holds: not loaded from it.
    quarters_superseded: list[str] = field(default_factory=list)


def load_submission(
    con: duckdb.DuckDBPyConnection,
    *,
    submission_id: str,
    charity_id: str,
    file_name: str,
    sha256: str,
    received_at: dt.datetime,
    contacts: Path,
    standard_version: str,
    units: pl.DataFrame | Path | None = None,
    linkage: LinkagePolicy | None = None,
) -> LoadResult:
    """Load a submission's minimised ``contacts`` (a Parquet file of ``WAREHOUSE_SCHEMA`` rows, all of this
    submission: ``collab.staging.minimise_staged_contacts``), replacing the charity's rows for every quarter
    it covers, atomically.

    DuckDB reads the file in one statement inside the load's transaction, under a bounded memory limit: the
    rows of a large insert are written to the database file as they come (whole row groups, before the
    commit), so memory stays flat whatever the file's size, and ``contacts`` changes all at once or not at all.

    With a ``linkage`` policy, the same transaction stores the submission's linkage ``units`` (rows, or a
    Parquet file of them; None if it gives no reference an identity) and removes the units of the references
    its contacts carry but its units do not describe (``collab.linkage.store_units``). The units it stores or
    removes, and the rest of their clusters, await linking: ``link_units`` brings the clusters up to date before a
    release reads them, once for every load since the last.
    """
    con.execute("SET memory_limit = $limit", {"limit": LOAD_MEMORY_LIMIT})
    # The file's order is kept (DuckDB's default), although no reader needs it: inserted out of order, a load's rows
    # were written as partial row groups that closing the connection then merged, a checkpoint as long as the insert
    # (0.5 s for 300,000 contacts, 15 s over the 35 loads of 10M contacts). The intake of `bench.scale --contacts
    # 10000000` took 136.2 s (248.4 CPU s) in order, 154.1 s (284.1 CPU s) out of it; 1M, about 1.5 s less of 35 s
    # (quiet machine, DuckDB 2.0.0, 2026-12-03).
    try:
        incoming = with_codes_of_hex(con.read_parquet(str(contacts)), ("person_key",))
        if incoming.columns != list(WAREHOUSE_SCHEMA):
            raise ValueError(f"rows do not have the warehouse schema: {incoming.columns}")
        covered = {row[0] for row in incoming.select("quarter").distinct().fetchall()}
        superseded = [q for q in _later_quarters(con, charity_id, submission_id, received_at) if q in covered]
        if superseded:
            incoming = incoming.filter(
                duckdb.ColumnExpression("quarter").isnotin(*(duckdb.ConstantExpression(q) for q in superseded))
            )
        con.register("incoming_contacts", incoming)
        others = con.execute(
            "SELECT count(*) FROM incoming_contacts WHERE submission_id IS DISTINCT FROM $s", {"s": submission_id}
        ).fetchall()[0][0]
        if others:
            raise ValueError(f"rows of another submission were given to {submission_id}")
        crash_point("mid-load")
        con.begin()
        try:
            quarters_replaced = [
                QuarterReplaced(quarter, before, now)
                for quarter, before, now in con.execute(
                    """
                    SELECT quarter, count(*), any_value(i.rows_now) FROM contacts JOIN (
                        SELECT quarter, count(*) AS rows_now FROM incoming_contacts GROUP BY quarter
                    ) i USING (quarter)
                    WHERE charity_id = $charity AND submission_id <> $submission GROUP BY quarter ORDER BY quarter
                    """,
                    {"charity": charity_id, "submission": submission_id},
                ).fetchall()
            ]
            replaced = _replace(con, submission_id, charity_id)
            loaded = con.execute("INSERT INTO contacts BY NAME SELECT * FROM incoming_contacts").fetchall()[0][0]
            stored = None
            if linkage is not None:
                con.execute("SET memory_limit = $limit", {"limit": LINK_MEMORY_LIMIT})
                # A submission that gives none of its references an identity has no units, yet still
                # withdraws the units of those it carries.
                stored = store_units(
                    con,
                    units if units is not None else pl.DataFrame(schema=LINKAGE_UNIT_SCHEMA),
                    carried="SELECT person_key FROM incoming_contacts",
                )
            quarters = [
                row[0]
                for row in con.execute(
                    "SELECT DISTINCT quarter FROM contacts WHERE submission_id = $s ORDER BY quarter",
                    {"s": submission_id},
                ).fetchall()
            ]
            con.execute("DELETE FROM submissions WHERE submission_id = $s", {"s": submission_id})
            con.execute(
                "INSERT INTO submissions (submission_id, charity_id, file_name, sha256, received_at, loaded_at, "
                "rows_loaded, rows_replaced, quarters, standard_version, loaded_after_charge) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    submission_id,
                    charity_id,
                    file_name,
                    sha256,
                    received_at.replace(tzinfo=None),
                    dt.datetime.now(dt.UTC).replace(tzinfo=None),
                    loaded,
                    replaced,
                    quarters,
                    standard_version,
                    last_spent_order(con),
                ],
            )
            # The submission is loaded in the same transaction as its rows: never one without the other.
            con.execute(
                """
                INSERT INTO submission_states VALUES ($s, $c, 'loaded', $at, NULL, NULL)
                ON CONFLICT (submission_id) DO UPDATE SET state = 'loaded', updated_at = excluded.updated_at
                """,
                {"s": submission_id, "c": charity_id, "at": dt.datetime.now(dt.UTC).replace(tzinfo=None)},
            )
        except BaseException:
            con.rollback()
            raise
        # Committed after the block, never inside it: a commit that fails has ended the transaction, whatever it did
        # (a Ctrl-C during a load's commit interrupted it with the rows in; the rollback then failed, its error hid the
        # interrupt, and the file was reported failed though loaded).
        con.commit()
    finally:
        con.unregister("incoming_contacts")
        con.execute("RESET memory_limit")
    return LoadResult(
        rows_loaded=loaded,
        rows_replaced=replaced,
        quarters=quarters,
        units=stored,
        quarters_replaced=quarters_replaced,
        quarters_superseded=superseded,
    )


def _later_quarters(
    con: duckdb.DuckDBPyConnection, charity_id: str, submission_id: str, received_at: dt.datetime
) -> list[str]:
    """The quarters that files its charity sent after a submission (received later; the same instant, the larger
    id) have already loaded: the later file keeps those it covers, whichever load finishes last. Several files of a
    charity in one run are loaded in whatever order their checks end; a correction sent after a full extract must
    not be overwritten by it."""
    return [
        row[0]
        for row in con.execute(
            """
            SELECT DISTINCT quarter FROM (SELECT unnest(quarters) AS quarter FROM submissions
                WHERE charity_id = $charity AND submission_id <> $submission
                AND (received_at > $at OR (received_at = $at AND submission_id > $submission)))
            ORDER BY quarter
            """,
            {"charity": charity_id, "submission": submission_id, "at": received_at.replace(tzinfo=None)},
        ).fetchall()
    ]


def link_units(con: duckdb.DuckDBPyConnection, policy: LinkagePolicy) -> RelinkResult:
    """Bring the clusters up to date with the units every load since the last relink stored or removed
    (``collab.linkage.relink``), in a transaction of its own, under ``LINK_MEMORY_LIMIT``.

    A release calls it before it reads the contacts' privacy units. Loads only store units: a relink reads every
    unit sharing a blocking key with one awaiting (most of the warehouse, once a load's units cover most birth
    dates), so relinking at every load read the warehouse again at every load, and one relink for them all reads
    it once per group of units awaiting (``collab.linkage.RELINK_GROUP_UNITS``)."""
    con.execute("SET memory_limit = $limit", {"limit": LINK_MEMORY_LIMIT})
    try:
        # Splink's own database is bounded too, spilling beside the warehouse's spill directory (not in it: DuckDB
        # makes that directory only when it first spills, and one level deep only).
        spill = con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0] + ".splink"
        con.begin()
        try:
            linked = relink(con, policy, memory=SplinkMemory(LINK_MEMORY_LIMIT, spill))
            crash_point("mid-link")
        except BaseException:
            con.rollback()
            raise
        con.commit()  # after the block, as ``load_submission`` commits
    finally:
        con.execute("RESET memory_limit")
    return linked


def _replace(con: duckdb.DuckDBPyConnection, submission_id: str, charity_id: str) -> int:
    """Inside the load's transaction: remove the charity's earlier rows of the quarters ``incoming_contacts``
    covers (and any earlier load of this submission); return how many rows were removed."""
    replaced = con.execute(
        """
        DELETE FROM contacts WHERE submission_id = $submission OR (charity_id = $charity AND quarter IN (
            SELECT DISTINCT quarter FROM incoming_contacts))
        """,
        {"submission": submission_id, "charity": charity_id},
    ).fetchall()[0][0]
    return int(replaced)


def quarter_end(period: str) -> dt.date:
    """The last day of a quarter such as ``2026Q1``."""
    year, quarter = int(period[:4]), int(period[-1])
    return dt.date(year + (quarter == 4), quarter * 3 % 12 + 1, 1) - dt.timedelta(days=1)


def has_ended(period: str, today: dt.date | None = None) -> bool:
    """Whether a quarter's last day is before ``today``: only then can every charity have sent its contacts."""
    return quarter_end(period) < (today or dt.date.today())


def not_ended_problem(period: str, today: dt.date | None = None) -> str | None:
    """Why a quarter cannot be released yet, or None: releasing one that has not ended would spend budget on
    figures of a time still going on, with no charity's contacts for it all in, and leave less for the quarter
    that is due."""
    if has_ended(period, today):
        return None
    return (
        f"{period} has not ended yet (its last day is {quarter_end(period):%-d %B %Y}): only a quarter that has "
        "ended is released, and nothing has been spent."
    )


def calendar_quarters(first_quarter: str | None, today: dt.date | None = None) -> list[str]:
    """Every quarter from ``first_quarter`` that has ended by ``today``, with or without rows in it."""
    today = today or dt.date.today()
    quarters: list[str] = []
    quarter = first_quarter
    while quarter is not None and has_ended(quarter, today):
        quarters.append(quarter)
        year, number = int(quarter[:4]), int(quarter[-1])
        quarter = f"{year + number // 4}Q{number % 4 + 1}"
    return quarters


def unreleased_complete_quarters(
    con: duckdb.DuckDBPyConnection, first_quarter: str | None, today: dt.date | None = None
) -> list[str]:
    """Quarters of the calendar, from the collaborative's first, that have ended and have no release yet:
    what gets released next. The calendar alone decides (a public invariant), never the rows: a quarter
    without data is released too, its figures noise around zero."""
    released = {row[0] for row in con.execute("SELECT DISTINCT period FROM releases").fetchall()}
    return [quarter for quarter in calendar_quarters(first_quarter, today) if quarter not in released]


def stale_quarters(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Released quarters that received data after their latest release (they need a revision): a submission loaded
    when the ledger already held the release's charge. Told by the ledger's order, not by times, which a clock set
    back or forward would swap."""
    rows = con.execute(
        """
        WITH latest AS (
            SELECT r.period, (SELECT max(spent_order) FROM privacy_ledger l WHERE l.release_id = r.release_id) AS charged
            FROM releases r WHERE r.revision = (SELECT max(revision) FROM releases WHERE period = r.period)
        )
        SELECT DISTINCT latest.period FROM latest JOIN submissions s ON list_contains(s.quarters, latest.period)
        WHERE s.loaded_after_charge >= latest.charged
        ORDER BY latest.period
        """
    ).fetchall()
    return [row[0] for row in rows]


def audit(con: duckdb.DuckDBPyConnection, *, actor: str, action: str, subject: str, detail: str = "") -> None:
    con.execute(
        "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?)",
        [dt.datetime.now(dt.UTC).replace(tzinfo=None), actor, action, subject, detail],
    )


def not_linkable_contacts(con: duckdb.DuckDBPyConnection, period: str, linking: Sequence[str]) -> dict[str, int]:
    """By charity among ``linking``, the contacts of ``period`` that releases leave out (``privacy.bounding.hold_period``):
    their reference is in no linkage cluster, having no identity to link. For the analyst only: a count of rows."""
    rows = con.execute(
        "SELECT charity_id, count(*) FROM contact_units WHERE quarter = $period AND NOT clustered "
        "AND list_contains($linking, charity_id) GROUP BY charity_id ORDER BY charity_id",
        {"period": period, "linking": list(linking)},
    ).fetchall()
    return {charity: int(count) for charity, count in rows}
