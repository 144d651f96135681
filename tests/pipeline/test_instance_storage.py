"""The workspace's Dagster instance on SQLite holds its event-log connections open: what it writes is still
committed event by event and seen at once by every other process (the UI's, the daemon's), a forked child
opens its own connections, and only the latest runs' databases stay open. A run's database is copied from an
empty one, as Dagster would have made it."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey, DagsterEventType, DagsterInstance, EventRecordsFilter, asset, materialize
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from collab.workspace import Workspace
from pipelines.instance_storage import OPEN_RUN_SHARDS, HeldSqliteEventLogStorage


@asset
def parcel() -> int:
    return 1


def _materialized_by(instance: DagsterInstance) -> set[str]:
    records = instance.event_log_storage.get_event_records(
        EventRecordsFilter(DagsterEventType.ASSET_MATERIALIZATION, asset_key=AssetKey("parcel"))
    )
    return {r.run_id for r in records}


def _read_elsewhere(run_ids: list[str]) -> dict[str, object]:
    """What a separate process (as the Dagster UI is) reads from the workspace's instance."""
    script = """
import json, sys
from dagster import AssetKey, DagsterInstance, EventRecordsFilter, DagsterEventType
with DagsterInstance.get() as instance:
    events = {run_id: len(instance.all_logs(run_id)) for run_id in sys.argv[1:]}
    records = instance.event_log_storage.get_event_records(
        EventRecordsFilter(DagsterEventType.ASSET_MATERIALIZATION, asset_key=AssetKey("parcel"))
    )
    print(json.dumps({"events": events, "materialized_by": sorted(r.run_id for r in records)}))
"""
    done = subprocess.run([sys.executable, "-c", script, *run_ids], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_runs_and_their_events_are_seen_by_another_process_at_once(workspace: Workspace) -> None:
    with DagsterInstance.get() as instance:
        assert isinstance(instance.event_log_storage, HeldSqliteEventLogStorage)
        run_ids = [materialize([parcel], instance=instance).run_id for _ in range(OPEN_RUN_SHARDS + 2)]
        counts = {run_id: len(instance.all_logs(run_id)) for run_id in run_ids}
        # The process is still going, its connections open: another process reads every event all the same.
        seen = _read_elsewhere(run_ids)
        assert seen == {"events": counts, "materialized_by": sorted(run_ids)}
        assert all(count > 10 for count in counts.values())
        # The index and the latest runs' databases are held; older runs' were closed as newer ones came.
        assert len(instance.event_log_storage._engines) == OPEN_RUN_SHARDS + 1
        # Their commits do not wait for the disk (a killed process still loses nothing it committed).
        with instance.event_log_storage.run_connection(run_ids[-1]) as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


# Run in a new interpreter, as `collab run`'s worker server is a process that forks before it computes anything:
# a test process forks with the thread pools earlier tests started (Polars', DuckDB's), whose locks a child
# inherits held, and such a child can crash in code of neither.
_FORK_A_CHILD = """
import json, multiprocessing
from dagster import AssetKey, DagsterEventType, DagsterInstance, EventRecordsFilter, asset, materialize

@asset
def parcel() -> int:
    return 1

def in_child(queue):
    with DagsterInstance.get() as instance:
        queue.put(materialize([parcel], instance=instance).run_id)

if __name__ == "__main__":
    with DagsterInstance.get() as instance:
        first = materialize([parcel], instance=instance).run_id
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=in_child, args=(queue,))
        child.start()
        child.join(timeout=120)
        in_child_run = queue.get(timeout=5) if child.exitcode == 0 else None
        # The parent's connections still work after the child used (and closed) its own.
        last = materialize([parcel], instance=instance).run_id
        records = instance.event_log_storage.get_event_records(
            EventRecordsFilter(DagsterEventType.ASSET_MATERIALIZATION, asset_key=AssetKey("parcel"))
        )
        print(json.dumps({"child_exit": child.exitcode, "runs": [first, in_child_run, last],
                          "materialized_by": sorted(r.run_id for r in records)}))
"""


def test_a_forked_child_writes_on_connections_of_its_own(workspace: Workspace, tmp_path: Path) -> None:
    script = tmp_path / "fork_a_child.py"
    script.write_text(_FORK_A_CHILD)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["child_exit"] == 0
    assert outcome["materialized_by"] == sorted(outcome["runs"])


def _open_files() -> list[str]:
    names = []
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # the listing's own descriptor, closed by now
            names.append(str(fd.readlink()))
    return names


def test_wiping_the_instance_closes_the_runs_databases_first(workspace: Workspace) -> None:
    with DagsterInstance.get() as instance:
        materialize([parcel], instance=instance)
        instance.wipe()
        assert instance.get_runs() == []
        # Dagster deleted the run's database: no connection of ours is left writing to the deleted file.
        assert not [name for name in _open_files() if name.endswith(".db (deleted)")]
        after = materialize([parcel], instance=instance).run_id
        assert [r.run_id for r in instance.get_runs()] == [after]
        with DagsterInstance.get() as another:  # its own connections, as another process's
            assert _materialized_by(another) == {after}


def test_the_event_log_starts_in_an_empty_directory(tmp_path: Path) -> None:
    storage = HeldSqliteEventLogStorage(str(tmp_path / "runs"))
    assert storage.supports_global_concurrency_limits  # its index shard was created, with every table
    storage.dispose()


def _schema(database: Path) -> list[tuple[str, str, str]]:
    with contextlib.closing(sqlite3.connect(database)) as con:
        queries = [
            "SELECT type, name, sql FROM sqlite_master ORDER BY name",
            "SELECT 'alembic', version_num, '' FROM alembic_version",
            "SELECT 'journal', journal_mode, '' FROM pragma_journal_mode",
        ]
        return [row for query in queries for row in con.execute(query).fetchall()]


def test_a_runs_database_is_what_dagster_would_have_created(workspace: Workspace, tmp_path: Path) -> None:
    with DagsterInstance.get() as instance:
        run_id = materialize([parcel], instance=instance).run_id
        runs_dir = Path(instance.event_log_storage._base_dir)
        # Dagster's own storage, in a directory of its own, creates a run's database its way.
        dagsters = SqliteEventLogStorage(str(tmp_path / "dagster"))
        with dagsters.run_connection(run_id):
            pass
        assert _schema(runs_dir / f"{run_id}.db") == _schema(tmp_path / "dagster" / f"{run_id}.db")
        dagsters.dispose()
        # Nothing half-made is left beside the runs' databases, and an existing one is never replaced.
        assert not [p.name for p in runs_dir.iterdir() if p.name.startswith(".")]
        assert not instance.event_log_storage._copy_empty_run_shard(run_id)
        assert len(instance.all_logs(run_id)) > 10
