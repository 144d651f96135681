"""The landing zone: where charities drop files, and where their feedback goes back.

One interface, two implementations: a local folder (the embedded default) and an S3 bucket per
charity. The sensor and the assets only use this interface, so they run unchanged on both.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import shutil
import stat
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from botocore.exceptions import ClientError

from collab import s3
from collab.faults import crash_point

CHUNK_BYTES = 1024 * 1024
# A charity's archive holds each submission's file under its id, and each later copy of the same bytes (a duplicate)
# under ``duplicates/<stamp>-<id>``: a purge deletes them all.
DUPLICATES = "duplicates"


def duplicate_archive_name(submission_id: str, at: dt.datetime) -> str:
    """Where in its charity's archive a duplicate of ``submission_id`` received ``at`` goes."""
    return f"{DUPLICATES}/{at.strftime('%Y%m%dT%H%M%S')}-{submission_id}"


def archived_copy_of(archive_name: str) -> str:
    """The submission whose file an archive folder (``archive_name``) holds, its own or a duplicate's."""
    duplicate, _, stamped = archive_name.partition("/")
    return stamped.partition("-")[2] if duplicate == DUPLICATES and stamped else archive_name


# Files an editor or a copy in progress leaves behind; never submissions.
_IGNORED_PREFIXES = (".", "~$")
_IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")


@dataclass(frozen=True)
class LandingObject:
    charity_id: str
    key: str
    size: int
    version: str
    modified: dt.datetime
    # When the file reached the area: for a local file its status change time (a copy, a move into the folder or
    # a rename sets it, and no one can set it back, as a copy that keeps an old modification time would); for an
    # S3 object its upload time, which is ``modified``. It orders the files a charity sends (``receive_object``).
    arrived: dt.datetime | None = None
    # Why this entry must never be read (a link, a device, a pipe...), as "CODE: explanation"; None for a file.
    refusal: str | None = None

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


class LandingObjectGone(Exception):
    """A listed file that vanished or changed before it could be taken: the next pass sees it as it is then."""


class LandingObjectRefused(Exception):
    """An entry in a landing area that is not a regular file of the area's own, so it is never read; or an object
    nothing can read without a key of the charity's own."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


NOT_A_REGULAR_FILE = "E_NOT_A_REGULAR_FILE"
# An object stored encrypted with a key of the charity's own (S3's SSE-C): nothing can read or copy it without that
# key, which the collaborative never holds. A trial's such upload was skipped at every run with the server's words.
ENCRYPTED_WITH_OWN_KEY = "E_ENCRYPTED_WITH_OWN_KEY"
NAME_NOT_TEXT = "E_FILE_NAME_NOT_TEXT"
_NAME_NOT_TEXT = (
    "named with bytes that are not text (letters saved in an old encoding, such as Latin-1), so it cannot be named "
    "in feedback or kept track of"
)


def shown_name(name: str) -> str:
    """A name as it can be shown and stored: bytes of a name that are not UTF-8 (which Python keeps as lone
    surrogates) become the replacement character, never an error when written."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# How many folders down a landing area is read. A walk 1,100 folders deep ended in a RecursionError (Python 3.11's
# os.walk recurses) that stopped every charity's intake, and the portal's list of files.
MAX_FOLDER_DEPTH = 16
FOLDERS_TOO_DEEP = "E_FOLDERS_TOO_DEEP"
_FOLDERS_TOO_DEEP = (
    f"a folder more than {MAX_FOLDER_DEPTH} folders down, which is not opened: files are read at most "
    f"{MAX_FOLDER_DEPTH} folders down"
)


