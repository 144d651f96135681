"""The landing zone: where charities drop files, and where their feedback goes back.

One interface, two implementations: a local folder (the embedded default) and an S3 bucket per
charity. The sensor and the assets only use this interface, so they run unchanged on both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dagster import ConfigurableResource

CHUNK_BYTES = 1024 * 1024
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

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def is_ignored_name(name: str) -> bool:
    return name.startswith(_IGNORED_PREFIXES) or name.lower().endswith(_IGNORED_SUFFIXES)


def copy_hashing(source: object, destination: Path) -> str:
    """Stream a binary file object to ``destination``; return the SHA-256 of what was written."""
    digest = hashlib.sha256()
    with destination.open("wb") as out:
        while chunk := source.read(CHUNK_BYTES):  # type: ignore[attr-defined]
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


class LandingZone(ConfigurableResource, ABC):
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
    def purge_archive(self, charity_id: str, archive_name: str) -> list[str]:
        """Delete an archived file for good (an analyst's purge); return what was deleted."""

    @abstractmethod
    def write_feedback(self, charity_id: str, name: str, content: bytes, content_type: str) -> str:
        """Write a feedback file the charity can read; return where it went."""

    @abstractmethod
    def describe(self) -> str:
        """Where this landing zone is, for people."""


class LocalLandingZone(LandingZone):
    """Folders under the workspace: ``landing/<charity>/``, ``feedback/<charity>/``, ``archive/<charity>/``."""

    root: str

    def _path(self, area: str, charity_id: str) -> Path:
        return Path(self.root) / area / charity_id

    def create_area(self, charity_id: str) -> None:
        for area in ("landing", "feedback", "archive"):
            self._path(area, charity_id).mkdir(parents=True, exist_ok=True)

    def pending(self, charity_ids: Iterable[str], min_age_seconds: float = 0.0) -> list[LandingObject]:
        now = time.time()
        found = []
        for charity_id in charity_ids:
            area = self._path("landing", charity_id)
            for path in sorted(area.rglob("*")) if area.exists() else []:
                relative = path.relative_to(area)
                if not path.is_file() or any(is_ignored_name(part) for part in relative.parts):
                    continue
                stat = path.stat()
                if now - stat.st_mtime < min_age_seconds:
                    continue
                found.append(
                    LandingObject(
                        charity_id=charity_id,
                        key=relative.as_posix(),
                        size=stat.st_size,
                        version=f"{stat.st_size}-{stat.st_mtime_ns}",
                        modified=dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC),
                    )
                )
        return found

    def fetch(self, obj: LandingObject, destination: Path) -> str:
        with (self._path("landing", obj.charity_id) / obj.key).open("rb") as source:
            return copy_hashing(source, destination)

    def archive(self, obj: LandingObject, archive_name: str) -> str:
        target = self._path("archive", obj.charity_id) / archive_name / obj.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(self._path("landing", obj.charity_id) / obj.key, target)
        return str(target)

    def purge_archive(self, charity_id: str, archive_name: str) -> list[str]:
        target = self._path("archive", charity_id) / archive_name
        if not target.exists():
            return []
        shutil.rmtree(target)
        return [str(target)]

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
        """Place a file in a charity's landing area atomically: what a charity does in local mode."""
        area = self._path("landing", charity_id)
        area.mkdir(parents=True, exist_ok=True)
        target = area / (name or source.name)
        partial = area / f".{target.name}.partial"
        shutil.copyfile(source, partial)
        partial.replace(target)
        return target
