"""Intake: take a landed file into staging, one submission per distinct content.

Every landed file is a Dagster partition named ``<charity>/<file stem>/<short hash>`` (``partition_key_for``),
known from the listing alone, so the sensor requests runs without reading a byte. The run's first step
(``receive_partition``) copies and hashes the file: its submission id is ``<charity>-<first 12 hex digits of
its SHA-256>``, so the same bytes dropped twice by the same charity are processed once; the other copy is
archived as a duplicate and the charity is told. A receipt per partition (``staging/.partitions/``) says
which submission it became. The check-and-create holds a file lock, so two runs of identical content,
at the same time or not, never both process it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import html
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock
from pydantic import BaseModel

from collab.faults import crash_point
from collab.landing import (
    ENCRYPTED_WITH_OWN_KEY,
    FOLDERS_TOO_DEEP,
    NAME_NOT_TEXT,
    LandingObject,
    LandingObjectGone,
    LandingObjectRefused,
    LandingZone,
    duplicate_archive_name,
    shown_name,
)
from collab.registry import CHARITY_ID_TEXT
from collab.states import STATE_FILE, mark_state, read_state, submission_states, write_state
from collab.workspace import Workspace

MANIFEST = "manifest.json"
# A charity's id and the first 12 hex digits of the file's SHA-256.
SUBMISSION_ID = re.compile(rf"{CHARITY_ID_TEXT}-[0-9a-f]{{12}}\Z")
REPORT_FILE = "report.json"
RECEIPTS = ".partitions"
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
    # The partition whose run takes the submission through (None for submissions received before partitions had names).
    partition_key: str | None = None

    @property
    def name(self) -> str:
        """The submission's Dagster partition: how the analyst and the CLI call it."""
        return self.partition_key or self.submission_id


class Receipt(BaseModel):
    """What a partition's landed file became: a submission, or a duplicate of one (then not processed again)."""

    partition_key: str
    submission_id: str
    duplicate: bool
    archive_name: str


def readable_stem(file_name: str) -> str:
    """A file's name without its extension, safe on every file system, in S3 keys and Dagster partition keys."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", file_name.rsplit(".", 1)[0]).strip("-")[:60] or "file"


def partition_key_for(obj: LandingObject) -> str:
    """The partition of a landed file, ``<charity>/<file stem>/<short hash>``: readable, stable and unique.

    The stem keeps only letters, digits, ``_`` and ``-`` (Dagster refuses ``...`` and control characters in
    partition keys, and ``,|[]`` break its partition selections). The hash is of the charity, the key and the
    version (size and modification time, or the S3 ETag), so a file keeps its key from tick to tick and a
    changed or re-dropped one gets a new key. Charity ids are slugs, so the key splits back on ``/``.
    """
    digest = hashlib.sha256(f"{obj.charity_id}\0{obj.key}\0{obj.version}".encode()).hexdigest()[:8]
    return f"{obj.charity_id}/{readable_stem(obj.name)}/{digest}"


def submission_dir(workspace: Workspace, submission_id: str) -> Path:
    """A submission's folder in staging. Only a submission id is taken: a path ('../staging/<id>', given to
    `collab purge`) once deleted the records it keeps."""
    if not SUBMISSION_ID.match(submission_id):
        raise ValueError(f"{submission_id!r} is not a submission id (a charity's id, '-' and 12 hex digits)")
    return workspace.staging / submission_id


def load_manifest(workspace: Workspace, submission_id: str) -> SubmissionManifest:
    path = submission_dir(workspace, submission_id) / MANIFEST
    return SubmissionManifest.model_validate_json(path.read_text(encoding="utf-8"))


def _receipt_path(workspace: Workspace, partition_key: str) -> Path:
    return workspace.staging / RECEIPTS / f"{partition_key}.json"


def read_receipt(workspace: Workspace, partition_key: str) -> Receipt | None:
    """What the partition's file became, if it was received; a partition named by its submission id (before
    partitions had names) is that submission."""
    path = _receipt_path(workspace, partition_key)
    if path.exists():
        return Receipt.model_validate_json(path.read_text(encoding="utf-8"))
    if SUBMISSION_ID.match(partition_key) and (submission_dir(workspace, partition_key) / MANIFEST).exists():
        return Receipt(
            partition_key=partition_key, submission_id=partition_key, duplicate=False, archive_name=partition_key
        )
    return None


def manifest_of_partition(workspace: Workspace, partition_key: str) -> SubmissionManifest:
    """The submission a partition's run processes (its run's first step received it)."""
    receipt = read_receipt(workspace, partition_key)
    if receipt is None:
        raise FileNotFoundError(f"partition {partition_key} has not been received: submission_file has not run")
    return load_manifest(workspace, receipt.submission_id)


def _write_atomically(path: Path, text: str) -> None:
    """``text`` written whole to a temporary file, flushed to the disk, then renamed over ``path``: after a crash or
    a power cut the file is the old one or the new one, never empty (as ``collab.states.write_state``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)


