"""The Dagster instance's storages: SQLite holding its event-log connections open between events, and both
SQLite and PostgreSQL asking sooner for a concurrency pool's slot.

Dagster's ``SqliteEventLogStorage`` opens a new SQLAlchemy engine and SQLite connection for every event it
writes and every read, and closes them after: about 250 a tiny submission's run, each paying the connect,
and the close of a write-ahead-logged database checkpointing the log back into it and deleting it. That
was most of the event log's cost, itself the largest share of a tiny file's overhead. This storage keeps
one open connection per database file instead: the index shard's for the process's life, the few latest
runs' shards until newer runs push them out. Everything else is Dagster's own: the same files and layout
(``dagster.yaml`` names it as ``storage: custom``, with the base directory ``storage: sqlite`` had), the
same transactions (each write still commits on its own, without waiting for the disk: see
``_synchronous_normal``), the same lock that serialises the process's threads over the storage; a run
waiting for a pool's slot asks again sooner (``claim_concurrency_slot``), and takes a slot only while it is
free (``_claim_concurrency_slot``). Dagster's other SQLite storages (runs, schedules) are used as they are. On the
production profile, ``CollabPostgresStorage`` is Dagster's PostgreSQL storage with only the quicker, and atomic,
slot claims.
"""

from __future__ import annotations

import os
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as db
from dagster import Field, StringSource
from dagster._core.storage.event_log.schema import ConcurrencySlotsTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS, create_db_conn_string
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._serdes import ConfigurableClassData
from dagster._utils.concurrency import ConcurrencyClaimStatus, ConcurrencySlotStatus
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.event_log import PostgresEventLogStorage
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool

# A step waiting for a pool's slot (the warehouse's) asks again after this, doubling up to a second. Dagster's
# own wait starts at 1 s and grows to 15: longer than a small submission's whole load, so a run queued behind
# another's load idled most of a second; asking is a few indexed statements on the index shard.
FIRST_CLAIM_RETRY_SECONDS = 0.1
LONGEST_CLAIM_RETRY_SECONDS = 1.0

# Run shards kept open besides the index: a run writes only its own, so a process running one run at a
# time needs one; a webserver reading several runs' logs gains from a few.
OPEN_RUN_SHARDS = 4


