"""The production profile: the Dagster instance on a real PostgreSQL server (Debian's, started here).

The same charities and files go through `collab run` twice, on the default SQLite instance one at a
time and on PostgreSQL with submissions checked in parallel; the outcomes and the warehouse must be the same, the
runs must be in PostgreSQL, and no two warehouse steps may ever have overlapped (the `warehouse` pool).
A machine without PostgreSQL fails here: `make test` installs it (`make postgres`).
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._utils.concurrency import ConcurrencySlotStatus

from collab.landing import LocalLandingZone
from collab.postgres import LocalPostgres
from collab.registry import Registry
from collab.warehouse import calendar_quarters
from collab.workspace import POSTGRES_URL_VARIABLE, Workspace
from pipelines.instance_storage import QuickClaimPostgresEventLogStorage
from tests.conftest import contact_rows, latest_ended_quarter, write_csv
from tests.system.commands import collab

pytestmark = pytest.mark.system
QUARTER, QUARTER_START = latest_ended_quarter()
CHARITIES = ("pantry-a", "pantry-b", "pantry-c")


@pytest.fixture(scope="module")
def postgres() -> Iterator[LocalPostgres]:
    # Not under pytest's tmp_path: that is private to us, and under root the server runs as `postgres`.
    directory = Path(tempfile.mkdtemp(prefix="collab-postgres-"))
    server = LocalPostgres(directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _run_collaborative(
    home: Path, extracts: Path, database: str, runs_at_once: int, monkeypatch: pytest.MonkeyPatch
) -> dict:
    """Register three charities, drop one file each, and process them in one `collab run` (the user's path)."""
    workspace = Workspace(home)
    home.mkdir(parents=True)
    settings = workspace.settings.model_copy(deep=True)
    settings.intake.settle_seconds = 0
    settings.publication.auto_publish = True
    # The collaborative reports from the files' quarter, the last that has ended: one release.
    settings.publication.first_quarter = QUARTER
    settings.instance.database = database  # type: ignore[assignment]
    settings.instance.max_concurrent_runs = runs_at_once
    workspace.save_settings(settings)
    for name, value in workspace.environment().items():
        monkeypatch.setenv(name, value)
    workspace.init()
    for charity in CHARITIES:
        Registry(workspace).add(charity, charity.title(), None)
        LocalLandingZone(root=str(home)).drop(charity, extracts / f"{charity}.csv")
    return json.loads(collab(home, "run", "--json").stdout)


def _warehouse_rows(home: Path) -> tuple[list[tuple], list[tuple]]:
    """Every contact but its pseudonyms and submission ids (keyed per workspace), and people per charity."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        contacts = con.execute("SELECT * EXCLUDE (submission_id, person_key) FROM contacts ORDER BY ALL").fetchall()
        people = con.execute(
            "SELECT charity_id, count(DISTINCT person_key) FROM contacts GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    return contacts, people


def _summary(report: dict) -> tuple[list, list]:
    submissions = sorted(
        (s["charity_id"], s["status"], s["rows_received"], s["rows_accepted"], s["codes"])
        for s in report["submissions"]
    )
    releases = [(r["period"], r["release_id"], r["new_spend"], r["published"], r["error"]) for r in report["releases"]]
    return submissions, releases


def test_postgres_instance_runs_concurrent_submissions_like_sqlite(
    postgres: LocalPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extracts = tmp_path / "extracts"
    for index, charity in enumerate(CHARITIES):
        write_csv(
            extracts / f"{charity}.csv", contact_rows(300, start=QUARTER_START, prefix=f"{charity[-1].upper()}{index}")
        )

    sqlite = _run_collaborative(tmp_path / "sqlite", extracts, "sqlite", 1, monkeypatch)
    monkeypatch.setenv(POSTGRES_URL_VARIABLE, postgres.url())
    postgres_home = tmp_path / "postgres"
    on_postgres = _run_collaborative(postgres_home, extracts, "postgres", 2, monkeypatch)

    assert _summary(on_postgres) == _summary(sqlite)
    assert [s[1] for s in _summary(sqlite)[0]] == ["accepted"] * 3
    assert [r[3] for r in _summary(sqlite)[1]] == [True] * len(calendar_quarters(QUARTER))
    # The runs and their events are in PostgreSQL, and nothing fell back to SQLite files.
    assert "CollabPostgresStorage" in (postgres_home / "dagster" / "dagster.yaml").read_text()
    assert not list((postgres_home / "dagster").glob("**/*.db"))
    with postgres.connect() as con, con.cursor() as cursor:
        cursor.execute("SELECT run_id FROM runs")
        stored_runs = {row[0] for row in cursor.fetchall()}
    reported = {s["run_id"] for s in on_postgres["submissions"]} | {r["run_id"] for r in on_postgres["releases"]}
    assert reported <= stored_runs

    # Submissions overlapped in time, their warehouse steps never did.
    instance = DagsterInstance.from_config(str(postgres_home / "dagster"))
    try:
        submission_runs = [instance.get_run_record_by_id(s["run_id"]) for s in on_postgres["submissions"]]
        assert all(r is not None and r.dagster_run.status == DagsterRunStatus.SUCCESS for r in submission_runs)
        # Dagster's PostgreSQL event log, whose waiting loads ask again for the warehouse slot within a second.
        assert isinstance(instance.event_log_storage, QuickClaimPostgresEventLogStorage)
        assert instance.event_log_storage.get_concurrency_info("warehouse").slot_count == 1
        spans = sorted((r.start_time, r.end_time) for r in submission_runs if r is not None)
        assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))
        step_events = {DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}
        steps = sorted(
            [
                e.timestamp
                for e in instance.all_logs(run.dagster_run.run_id, of_type=step_events)
                if e.step_key == "warehouse_contacts"
            ]
            for run in submission_runs
            if run is not None
        )
        assert len(steps) == 3 and all(len(times) == 2 for times in steps)
        assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(steps))
    finally:
        instance.dispose()

    contacts, people = _warehouse_rows(tmp_path / "sqlite")
    assert len(contacts) == 900 and people == [(charity, 300) for charity in CHARITIES]
    assert _warehouse_rows(postgres_home) == (contacts, people)

    # A later `collab run`, the pool's limit long made (an operator's trial: a traceback from Dagster's insert of
    # it again, in a transaction PostgreSQL had aborted).
    later = write_csv(tmp_path / "later.csv", contact_rows(20, start=QUARTER_START, prefix="LATER"))
    LocalLandingZone(root=str(postgres_home)).drop(CHARITIES[0], later)
    again = json.loads(collab(postgres_home, "run", "--json").stdout)
    assert [s["file_name"] for s in again["submissions"]] == ["later.csv"] and not again["failed"]
    assert again["submissions"][0]["status"] in {"accepted", "accepted_with_warnings"}  # it replaces a quarter


def test_a_restarted_server_keeps_its_port(postgres: LocalPostgres) -> None:
    # An operator's trial: each `make postgres` chose a new port, and the daemon, given the old URL, retried it for
    # good and left its run STARTED.
    url = postgres.url()
    postgres.stop()
    assert postgres.start() == url
    with postgres.connect() as con, con.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_one_slot_is_taken_by_one_step_however_many_ask_at_once(postgres: LocalPostgres) -> None:
    """Steps let through together (each assigned, as a race in Dagster's own queueing can leave them) ask for the
    `warehouse` pool's one slot at the same instant: one takes it. Dagster's claim gave it to two or more in 44 rounds
    of 100."""
    storage = QuickClaimPostgresEventLogStorage(postgres.url(), True)
    try:
        storage.set_concurrency_slots("racing", 1)
        for round_number in range(40):
            steps = [(f"run-{round_number}-{i}", "warehouse_contacts") for i in range(4)]
            for run_id, step_key in steps:
                storage.add_pending_step("racing", run_id, step_key, should_assign=True)
            at_once = threading.Barrier(len(steps))

            with ThreadPoolExecutor(max_workers=len(steps)) as pool:
                claims = [pool.submit(_claim_together, storage, at_once, *step) for step in steps]
                outcomes = [claim.result() for claim in claims]
            assert outcomes.count(ConcurrencySlotStatus.CLAIMED) == 1, f"round {round_number}: {outcomes}"
            for run_id, _ in steps:
                storage.free_concurrency_slots_for_run(run_id)
    finally:
        storage.dispose()


def _claim_together(
    storage: QuickClaimPostgresEventLogStorage, at_once: threading.Barrier, run_id: str, step_key: str
) -> ConcurrencySlotStatus:
    at_once.wait()  # every step asks at the same instant
    return storage._claim_concurrency_slot("racing", run_id, step_key)