def _entries(area: Path) -> Iterator[tuple[PurePosixPath, os.stat_result, bool]]:
    """The entries of ``area`` to list, folder by folder in name order: each one's path in the area, its own ``lstat``,
    and whether it is a folder too deep to open (listed, to be refused, and not entered). A link is listed, never
    followed, whatever it points to.

    Each folder is reached from the area one folder at a time with ``O_NOFOLLOW`` (``_open_folder``), listed through
    its descriptor, and its entries looked at relative to it: a charity's process that swapped one of its folders
    for a link to another charity's area, between the listing of its parent and its own, once had that area's files
    listed as its own (23 times in 2,000 listings)."""
    folders = [PurePosixPath()]
    while folders:
        relative = folders.pop()
        try:
            descriptor = _open_folder(area, relative)
        except OSError:  # gone, or swapped for a link, since it was listed: the next pass lists it as it is then
            continue
        try:
            looked_at = _looked_at(descriptor)
        except OSError:
            continue
        finally:
            os.close(descriptor)
        inner = [relative / name for name, info in looked_at if stat.S_ISDIR(info.st_mode)]
        yield from ((relative / name, info, False) for name, info in looked_at if not stat.S_ISDIR(info.st_mode))
        deep = len(relative.parts) + 1 > MAX_FOLDER_DEPTH
        yield from ((relative / name, info, True) for name, info in looked_at if deep and stat.S_ISDIR(info.st_mode))
        folders.extend(reversed([] if deep else inner))


