"""Intake: take files out of the landing zone into staging, one submission per distinct content.

A submission's id is ``<charity>-<first 12 hex digits of its SHA-256>``, so the same bytes dropped
twice by the same charity are received once; the copy is archived as a duplicate and the charity is
told. Intake holds a file lock, so the sensor and ``collab run`` can never take the same file twice.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock
from pydantic import BaseModel

from collab.faults import crash_point
from collab.landing import LandingObject, LandingObjectGone, LandingObjectRefused, LandingZone
from collab.states import STATE_FILE, State, read_state, write_state
from collab.workspace import Workspace

MANIFEST = "manifest.json"
REPORT_FILE = "report.json"
log = logging.getLogger(__name__)


class SubmissionManifest(BaseModel):
    submission_id: str
    charity_id: str
    original_name: str
    object_key: str
    size: int
    sha256: str
    received_at: dt.datetime
    archived_to: str
    source_file: str


def submission_dir(workspace: Workspace, submission_id: str) -> Path:
    return workspace.staging / submission_id


def load_manifest(workspace: Workspace, submission_id: str) -> SubmissionManifest:
    path = submission_dir(workspace, submission_id) / MANIFEST
    return SubmissionManifest.model_validate_json(path.read_text(encoding="utf-8"))


@dataclass
class IntakeResult:
    received: list[SubmissionManifest] = field(default_factory=list)
    duplicates: list[tuple[LandingObject, str]] = field(default_factory=list)
    # Files left in the landing area for the next pass, and why (gone or changed while being taken, or an error).
    skipped: list[tuple[LandingObject, str]] = field(default_factory=list)
    # Entries never read because they are not regular files of the area ("CODE: why"); moved aside, charity told.
    refused: list[tuple[LandingObject, str]] = field(default_factory=list)


@contextmanager
def _intake_lock(workspace: Workspace) -> Iterator[None]:
    workspace.staging.mkdir(parents=True, exist_ok=True)
    # An OS lock (flock on POSIX, LockFileEx on Windows): released by the OS if the holder dies.
    with FileLock(workspace.staging / ".intake.lock"):
        yield


def _source_suffix(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return suffix if suffix.isascii() and suffix[1:].isalnum() and len(suffix) <= 8 else ""


def receive_pending(
    workspace: Workspace, landing: LandingZone, charity_ids: list[str], *, min_age_seconds: float = 0.0
) -> IntakeResult:
    """Move every pending landed file into staging (or the archive, if it is a duplicate)."""
    result = IntakeResult()
    with _intake_lock(workspace):
        for obj in landing.pending(charity_ids, min_age_seconds=min_age_seconds):
            try:
                _receive(workspace, landing, obj, result)
            except LandingObjectGone as gone:
                result.skipped.append((obj, str(gone)))
            except LandingObjectRefused as refused:
                _refuse(landing, obj, str(refused))
                result.refused.append((obj, str(refused)))
            except Exception as error:  # one file's failure must not stop the others
                log.exception("intake of %s/%s failed; it stays in the landing area", obj.charity_id, obj.key)
                result.skipped.append((obj, f"{type(error).__name__}: {error}"))
    return result


def receive_settled(
    workspace: Workspace, landing: LandingZone, charity_ids: list[str], *, settle_seconds: float
) -> IntakeResult:
    """What ``collab run`` takes: every file unchanged for ``settle_seconds``, as the sensor takes them.

    A file changed more recently is waited for once (up to ``settle_seconds``), so a file dropped just
    before the run is still taken; one still changing after that is being written and is left for the
    next pass, never taken half-written.
    """
    now = time.time()
    ages = [now - obj.modified.timestamp() for obj in landing.pending(charity_ids) if obj.refusal is None]
    if young := [age for age in ages if age < settle_seconds]:
        time.sleep(max(0.0, settle_seconds - min(young)) + 0.05)
    result = receive_pending(workspace, landing, charity_ids, min_age_seconds=settle_seconds)
    for obj in landing.pending(charity_ids):
        if obj.refusal is None:
            result.skipped.append((obj, f"still being written: changed in the last {settle_seconds:g} s"))
    return result


def _receive(workspace: Workspace, landing: LandingZone, obj: LandingObject, result: IntakeResult) -> None:
    incoming = workspace.staging / f".incoming-{uuid.uuid4().hex}"
    target: Path | None = None
    try:
        if obj.refusal is not None:
            raise LandingObjectRefused(*obj.refusal.split(": ", 1))
        sha256 = landing.fetch(obj, incoming)
        crash_point("before-staging")
        submission_id = f"{obj.charity_id}-{sha256[:12]}"
        target = submission_dir(workspace, submission_id)
        if (target / MANIFEST).exists():
            _received_again(workspace, landing, obj, load_manifest(workspace, submission_id), result)
            return
        target.mkdir(parents=True, exist_ok=True)
        source_file = "source" + _source_suffix(obj.name)
        incoming.replace(target / source_file)
        manifest = SubmissionManifest(
            submission_id=submission_id,
            charity_id=obj.charity_id,
            original_name=obj.name,
            object_key=obj.key,
            size=obj.size,
            sha256=sha256,
            received_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
            archived_to=landing.archive_location(obj, submission_id),
            source_file=source_file,
        )
        # The manifest and state are written before the landed file is archived, atomically: a run stopped
        # at any point leaves either the landed file alone (taken again next pass) or a received submission.
        partial = target / f".{MANIFEST}.partial"
        partial.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
        partial.replace(target / MANIFEST)
        _mark(workspace, manifest, "received")
        crash_point("mid-staging")
        landing.archive(obj, submission_id)
        _mark(workspace, manifest, "staged")
        crash_point("after-staging")
        result.received.append(manifest)
    except BaseException:
        # Nothing half-received stays behind: the landed file is still there for the next pass.
        if target is not None and target.exists() and not (target / MANIFEST).exists():
            shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        incoming.unlink(missing_ok=True)


def _mark(workspace: Workspace, manifest: SubmissionManifest, state: State) -> None:
    write_state(
        workspace,
        submission_id=manifest.submission_id,
        charity_id=manifest.charity_id,
        file_name=manifest.original_name,
        state=state,
    )


def _received_again(
    workspace: Workspace, landing: LandingZone, obj: LandingObject, manifest: SubmissionManifest, result: IntakeResult
) -> None:
    """The same bytes arrived again. A finished submission, or one taken in this same pass, makes this a
    duplicate; an unfinished one (its run stopped, or it failed on an error of ours) is taken up again
    instead, so its charity does get feedback."""
    state = read_state(workspace, manifest.submission_id)
    # Submissions from before states were kept have none; they were finished, as a report shows.
    finished = (
        state.final if state is not None else (submission_dir(workspace, manifest.submission_id) / REPORT_FILE).exists()
    )
    taken_this_pass = any(m.submission_id == manifest.submission_id for m in result.received)
    if taken_this_pass or (finished and not (state is not None and state.state == "failed")):
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        landing.archive(obj, f"duplicates/{stamp}-{manifest.submission_id}")
        _tell_duplicate(landing, obj, manifest.submission_id)
        result.duplicates.append((obj, manifest.submission_id))
        return
    landing.archive(obj, manifest.submission_id)
    if state is None or state.state in {"received", "failed"}:
        _mark(workspace, manifest, "staged")  # a run may be advancing any later state: it is left to it
    result.received.append(manifest)


def _refuse(landing: LandingZone, obj: LandingObject, reason: str) -> None:
    """Move a refused entry out of the landing area unread, and tell the charity and the analyst why."""
    log.warning("refused %s/%s unread: %s", obj.charity_id, obj.key, reason)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    landing.archive(obj, f"refused/{stamp}-{uuid.uuid4().hex[:8]}")
    code, why = reason.split(": ", 1)
    note = {
        "status": "refused",
        "file_name": obj.name,
        "code": code,
        "message": f"'{obj.name}' was not read: it is {why}. Put the file itself in your area, not a link to it.",
    }
    landing.write_feedback(
        obj.charity_id,
        f"refused-{stamp}-{uuid.uuid4().hex[:8]}.json",
        json.dumps(note, indent=2).encode(),
        "application/json",
    )


def _tell_duplicate(landing: LandingZone, obj: LandingObject, submission_id: str) -> None:
    note = {
        "status": "duplicate",
        "file_name": obj.name,
        "duplicate_of": submission_id,
        "message": f"'{obj.name}' is identical to a file you already sent (submission {submission_id}), "
        "so it was not processed again. Its feedback report still applies.",
    }
    landing.write_feedback(
        obj.charity_id,
        f"{submission_id}.duplicate-{uuid.uuid4().hex[:8]}.json",
        json.dumps(note, indent=2).encode(),
        "application/json",
    )


def purge_submission(workspace: Workspace, submission_id: str) -> list[Path]:
    """Delete a submission's raw and identifiable copies (source file, staged contacts, quarantine).

    The manifest and the feedback report stay, so the submission's history remains and the same
    file is still recognised as a duplicate if it is dropped again.
    """
    removed = []
    directory = submission_dir(workspace, submission_id)
    keep = {MANIFEST, REPORT_FILE, STATE_FILE}
    for path in sorted(directory.iterdir()) if directory.exists() else []:
        if path.name not in keep:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed.append(path)
    quarantine = workspace.quarantine / submission_id
    if quarantine.exists():
        shutil.rmtree(quarantine)
        removed.append(quarantine)
    return removed
