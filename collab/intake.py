"""Intake: take files out of the landing zone into staging, one submission per distinct content.

A submission's id is ``<charity>-<first 12 hex digits of its SHA-256>``, so the same bytes dropped
twice by the same charity are received once; the copy is archived as a duplicate and the charity is
told. Intake holds a file lock, so the sensor and ``collab run`` can never take the same file twice.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock
from pydantic import BaseModel

from collab.landing import LandingObject, LandingZone
from collab.workspace import Workspace

MANIFEST = "manifest.json"


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
            incoming = workspace.staging / f".incoming-{uuid.uuid4().hex}"
            try:
                sha256 = landing.fetch(obj, incoming)
                submission_id = f"{obj.charity_id}-{sha256[:12]}"
                target = submission_dir(workspace, submission_id)
                if (target / MANIFEST).exists():
                    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
                    landing.archive(obj, f"duplicates/{stamp}-{submission_id}")
                    _tell_duplicate(landing, obj, submission_id)
                    result.duplicates.append((obj, submission_id))
                    continue
                target.mkdir(parents=True, exist_ok=True)
                source_file = "source" + _source_suffix(obj.name)
                incoming.replace(target / source_file)
                archived_to = landing.archive(obj, submission_id)
                manifest = SubmissionManifest(
                    submission_id=submission_id,
                    charity_id=obj.charity_id,
                    original_name=obj.name,
                    object_key=obj.key,
                    size=obj.size,
                    sha256=sha256,
                    received_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
                    archived_to=archived_to,
                    source_file=source_file,
                )
                # The manifest is written last: a submission exists only once it is complete.
                (target / MANIFEST).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
                result.received.append(manifest)
            finally:
                incoming.unlink(missing_ok=True)
    return result


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
    keep = {MANIFEST, "report.json"}
    for path in sorted(directory.iterdir()) if directory.exists() else []:
        if path.name not in keep:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed.append(path)
    quarantine = workspace.quarantine / submission_id
    if quarantine.exists():
        shutil.rmtree(quarantine)
        removed.append(quarantine)
    return removed