def _looked_at(descriptor: int) -> list[tuple[str, os.stat_result]]:
    """The entries of the folder open at ``descriptor``, in name order, each with its own ``lstat`` (one removed
    since the folder was listed is left out)."""
    looked_at = []
    with os.scandir(descriptor) as listing:
        for entry in sorted(listing, key=lambda entry: entry.name):
            try:
                looked_at.append((entry.name, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue
    return looked_at


def _open_folder(area: Path, relative: PurePosixPath) -> int:
    """A descriptor of the folder at ``relative`` in ``area``, each folder of the path opened relative to the one
    before with ``O_NOFOLLOW``: a link anywhere along it raises ``OSError``."""
    directory = os.open(area, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in relative.parts:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            os.close(directory)
            directory = inner
    except OSError:
        os.close(directory)
        raise
    return directory


def refusal_of(mode: int, links: int) -> str | None:
    """Why an entry with this ``lstat`` mode and link count may not be read, or None if it may."""
    if stat.S_ISLNK(mode):
        return "a symbolic link; links are never followed, so nothing outside your area can be read through one"
    if not stat.S_ISREG(mode):
        kind = "a named pipe" if stat.S_ISFIFO(mode) else "a device or socket"
        return f"{kind}, not a file"
    if links > 1:
        return "a hard link to a file that also exists elsewhere; copy the file in instead of linking it"
    return None


def is_ignored_name(name: str) -> bool:
    return name.startswith(_IGNORED_PREFIXES) or name.lower().endswith(_IGNORED_SUFFIXES)


def landing_name(name: str, file_format: str | None) -> str:
    """The name a file is sent under (by the portal, or by `collab submit`): one the landing area takes. An editor's
    or a download's temporary name ('~$contacts.xlsx', 'contacts.csv.crdownload', 'contacts.tmp') is never picked up
    there, and such a file sat in the area for ever, so it gains the extension of what the check found it to be."""
    if not is_ignored_name(name):
        return name
    stripped = name.lstrip(".~$") or "file"
    return stripped if not is_ignored_name(stripped) else f"{stripped}.{file_format or 'csv'}"


def copy_hashing(source: object, destination: Path) -> str:
    """Stream a binary file object to ``destination``; return the SHA-256 of what was written."""
    digest = hashlib.sha256()
    with destination.open("wb") as out:
        while chunk := source.read(CHUNK_BYTES):  # type: ignore[attr-defined]
            digest.update(chunk)
            out.write(chunk)
            crash_point("mid-copy")
    return digest.hexdigest()


class LandingZone(ABC):
    """Where submissions arrive and feedback leaves."""

    @abstractmethod
    def create_area(self, charity_id: str) -> None:
        """Create the charity's landing and feedback areas."""

    @abstractmethod
    def pending(self, charity_ids: Iterable[str], min_age_seconds: float = 0.0) -> list[LandingObject]:
        """Files waiting in the charities' landing areas, at least ``min_age_seconds`` old."""

    @abstractmethod
    def fetch(self, obj: LandingObject, destination: Path) -> str:
        """Copy a landed file to ``destination``; return its SHA-256."""

    @abstractmethod
    def archive(self, obj: LandingObject, archive_name: str) -> str:
        """Move a processed file out of the landing area into the archive; return where it went."""

    @abstractmethod
    def archive_copy(self, obj: LandingObject, archive_name: str, copy: Path) -> str:
        """Put ``copy``, the bytes of ``obj`` as they were read, where ``archive`` would have moved it (for a file
        changed or removed after it was read whole, which ``archive`` leaves); return where it went."""

    @abstractmethod
    def discard(self, obj: LandingObject) -> None:
        """Delete a refused entry that cannot be moved into the archive (``ENCRYPTED_WITH_OWN_KEY``), as it was
        listed: the charity keeps its own copy, and is told to send it again."""

    @abstractmethod
    def archive_location(self, obj: LandingObject, archive_name: str) -> str:
        """Where ``archive`` puts the file (known before it is moved, so a manifest can say so first)."""

    @abstractmethod
    def purge_archive(self, charity_id: str, submission_id: str) -> list[str]:
        """Delete a submission's archived file for good, and every duplicate of it archived since (an analyst's
        purge); return what was deleted."""

    @abstractmethod
    def write_feedback(self, charity_id: str, name: str, content: bytes, content_type: str) -> str:
        """Write a feedback file the charity can read; return where it went."""

    @abstractmethod
    def describe(self) -> str:
        """Where this landing zone is, for people."""


@dataclass(frozen=True)
class LocalLandingZone(LandingZone):
    """Folders under the workspace: ``landing/<charity>/``, ``feedback/<charity>/``, ``archive/<charity>/``."""

    root: str

    def _path(self, area: str, charity_id: str) -> Path:
        return Path(self.root) / area / charity_id

    def create_area(self, charity_id: str) -> None:
        for area in ("landing", "feedback", "archive"):
            self._path(area, charity_id).mkdir(parents=True, exist_ok=True)

    def pending(self, charity_ids: Iterable[str], min_age_seconds: float = 0.0) -> list[LandingObject]:
        """Regular files of the area (settled for ``min_age_seconds``), and every other entry marked as refused.

        The area is walked without following links: a link, pipe or device is listed by its own ``lstat``
        and never opened, and a linked folder is never entered.
        """
        now = time.time()
        found = []
        for charity_id in charity_ids:
            area = self._path("landing", charity_id)
            for relative, info, too_deep in _entries(area):
                if any(is_ignored_name(part) for part in relative.parts):
                    continue
                refusal = refusal_of(info.st_mode, info.st_nlink)
                refusal = None if refusal is None else f"{NOT_A_REGULAR_FILE}: {refusal}"
                if too_deep:
                    refusal = f"{FOLDERS_TOO_DEEP}: {_FOLDERS_TOO_DEEP}"
                if refusal is None and shown_name(relative.as_posix()) != relative.as_posix():
                    refusal = f"{NAME_NOT_TEXT}: {_NAME_NOT_TEXT}"
                if refusal is None and min_age_seconds > 0 and now - info.st_mtime < min_age_seconds:
                    continue  # (a file dated in the future is listed, unsettled, only when every file is asked for)
                found.append(
                    LandingObject(
                        charity_id=charity_id,
                        key=relative.as_posix(),
                        size=info.st_size,
                        version=f"{info.st_size}-{info.st_mtime_ns}",
                        modified=dt.datetime.fromtimestamp(info.st_mtime, dt.UTC),
                        arrived=dt.datetime.fromtimestamp(info.st_ctime, dt.UTC),
                        refusal=refusal,
                    )
                )
        return found

    def _folder_of(self, obj: LandingObject) -> tuple[int, str]:
        """A descriptor of the folder holding the listed entry, and the entry's name in it. Every folder of the path
        is opened relative to the one before with ``O_NOFOLLOW``, so a link swapped in along it after listing is
        refused, not followed."""
        parts = PurePosixPath(obj.key).parts
        if not parts or any(part in {"", ".", ".."} for part in parts) or PurePosixPath(obj.key).is_absolute():
            raise LandingObjectRefused("E_PATH_OUTSIDE_AREA", f"{obj.key!r} is not a path inside the area")
        try:
            directory = os.open(self._path("landing", obj.charity_id), os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError as error:
            raise LandingObjectGone(f"{obj.charity_id}'s landing area is gone") from error
        try:
            for part in parts[:-1]:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
                os.close(directory)
                directory = inner
        except FileNotFoundError as error:
            os.close(directory)
            raise LandingObjectGone(f"{obj.charity_id}/{obj.key} was removed before it could be taken") from error
        except OSError as error:
            os.close(directory)
            if error.errno in {errno.ELOOP, errno.ENOTDIR}:
                raise LandingObjectRefused(NOT_A_REGULAR_FILE, refusal_of(stat.S_IFLNK, 1) or "") from error
            raise
        return directory, parts[-1]

    def _open_regular(self, obj: LandingObject) -> int:
        """Open the listed entry for reading only if it is, right now, a regular file of the charity's area.

        Every component of the path is opened relative to the one before with ``O_NOFOLLOW``, so a link
        swapped in anywhere along it after listing is refused, not followed; ``O_NONBLOCK`` means a pipe
        swapped in cannot block the pipeline. Returns the open descriptor.
        """
        directory, name = self._folder_of(obj)
        try:
            descriptor = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory)
        except FileNotFoundError as error:
            raise LandingObjectGone(f"{obj.charity_id}/{obj.key} was removed before it could be taken") from error
        except OSError as error:
            if error.errno in {errno.ELOOP, errno.ENOTDIR}:
                raise LandingObjectRefused(NOT_A_REGULAR_FILE, refusal_of(stat.S_IFLNK, 1) or "") from error
            raise
        finally:
            os.close(directory)
        info = os.fstat(descriptor)
        if (refusal := refusal_of(info.st_mode, info.st_nlink)) is not None:
            os.close(descriptor)
            raise LandingObjectRefused(NOT_A_REGULAR_FILE, refusal)
        if f"{info.st_size}-{info.st_mtime_ns}" != obj.version:
            os.close(descriptor)
            raise LandingObjectGone(f"{obj.charity_id}/{obj.key} changed after it was listed (still being written?)")
        return descriptor

    def fetch(self, obj: LandingObject, destination: Path) -> str:
        descriptor = self._open_regular(obj)
        with os.fdopen(descriptor, "rb") as source:
            sha256 = copy_hashing(source, destination)
            after = os.fstat(source.fileno())
        if f"{after.st_size}-{after.st_mtime_ns}" != obj.version:
            raise LandingObjectGone(
                f"{obj.charity_id}/{obj.key} changed while it was being taken (still being written?)"
            )
        return sha256

    def archive_location(self, obj: LandingObject, archive_name: str) -> str:
        return str(self._path("archive", obj.charity_id) / archive_name / obj.name)

    def archive(self, obj: LandingObject, archive_name: str) -> str:
        target = Path(self.archive_location(obj, archive_name))
        target.parent.mkdir(parents=True, exist_ok=True)
        # A rename moves the entry itself (a link stays a link, a pipe is never opened); the workspace is one
        # file system, so nothing is ever copied. It is renamed in the folder reached as ``fetch`` reaches it (a
        # folder swapped for a link since is refused), and only as it was listed: a file written to since it was
        # read stays for the next pass, which reads it whole.
        directory, name = self._folder_of(obj)
        try:
            info = os.stat(name, dir_fd=directory, follow_symlinks=False)
            if f"{info.st_size}-{info.st_mtime_ns}" != obj.version:
                raise LandingObjectGone(f"{obj.charity_id}/{obj.key} changed after it was read; it is read again")
            os.rename(name, target, src_dir_fd=directory)
        except FileNotFoundError as error:
            raise LandingObjectGone(f"{obj.charity_id}/{obj.key} is no longer in the landing area") from error
        finally:
            os.close(directory)
        return str(target)

    def archive_copy(self, obj: LandingObject, archive_name: str, copy: Path) -> str:
        target = Path(self.archive_location(obj, archive_name))
        target.parent.mkdir(parents=True, exist_ok=True)
        with (
            tempfile.NamedTemporaryFile(dir=target.parent, prefix=".archiving-", delete=False) as partial,
            copy.open("rb") as source,
        ):
            shutil.copyfileobj(source, partial, CHUNK_BYTES)
        Path(partial.name).replace(target)  # whole or not at all
        return str(target)

    def discard(self, obj: LandingObject) -> None:
        directory, name = self._folder_of(
            obj
        )  # reached as ``fetch`` reaches it: a folder swapped for a link is refused
        try:
            info = os.stat(name, dir_fd=directory, follow_symlinks=False)
            if f"{info.st_size}-{info.st_mtime_ns}" != obj.version:
                raise LandingObjectGone(f"{obj.charity_id}/{obj.key} changed after it was listed; it is read again")
            os.unlink(name, dir_fd=directory)
        except FileNotFoundError:
            pass
        finally:
            os.close(directory)

    def purge_archive(self, charity_id: str, submission_id: str) -> list[str]:
        archive = self._path("archive", charity_id)
        duplicates = archive / DUPLICATES
        copies = [archive / submission_id]
        if duplicates.is_dir():
            copies += [
                d for d in sorted(duplicates.iterdir()) if archived_copy_of(f"{DUPLICATES}/{d.name}") == submission_id
            ]
        removed = []
        for copy in copies:
            if copy.exists():
                shutil.rmtree(copy)
                removed.append(str(copy))
        return removed

    def write_feedback(self, charity_id: str, name: str, content: bytes, content_type: str) -> str:
        target = self._path("feedback", charity_id) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(content)
        partial.replace(target)
        return str(target)

    def describe(self) -> str:
        return f"local folder {Path(self.root) / 'landing'}"

    def drop(self, charity_id: str, source: Path, name: str | None = None) -> Path:
        """Place a file in a charity's landing area atomically: what a charity does in local mode. Only a regular
        file: copying a device (/dev/zero) filled the disk, and a pipe waited for ever."""
        if not source.is_file():
            raise ValueError(f"{source} is not a file")
        area = self._path("landing", charity_id)
        area.mkdir(parents=True, exist_ok=True)
        target = area / (name or source.name)
        # Named apart from the file: a name near the 255 bytes a name may have, lengthened, could not be made at all.
        partial = area / f".{uuid.uuid4().hex}.partial"
        try:
            shutil.copyfile(source, partial)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        return target


class LandingAreaError(Exception):
    """A landing area that cannot be used (missing bucket, no right to create one)."""


# S3 keys are at most 1,024 bytes: a landed key near that long, under the archive's prefix, was refused by the
# server (KeyTooLongError) at every run, an error of ours each time (S3 trial).
_MAX_KEY_BYTES = 1024


def _archive_key(obj: LandingObject, archive_name: str) -> str:
    """Where in the archive bucket a landed object goes: under its charity and ``archive_name``, by its own key; a key
    too long for that by the first 16 hex digits of its SHA-256 and as much of its end (the file's name) as fits."""
    prefix = f"{obj.charity_id}/{archive_name}/"
    if len((prefix + obj.key).encode()) <= _MAX_KEY_BYTES:
        return prefix + obj.key
    digest = hashlib.sha256(obj.key.encode()).hexdigest()[:16]
    room = _MAX_KEY_BYTES - len(prefix.encode()) - len(digest) - 1
    return f"{prefix}{digest}-{obj.key.encode()[-room:].decode(errors='ignore')}"


# What S3 servers say when an object needs its own encryption key to be read (AWS: "The object was stored using a
# form of Server Side Encryption..."; SeaweedFS: "Requests specifying Server Side Encryption with Customer provided
# keys must provide the customer key.").
_ENCRYPTION_ASKED = "server side encryption"
# What S3 answers for an object removed, or replaced since it was listed (a conditional request on its ETag).
_GONE_OR_REPLACED = frozenset({"NoSuchKey", "404", "PreconditionFailed", "412"})


@dataclass(frozen=True)
class S3LandingZone(LandingZone):
    """A bucket per charity on an S3 server: ``landing-<charity>``, ``feedback-<charity>``, and ``collab-archive``.

    The pipeline's identity reads and removes landed objects, writes feedback and owns the archive.
    Only ``create_area`` needs the analyst's identity (creating buckets is an administrator's act).
    Every move is conditional on the ETag seen when listing, so an object a charity overwrites while
    it is being taken is left for the next pass instead of being archived unread.
    """

    endpoint: str
    access_key: str
    secret_key: str
    analyst_access_key: str | None = None
    analyst_secret_key: str | None = None

    def _s3(self) -> Any:
        return s3.client(self.endpoint, s3.Credentials(self.access_key, self.secret_key))

    def create_area(self, charity_id: str) -> None:
        self.create_buckets([s3.landing_bucket(charity_id), s3.feedback_bucket(charity_id), s3.ARCHIVE_BUCKET])

    def create_buckets(self, buckets: list[str]) -> None:
        """Create buckets that do not exist yet, as the analyst."""
        if not (self.analyst_access_key and self.analyst_secret_key):
            raise LandingAreaError(
                f"creating buckets needs the analyst's credentials ({s3.ANALYST_ACCESS_KEY_VAR}, {s3.ANALYST_SECRET_KEY_VAR})"
            )
        admin = s3.client(self.endpoint, s3.Credentials(self.analyst_access_key, self.analyst_secret_key))
        for bucket in buckets:
            try:
                admin.create_bucket(Bucket=bucket)
            except ClientError as error:
                if s3.error_code(error) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise

    def pending(self, charity_ids: Iterable[str], min_age_seconds: float = 0.0) -> list[LandingObject]:
        client = self._s3()
        now = dt.datetime.now(dt.UTC)
        found = []
        for charity_id in charity_ids:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=s3.landing_bucket(charity_id))
            try:
                for page in pages:
                    for item in page.get("Contents", []):
                        key, modified = item["Key"], item["LastModified"]
                        # A key ending in "/" is a folder marker, not a file.
                        if key.endswith("/") or any(is_ignored_name(part) for part in key.split("/")):
                            continue
                        if min_age_seconds > 0 and (now - modified).total_seconds() < min_age_seconds:
                            continue
                        found.append(
                            LandingObject(charity_id, key, int(item["Size"]), item["ETag"], modified.astimezone(dt.UTC))
                        )
            except ClientError as error:
                # A charity registered before S3 was configured has no bucket until `collab bucket serve`
                # creates it; its absence must not stop the other charities' files.
                if s3.error_code(error) != "NoSuchBucket":
                    raise
        return found

    def fetch(self, obj: LandingObject, destination: Path) -> str:
        try:
            response = self._s3().get_object(Bucket=s3.landing_bucket(obj.charity_id), Key=obj.key, IfMatch=obj.version)
        except ClientError as error:
            if s3.error_code(error) in _GONE_OR_REPLACED:
                raise LandingObjectGone(f"{obj.charity_id}/{obj.key} was removed or replaced while listed") from error
            if _ENCRYPTION_ASKED in str(error.response.get("Error", {}).get("Message", "")).lower():
                message = "stored encrypted with a key of your own (SSE-C), which the collaborative never holds"
                raise LandingObjectRefused(ENCRYPTED_WITH_OWN_KEY, message) from error
            raise
        with response["Body"] as body:
            return copy_hashing(body, destination)

    def archive_location(self, obj: LandingObject, archive_name: str) -> str:
        return f"s3://{s3.ARCHIVE_BUCKET}/{_archive_key(obj, archive_name)}"

    def archive(self, obj: LandingObject, archive_name: str) -> str:
        # Only as it was listed, as ``fetch`` read it: an object the charity replaced since stays for the next pass,
        # which reads it whole (a trial's overwrite mid-run ended as an error of ours).
        client = self._s3()
        landing = s3.landing_bucket(obj.charity_id)
        target = _archive_key(obj, archive_name)
        replaced = f"{obj.charity_id}/{obj.key} changed after it was read; it is read again"
        try:
            client.copy_object(
                Bucket=s3.ARCHIVE_BUCKET,
                Key=target,
                CopySource={"Bucket": landing, "Key": obj.key},
                CopySourceIfMatch=obj.version,
            )
        except ClientError as error:
            if s3.error_code(error) in _GONE_OR_REPLACED:
                raise LandingObjectGone(replaced) from error
            raise
        try:
            client.delete_object(Bucket=landing, Key=obj.key, IfMatch=obj.version)
        except ClientError as error:
            if s3.error_code(error) in _GONE_OR_REPLACED:
                client.delete_object(Bucket=s3.ARCHIVE_BUCKET, Key=target)  # a copy of what landing no longer holds
                raise LandingObjectGone(replaced) from error
            raise
        return f"s3://{s3.ARCHIVE_BUCKET}/{target}"

    def archive_copy(self, obj: LandingObject, archive_name: str, copy: Path) -> str:
        target = _archive_key(obj, archive_name)
        with copy.open("rb") as body:
            self._s3().upload_fileobj(body, s3.ARCHIVE_BUCKET, target)
        return f"s3://{s3.ARCHIVE_BUCKET}/{target}"

    def discard(self, obj: LandingObject) -> None:
        try:
            self._s3().delete_object(Bucket=s3.landing_bucket(obj.charity_id), Key=obj.key, IfMatch=obj.version)
        except ClientError as error:
            if s3.error_code(error) in _GONE_OR_REPLACED:  # replaced since: the new object is read next pass
                raise LandingObjectGone(
                    f"{obj.charity_id}/{obj.key} changed after it was listed; it is read again"
                ) from error
            raise

    def purge_archive(self, charity_id: str, submission_id: str) -> list[str]:
        client = self._s3()
        own = self._archived_keys(client, f"{charity_id}/{submission_id}/")
        # <charity>/duplicates/<stamp>-<submission>/<landed key>
        duplicates = [
            key
            for key in self._archived_keys(client, f"{charity_id}/{DUPLICATES}/")
            if archived_copy_of("/".join(key.split("/")[1:3])) == submission_id
        ]
        for key in own + duplicates:
            client.delete_object(Bucket=s3.ARCHIVE_BUCKET, Key=key)
        return [f"s3://{s3.ARCHIVE_BUCKET}/{key}" for key in own + duplicates]

    @staticmethod
    def _archived_keys(client: Any, prefix: str) -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=s3.ARCHIVE_BUCKET, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def write_feedback(self, charity_id: str, name: str, content: bytes, content_type: str) -> str:
        bucket = s3.feedback_bucket(charity_id)
        self._s3().put_object(Bucket=bucket, Key=name, Body=content, ContentType=content_type)
        return f"s3://{bucket}/{name}"

    def describe(self) -> str:
        return f"S3 buckets landing-<charity> at {self.endpoint}"


def landing_zone_from_env(home: Path) -> LandingZone:
    """The landing zone a workspace at ``home`` uses: S3 when ``COLLAB_S3_ENDPOINT`` is set, else its folders.

    The analyst's keys are optional: only creating a charity's buckets needs them.
    """
    if not s3.configured():
        return LocalLandingZone(root=str(home))
    return S3LandingZone(
        endpoint=os.environ[s3.ENDPOINT_VAR],
        access_key=os.environ[s3.PIPELINE_ACCESS_KEY_VAR],
        secret_key=os.environ[s3.PIPELINE_SECRET_KEY_VAR],
        analyst_access_key=os.environ.get(s3.ANALYST_ACCESS_KEY_VAR),
        analyst_secret_key=os.environ.get(s3.ANALYST_SECRET_KEY_VAR),
    )