class QuickSlotClaims(SqlEventLogStorage):
    """An event log whose steps waiting for a pool's slot ask again after ``FIRST_CLAIM_RETRY_SECONDS``,
    doubling up to ``LONGEST_CLAIM_RETRY_SECONDS``, instead of Dagster's 1 s growing to 15 s. Mixed in before
    the storage it speeds up (``class X(QuickSlotClaims, SomeEventLogStorage)``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Asks so far by each step still waiting, forgotten once it has its slot.
        self._claim_attempts: dict[tuple[str, str, str], int] = {}
        super().__init__(*args, **kwargs)

    def claim_concurrency_slot(
        self, concurrency_key: str, run_id: str, step_key: str, priority: int | None = None
    ) -> ConcurrencyClaimStatus:
        status = super().claim_concurrency_slot(concurrency_key, run_id, step_key, priority)
        waiting = (concurrency_key, run_id, step_key)
        if status.is_claimed:
            self._claim_attempts.pop(waiting, None)
            return status
        attempts = self._claim_attempts[waiting] = self._claim_attempts.get(waiting, 0) + 1
        return status.with_sleep_interval(
            min(LONGEST_CLAIM_RETRY_SECONDS, FIRST_CLAIM_RETRY_SECONDS * 2 ** (attempts - 1))
        )

    def _claim_concurrency_slot(self, concurrency_key: str, run_id: str, step_key: str) -> ConcurrencySlotStatus:
        """Take a free slot of the pool for the step, only if it is still free when taken.

        Dagster's own claim finds a free slot in one statement and takes it by its id in the next. Each statement
        commits on its own (PostgreSQL's storage runs in autocommit, so its row lock ends with the first), and two
        steps let through together could both find and take the one slot of the ``warehouse`` pool: 44 rounds in
        100 of four such steps on a real PostgreSQL, two or more of them holding it at once
        (``test_one_slot_is_taken_by_one_step_however_many_ask_at_once``)."""
        slots = ConcurrencySlotsTable.c
        with self.index_connection() as conn:
            free = conn.execute(
                db.select(slots.id)
                .where(slots.concurrency_key == concurrency_key, slots.step_key.is_(None), slots.deleted.is_(False))
                .limit(1)
            ).fetchone()
            if free is None:
                return ConcurrencySlotStatus.BLOCKED
            taken = conn.execute(
                db.update(ConcurrencySlotsTable)
                .where(slots.id == free[0], slots.step_key.is_(None))
                .values(run_id=run_id, step_key=step_key)
            ).rowcount
        return ConcurrencySlotStatus.CLAIMED if taken else ConcurrencySlotStatus.BLOCKED


class HeldSqliteEventLogStorage(QuickSlotClaims, SqliteEventLogStorage):
    """``SqliteEventLogStorage`` with one connection per shard held open in this process.

    Every use of a connection is under the storage's ``_db_lock`` (as in Dagster's own ``_connect``), so
    one connection per shard serves all the process's threads, one at a time. A forked child drops the
    connections it inherited (SQLite's must never cross a fork) and opens its own.
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # Set first: Dagster's constructor already connects, to create and index a new directory's index shard.
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._empty_run_shard: bytes | None = None
        super().__init__(base_dir, inst_data=inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock, self._engine(shard).connect() as conn, conn.begin():
            yield conn

    def _engine(self, shard: str) -> Engine:
        """The shard's engine, most recently used last; the least recent run shard beyond the limit is closed."""
        if self._engines_pid != os.getpid():
            for inherited in self._engines.values():
                inherited.dispose(close=False)
            self._engines.clear()
            self._engines_pid = os.getpid()
        engine = self._engines.pop(shard, None)
        if engine is None:
            if shard not in self._initialized_dbs:
                if shard == INDEX_SHARD_NAME or not self._copy_empty_run_shard(shard):
                    self._create_shard(self.conn_string_for_shard(shard))
                self._initialized_dbs.add(shard)
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=0,
                # Used from whichever thread holds ``_db_lock``, one at a time.
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            # Each event is its own transaction; in SQLite's default (FULL) each commit waited for the disk.
            event.listen(engine, "connect", _synchronous_normal)
        self._engines[shard] = engine
        run_shards = [name for name in self._engines if name != INDEX_SHARD_NAME]
        for name in run_shards[: max(0, len(run_shards) - OPEN_RUN_SHARDS)]:
            self._engines.pop(name).dispose()
        return engine

    def _create_shard(self, conn_string: str) -> None:
        # Creating a shard takes two connections at once: Dagster's own way, with throwaway ones.
        creating = create_engine(conn_string, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        self._initdb(creating)
        creating.dispose()

    def _copy_empty_run_shard(self, run_id: str) -> bool:
        """A new run's database as a copy of an empty one, made by Dagster once per process: creating each run's
        tables, indexes and migration stamp anew cost about a tenth of a small submission's run. Linked into
        place whole, so no reader sees it half-written; False (nothing done) if the run's database exists."""
        target = Path(self.path_for_shard(run_id))
        if target.exists():
            return False
        if self._empty_run_shard is None:
            with tempfile.TemporaryDirectory() as directory:
                self._create_shard(create_db_conn_string(directory, "empty"))
                self._empty_run_shard = Path(directory, "empty.db").read_bytes()
        # A dot file: Dagster lists runs' databases as ``*.db``, which never matches it.
        partial = target.with_name(f".{run_id}.{os.getpid()}.partial")
        partial.write_bytes(self._empty_run_shard)
        try:
            target.hardlink_to(partial)
        except FileExistsError:  # another process created it meanwhile: Dagster's way then checks it
            return False
        finally:
            partial.unlink()
        return True

    def _close_engines(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        # Dagster's wipe deletes the run shards' files: none may stay open on a deleted file.
        self._close_engines()
        super().wipe()

    def dispose(self) -> None:
        self._close_engines()
        super().dispose()


class CollabSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (runs, event log, schedules under ``base_dir``) with the held-connection event log."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage = HeldSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Any) -> CollabSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


class QuickClaimPostgresEventLogStorage(QuickSlotClaims, PostgresEventLogStorage):
    """Dagster's PostgreSQL event log, asking sooner for a pool's slot."""


class CollabPostgresStorage(DagsterPostgresStorage):
    """Dagster's PostgreSQL storage (runs, event log, schedules in one database) whose event log asks sooner for
    a pool's slot: with two workers, a run queued behind another's warehouse load (a tenth of a second for a
    small file) otherwise idled a second or more. ``dagster.yaml`` names it as ``storage: custom`` with the
    ``postgres_url`` that ``storage: postgres`` had."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
    ) -> None:
        super().__init__(postgres_url, should_autocreate_tables, inst_data=inst_data)
        # Dagster's constructor makes its own event log first; replaced here, its engine is let go.
        self._event_log_storage.dispose()
        self._event_log_storage = QuickClaimPostgresEventLogStorage(postgres_url, should_autocreate_tables)

    @classmethod
    def config_type(cls) -> Any:
        return {"postgres_url": StringSource, "should_autocreate_tables": Field(bool, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> CollabPostgresStorage:
        return cls(
            config_value["postgres_url"], config_value.get("should_autocreate_tables", True), inst_data=inst_data
        )


def _synchronous_normal(connection: Any, _: Any) -> None:
    """Commits not waiting for the disk, SQLite's recommended setting for a write-ahead log: a killed process
    loses nothing it committed and the database stays consistent; only a power cut or an OS crash can lose the
    last events. The event log is Dagster's record of runs: the submissions' own states are in the workspace
    and the warehouse, a run's status in the runs database (left at FULL), and the warehouse pool's slots of a
    run whose process died are freed by the next `collab run` whatever the log says."""
    connection.execute("PRAGMA synchronous=NORMAL")