@contextmanager
def _intake_lock(workspace: Workspace) -> Iterator[None]:
    workspace.staging.mkdir(parents=True, exist_ok=True)
    # An OS lock (flock on POSIX, LockFileEx on Windows): released by the OS if the holder dies.
    with FileLock(workspace.staging / ".intake.lock"):
        yield


def _source_suffix(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return suffix if suffix.isascii() and suffix[1:].isalnum() and len(suffix) <= 8 else ""


# Whether a run of a partition is going right now (the pipeline asks Dagster); without Dagster, never.
PartitionActive = Callable[[str], bool]


def _never_active(_: str) -> bool:
    return False


def settled_objects(
    landing: LandingZone, charity_ids: list[str], *, settle_seconds: float
) -> tuple[list[LandingObject], list[tuple[LandingObject, str]]]:
    """What ``collab run`` takes, as the sensor does: every entry unchanged for ``settle_seconds`` (refused
    entries included, to be moved aside), and the files still being written, with why they wait.

    A file changed more recently is waited for once (up to ``settle_seconds``), so a file dropped just
    before the run is still taken; one still changing after that is being written and is left for the
    next pass, never taken half-written. Nothing is read: the run of each file's partition receives it.
    """
    now = time.time()
    ages = [now - obj.modified.timestamp() for obj in landing.pending(charity_ids) if obj.refusal is None]
    # A file dated in the future (the clock of whatever wrote it is ahead) is not waited for: it waits, and says so.
    if young := [age for age in ages if 0 <= age < settle_seconds]:
        time.sleep(settle_seconds - min(young) + 0.05)
    settled = landing.pending(charity_ids, min_age_seconds=settle_seconds)
    keys = {(obj.charity_id, obj.key) for obj in settled}
    waiting = [
        (obj, _why_waiting(obj, settle_seconds))
        for obj in landing.pending(charity_ids)
        if (obj.charity_id, obj.key) not in keys
    ]
    return settled, waiting


def _why_waiting(obj: LandingObject, settle_seconds: float) -> str:
    if obj.modified.timestamp() > time.time():
        return (
            f"dated in the future ({obj.modified:%Y-%m-%d %H:%M} UTC; is a clock wrong?): taken once that time has "
            f"passed and it has not changed for {settle_seconds:g} s"
        )
    return f"still being written: changed in the last {settle_seconds:g} s"


def find_landed(landing: LandingZone, partition_key: str) -> LandingObject:
    """The landed file a partition names, as it is now; gone if it was removed or changed since it was named."""
    charity_id = partition_key.split("/", 1)[0]
    for obj in landing.pending([charity_id]):
        if partition_key_for(obj) == partition_key:
            return obj
    raise LandingObjectGone(f"the file of {partition_key} is no longer in the landing area as it was listed")


def receive_partition(
    workspace: Workspace, landing: LandingZone, partition_key: str, *, is_active: PartitionActive = _never_active
) -> Receipt:
    """Take the partition's landed file into staging (a partition taken before is not taken again)."""
    if (receipt := read_receipt(workspace, partition_key)) is not None:
        _archive_leftover(landing, partition_key, receipt)
        return receipt
    return receive_object(workspace, landing, find_landed(landing, partition_key), is_active=is_active)


def _archive_leftover(landing: LandingZone, partition_key: str, receipt: Receipt) -> None:
    """A run stopped between writing a partition's receipt and archiving its file: archive it now."""
    try:
        landing.archive(find_landed(landing, partition_key), receipt.archive_name)
    except LandingObjectGone:
        return


def receive_object(
    workspace: Workspace, landing: LandingZone, obj: LandingObject, *, is_active: PartitionActive = _never_active
) -> Receipt:
    """Copy and hash one landed file, then, under the intake lock, make it a new submission, take up an
    unfinished one with the same bytes, or archive it as a duplicate. ``is_active`` says whether another
    partition's run is processing a submission right now (its copy is then a duplicate, not a resumption).
    An entry that is not a regular file of the area is moved aside unread, and ``LandingObjectRefused`` raised."""
    try:
        return _receive(workspace, landing, obj, is_active)
    except LandingObjectRefused as refused:
        refuse(landing, obj, str(refused))
        raise


def _receive(workspace: Workspace, landing: LandingZone, obj: LandingObject, is_active: PartitionActive) -> Receipt:
    if obj.refusal is not None:
        raise LandingObjectRefused(*obj.refusal.split(": ", 1))
    workspace.staging.mkdir(parents=True, exist_ok=True)
    sweep_abandoned_copies(workspace)
    with _incoming_copy(workspace) as incoming:
        return _stage(workspace, landing, obj, is_active, incoming)


def _stage(
    workspace: Workspace, landing: LandingZone, obj: LandingObject, is_active: PartitionActive, incoming: Path
) -> Receipt:
    target: Path | None = None
    partition_key = partition_key_for(obj)
    try:
        sha256 = landing.fetch(obj, incoming)
        crash_point("before-staging")
        submission_id = f"{obj.charity_id}-{sha256[:12]}"
        target = submission_dir(workspace, submission_id)
        with _intake_lock(workspace):
            if (target / MANIFEST).exists():
                manifest = load_manifest(workspace, submission_id)
                return _received_again(workspace, landing, obj, manifest, is_active, incoming)
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
                # When the file reached its area: the order the charity sent its files in, which decides the
                # quarters two of them cover, whatever order their loads end in.
                received_at=obj.arrived or obj.modified,
                archived_to=landing.archive_location(obj, submission_id),
                source_file=source_file,
                partition_key=partition_key,
            )
            # The manifest, receipt and state are written before the landed file is archived, atomically: a run
            # stopped at any point leaves either the landed file alone (taken again) or a received submission.
            _write_atomically(target / MANIFEST, manifest.model_dump_json(indent=2))
            receipt = _write_receipt(workspace, partition_key, submission_id, duplicate=False)
            mark_state(workspace, manifest, "received")
            crash_point("mid-staging")
            _archive_as_read(landing, obj, submission_id, target / source_file)
            mark_state(workspace, manifest, "staged")
        crash_point("after-staging")
        return receipt
    except BaseException:
        # Nothing half-received stays behind: the landed file is still there for the next pass.
        if target is not None and target.exists() and not (target / MANIFEST).exists():
            shutil.rmtree(target, ignore_errors=True)
        raise


