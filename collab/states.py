"""Where each submission is on its way: received -> staged -> checked -> feedback_sent -> loaded | rejected | failed.

Each submission's state is a small file, ``staging/<id>/state.json``, replaced atomically at every step,
so anything may read it while the pipeline runs without opening the warehouse (DuckDB admits one
process at a time): the charity portal, ``collab status``, the sensor. The warehouse keeps the same
states in ``submission_states`` (mirrored by every ``collab run``), and ``loaded`` is written there in the
very transaction that loads the rows, so a submission is never called loaded without its rows.

A submission not in a final state is unfinished: every ``collab run`` and sensor tick takes it up again
from the start of its job (each step is idempotent: the check rewrites its outputs, a load replaces the
submission's rows), so a run killed at any point strands nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Literal, Protocol, get_args

import duckdb
from pydantic import BaseModel

from collab.workspace import Workspace
from standards.feedback import FeedbackReport

State = Literal["received", "staged", "checked", "feedback_sent", "loaded", "rejected", "failed"]
STATES: tuple[State, ...] = get_args(State)
FINAL_STATES: frozenset[State] = frozenset({"loaded", "rejected", "failed"})
STATE_FILE = "state.json"
REFERENCE_PATTERN = re.compile(r"ref-[0-9a-f]{12}")


class SubmissionState(BaseModel):
    submission_id: str
    charity_id: str
    file_name: str
    state: State
    updated_at: dt.datetime
    # The submission's Dagster partition, ``<charity>/<file stem>/<short hash>`` (None before partitions had names).
    name: str | None = None
    # The report's status once checked, and the internal error's reference if the submission failed.
    status: str | None = None
    reference: str | None = None
    # A loaded submission some of whose rows a later file of its charity replaced (``mark_replaced``): the same file
    # dropped again is loaded again, not a duplicate, as a charity putting back what it sent would expect.
    replaced: bool = False

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


def _path(workspace: Workspace, submission_id: str) -> Path:
    return workspace.staging / submission_id / STATE_FILE


def read_state(workspace: Workspace, submission_id: str) -> SubmissionState | None:
    path = _path(workspace, submission_id)
    try:
        return SubmissionState.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def write_state(
    workspace: Workspace,
    *,
    submission_id: str,
    charity_id: str,
    file_name: str,
    state: State,
    name: str | None = None,
    status: str | None = None,
    reference: str | None = None,
    replaced: bool = False,
) -> SubmissionState:
    """Record a submission's new state: written whole to a temporary file, flushed, then renamed over the old."""
    record = SubmissionState(
        submission_id=submission_id,
        charity_id=charity_id,
        file_name=file_name,
        state=state,
        name=name,
        updated_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
        status=status,
        reference=reference,
        replaced=replaced,
    )
    path = _path(workspace, submission_id)
    partial = path.with_name(f".{STATE_FILE}.partial")
    with partial.open("w", encoding="utf-8") as handle:
        handle.write(record.model_dump_json(indent=2))
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)
    return record


class Described(Protocol):
    """What a state is recorded about: a submission's manifest (``collab.intake.SubmissionManifest``)."""

    @property
    def submission_id(self) -> str: ...
    @property
    def charity_id(self) -> str: ...
    @property
    def original_name(self) -> str: ...
    @property
    def name(self) -> str: ...


def mark_state(
    workspace: Workspace,
    manifest: Described,
    state: State,
    report: FeedbackReport | None = None,
    *,
    replaced: bool = False,
) -> SubmissionState:
    """Record the submission's new state, with its report's status and any internal error's reference
    (``replaced``: loaded, but not all of its rows are held, as ``mark_replaced`` finds later)."""
    return write_state(
        workspace,
        submission_id=manifest.submission_id,
        charity_id=manifest.charity_id,
        file_name=manifest.original_name,
        state=state,
        name=manifest.name,
        status=None if report is None else report.status,
        reference=None if report is None else internal_error_reference(report),
        replaced=replaced,
    )


def internal_error_reference(report: FeedbackReport) -> str | None:
    """The reference of the internal error a report tells of, if it tells of one."""
    for group in report.issues:
        if group.code == "E_INTERNAL":
            for example in group.examples:
                if found := REFERENCE_PATTERN.search(example.message):
                    return found.group(0)
    return None


def state_after_feedback(report: FeedbackReport) -> State:
    """An accepted submission waits for its load; a rejected or failed one is finished once told."""
    if report.accepted:
        return "feedback_sent"
    return "failed" if internal_error_reference(report) else "rejected"


def submission_states(workspace: Workspace, charity_id: str | None = None) -> list[SubmissionState]:
    """Every submission's state (of one charity, if given), newest first, read without the warehouse."""
    states = []
    for path in workspace.staging.glob(f"*/{STATE_FILE}") if workspace.staging.exists() else []:
        try:
            state = SubmissionState.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a submission being purged at this moment
        if charity_id is None or state.charity_id == charity_id:
            states.append(state)
    return sorted(states, key=lambda s: (s.updated_at, s.submission_id), reverse=True)


def unfinished(workspace: Workspace) -> list[SubmissionState]:
    """Submissions not yet in a final state, oldest first: what a run takes up again."""
    return sorted(
        (s for s in submission_states(workspace) if not s.final), key=lambda s: (s.updated_at, s.submission_id)
    )


def mark_replaced(con: duckdb.DuckDBPyConnection, workspace: Workspace, charity_id: str | None = None) -> list[str]:
    """Mark ``replaced`` every loaded submission (of ``charity_id``, or of every charity) that the warehouse no longer
    holds all the rows of (a later file of its charity covered one of its quarters); return their ids.

    Read from the warehouse, so a load that stopped before marking the submissions it replaced is caught up by the
    next ``mirror_states``."""
    replaced = con.execute(
        """
        SELECT s.submission_id FROM submissions s LEFT JOIN (
            SELECT submission_id, count(*) AS still_held FROM contacts
            WHERE $charity IS NULL OR charity_id = $charity GROUP BY submission_id
        ) c USING (submission_id)
        WHERE ($charity IS NULL OR s.charity_id = $charity) AND coalesce(c.still_held, 0) < s.rows_loaded
        ORDER BY s.submission_id
        """,
        {"charity": charity_id},
    ).fetchall()
    marked = []
    for (submission_id,) in replaced:
        state = read_state(workspace, submission_id)
        if state is not None and state.state == "loaded" and not state.replaced:
            write_state(workspace, **state.model_dump(exclude={"updated_at", "replaced"}), replaced=True)
            marked.append(submission_id)
    return marked


def mirror_states(con: duckdb.DuckDBPyConnection, workspace: Workspace) -> None:
    """Copy every submission's state into the warehouse, never overwriting ``loaded`` (set by the load itself), and
    mark the loaded submissions whose rows were replaced since (``mark_replaced``)."""
    mark_replaced(con, workspace)
    for state in submission_states(workspace):
        con.execute(
            """
            INSERT INTO submission_states VALUES ($id, $charity, $state, $at, $status, $reference)
            ON CONFLICT (submission_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at,
                status = excluded.status, reference = excluded.reference
            WHERE submission_states.state <> 'loaded'
            """,
            {
                "id": state.submission_id,
                "charity": state.charity_id,
                "state": state.state,
                "at": state.updated_at.replace(tzinfo=None),
                "status": state.status,
                "reference": state.reference,
            },
        )