_INCOMING = ".incoming-"
# A copy being fetched is locked by the process fetching it, and the system drops the lock when that process ends,
# however it ends: an unlocked copy was left by a run killed mid-copy (a trial found them kept for good, raw). A
# copy is locked before a byte is written to it, so an unlocked one holding bytes is abandoned; an empty one only
# once it is this old, so the instant between making a copy and locking it is never mistaken for one.
_ABANDONED_EMPTY_AFTER_SECONDS = 60.0


@contextmanager
def _incoming_copy(workspace: Workspace) -> Iterator[Path]:
    """A new path in staging for one landed file's copy, private to this process and locked while it is held."""
    path = workspace.staging / f"{_INCOMING}{uuid.uuid4().hex}"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield path
    finally:
        path.unlink(missing_ok=True)
        os.close(descriptor)


def sweep_abandoned_copies(workspace: Workspace) -> list[Path]:
    """Delete the copies of landed files that runs killed mid-copy left in staging (their landed files are still
    there, and are taken again); return them."""
    swept = []
    for path in workspace.staging.glob(f"{_INCOMING}*"):
        try:
            info = path.lstat()
            if not info.st_size and time.time() - info.st_mtime < _ABANDONED_EMPTY_AFTER_SECONDS:
                continue
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # taken or swept by another process meanwhile, or not a file of ours
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live run's copy
        else:
            path.unlink(missing_ok=True)
            swept.append(path)
        finally:
            os.close(descriptor)
    return swept


def _write_receipt(workspace: Workspace, partition_key: str, submission_id: str, *, duplicate: bool) -> Receipt:
    receipt = Receipt(
        partition_key=partition_key,
        submission_id=submission_id,
        duplicate=duplicate,
        archive_name=duplicate_archive_name(submission_id, dt.datetime.now(dt.UTC)) if duplicate else submission_id,
    )
    _write_atomically(_receipt_path(workspace, partition_key), receipt.model_dump_json(indent=2))
    return receipt


def _received_again(
    workspace: Workspace,
    landing: LandingZone,
    obj: LandingObject,
    manifest: SubmissionManifest,
    is_active: PartitionActive,
    copy: Path,
) -> Receipt:
    """The same bytes (``copy``) arrived again. A finished submission, or one another run is processing, makes this a
    duplicate; an unfinished one nobody is processing (its run stopped), one that failed on an error of ours, or a
    loaded one whose rows a later file replaced (in part or whole) is taken up again under this partition instead, so
    its charity does get feedback (and, for the last, its rows back)."""
    partition_key = partition_key_for(obj)
    state = read_state(workspace, manifest.submission_id)
    # Submissions from before states were kept have none; they were finished, as a report shows.
    finished = (
        state.final if state is not None else (submission_dir(workspace, manifest.submission_id) / REPORT_FILE).exists()
    )
    again = state is not None and (state.state == "failed" or state.replaced)
    overtaken = finished and not again and _sent_before_and_unfinished(workspace, landing, obj, manifest)
    # The run receiving this partition is going: it is not another run, when the submission is this partition's own
    # (stopped between its manifest and its receipt; a trial's Ctrl-C did, and its file was called a duplicate of
    # itself, never processed, and its quarter released without it).
    taken_elsewhere = manifest.name != partition_key and is_active(manifest.name)
    if (finished and not again and not overtaken) or (not finished and taken_elsewhere):
        receipt = _write_receipt(workspace, partition_key, manifest.submission_id, duplicate=True)
        _archive_as_read(landing, obj, receipt.archive_name, copy)
        _tell_duplicate(landing, obj, manifest.submission_id, finished=finished)
        return receipt
    # Sent again on purpose (to have its rows back), it counts from when it arrived again, after the files that
    # replaced it, and before any sent after it (the attacker's second trial: counted from when the run took it,
    # it beat a correction sent after it).
    arrived = obj.arrived or obj.modified
    manifest = manifest.model_copy(update={"partition_key": partition_key, "received_at": arrived})
    directory = submission_dir(workspace, manifest.submission_id)
    if not (directory / manifest.source_file).exists():  # purged since (``purge_submission``): checked from this copy
        copy.replace(directory / manifest.source_file)
    _write_atomically(directory / MANIFEST, manifest.model_dump_json(indent=2))
    receipt = _write_receipt(workspace, partition_key, manifest.submission_id, duplicate=False)
    _archive_as_read(landing, obj, manifest.submission_id, directory / manifest.source_file)
    if state is None or state.state in {"received", "failed"} or state.replaced or overtaken:
        mark_state(workspace, manifest, "staged")
    else:  # a later state is kept (the run starts the job from the top and advances it); only its name changes
        write_state(workspace, **state.model_dump(exclude={"updated_at", "name"}), name=partition_key)
    return receipt


def _archive_as_read(landing: LandingZone, obj: LandingObject, archive_name: str, copy: Path) -> None:
    """Archive a received file as it was read: moved there, or, if its charity changed or removed it after it was read
    whole, its copy (``copy``) written there instead. A changed file stays for the next pass, a submission of its own
    that arrived later. An attacker's trial: a file appended to after it was read, before it was moved, had its
    receipt and manifest written, then its run failed, the charity told of an error of ours (E_INTERNAL)."""
    try:
        landing.archive(obj, archive_name)
    except LandingObjectGone:
        landing.archive_copy(obj, archive_name, copy)


def _sent_before_and_unfinished(
    workspace: Workspace, landing: LandingZone, obj: LandingObject, manifest: SubmissionManifest
) -> bool:
    """Whether a file its charity sent after the finished submission ``manifest`` and before ``obj`` (the same bytes
    again) is not finished: a submission received in between and not final, or a file waiting in its area. Taken in
    the order sent, that file could replace the submission's quarters before this copy came, so the copy is taken up
    again (counted from when it arrived, after that file) rather than called a duplicate. Files sent before the
    submission, or after the copy, cannot come between them, so they leave a copy a duplicate (the demo's "Copy of"
    file, sent beside its charity's other quarters, was taken up again while they were being checked).

    An attacker's trial: a charity sent A, then B replacing it, then both again; with two workers B's copy came while
    A's was being checked, B was not yet replaced, so its copy was a duplicate, and A, the older extract, won; with one
    worker, B won."""
    arrived = obj.arrived or obj.modified

    def in_between(sent: dt.datetime) -> bool:
        return manifest.received_at < sent <= arrived

    for other in submission_states(workspace, obj.charity_id):
        if other.submission_id == manifest.submission_id or other.final:
            continue
        try:
            sent = load_manifest(workspace, other.submission_id).received_at
        except (OSError, ValueError):
            return True  # being received or purged at this moment: assume it comes between
        if in_between(sent):
            return True
    return any(
        waiting.key != obj.key and waiting.refusal is None and in_between(waiting.arrived or waiting.modified)
        for waiting in landing.pending([obj.charity_id])
    )


def refuse(landing: LandingZone, obj: LandingObject, reason: str) -> None:
    """Move a refused entry out of the landing area unread, and tell the charity and the analyst why."""
    log.warning("refused %s/%s unread: %s", obj.charity_id, shown_name(obj.key), reason)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    code, why = reason.split(": ", 1)
    if code == ENCRYPTED_WITH_OWN_KEY:
        landing.discard(obj)  # nothing can copy it without the key
    else:
        landing.archive(obj, f"refused/{stamp}-{uuid.uuid4().hex[:8]}")
    name = shown_name(obj.name)
    advice = {
        NAME_NOT_TEXT: "Rename it using plain letters and digits, and put it back.",
        FOLDERS_TOO_DEEP: "It was moved aside whole; put the files it holds nearer the top of your area.",
        ENCRYPTED_WITH_OWN_KEY: "It was removed from your area; upload it again without an encryption key of your own.",
    }.get(code, "Put the file itself in your area, not a link to it.")
    note = {
        "status": "refused",
        "file_name": name,
        "code": code,
        "message": f"'{name}' was not read: it is {why}. {advice}",
    }
    _write_notice(landing, obj.charity_id, f"refused-{stamp}-{uuid.uuid4().hex[:8]}", note)


def _write_notice(landing: LandingZone, charity_id: str, name: str, note: dict[str, str]) -> None:
    """A short notice about one file in the charity's feedback area, as JSON and as a web page (like a report):
    read by people who never open JSON as well as by their systems."""
    landing.write_feedback(charity_id, f"{name}.json", json.dumps(note, indent=2).encode(), "application/json")
    title = f"{note['status'].capitalize()}: {note['file_name']}"
    page = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n<main>\n<h1>{html.escape(title)}</h1>\n"
        f"<p>{html.escape(note['message'])}</p>\n</main>\n</body>\n</html>\n"
    )
    landing.write_feedback(charity_id, f"{name}.html", page.encode(), "text/html; charset=utf-8")


def _tell_duplicate(landing: LandingZone, obj: LandingObject, submission_id: str, *, finished: bool) -> None:
    applies = "Its feedback report still applies." if finished else "Its feedback report follows shortly."
    note = {
        "status": "duplicate",
        "file_name": obj.name,
        "duplicate_of": submission_id,
        "message": f"'{obj.name}' is identical to a file you already sent (submission {submission_id}), "
        f"so it was not processed again. {applies}",
    }
    _write_notice(landing, obj.charity_id, f"{submission_id}.duplicate-{uuid.uuid4().hex[:8]}", note)


def purge_submission(workspace: Workspace, submission_id: str) -> list[Path]:
    """Delete a submission's raw and identifiable copies (source file, staged contacts, quarantine).

    The manifest and the feedback report stay, so the submission's history remains and the same
    file is still recognised as a duplicate if it is dropped again.
    """
    removed = []
    directory = submission_dir(workspace, submission_id)  # a submission id, never a path
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
