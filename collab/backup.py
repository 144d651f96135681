"""Backups of what the collaborative cannot make again, and the privacy ledger's guard against an old copy.

The warehouse holds the privacy ledger: what every release made has cost the people in it. Lose it, or put
back a copy older than some release, and the next release's budget check and statements count less than was
spent: every person's loss is understated, and nothing would say so. So:

- ``back_up`` copies, consistently, the warehouse, the settings, the registry, the secrets (the
  pseudonymisation key: without it a person's later contacts get other keys), the release packages and
  what was published, with a manifest of their checksums. Raw files (landing, archive, staging,
  quarantine) are not copied: they are charities' data, kept only as long as the retention rules say,
  and nothing published depends on them once loaded.
- ``releases_missing_from_ledger`` names every release whose package exists but which the ledger does not
  hold; a release refuses to spend while there is one (``assets.releases``), and `collab budget` says so.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from collab.warehouse import connect
from collab.workspace import Workspace

MANIFEST = "backup.json"
WAREHOUSE_COPY = "warehouse.duckdb"


@dataclass(frozen=True)
class BackupManifest:
    """What a backup holds: when it was made, the warehouse's schema version, the releases its ledger charged, and
    each file's size and SHA-256 (paths relative to the backup)."""

    made_at: str
    schema_version: int
    releases_charged: list[str]
    files: dict[str, dict[str, int | str]]


class BackupError(Exception):
    """A backup could not be made, or does not match its manifest."""


def _backed_up_folders(ws: Workspace) -> list[Path]:
    return [ws.registry, ws.secrets, ws.releases, ws.publish]


def back_up(ws: Workspace, destination: Path, *, wait_seconds: float = 120.0) -> BackupManifest:
    """Copy what the collaborative cannot make again into ``destination`` (a new folder, the pipeline's user's
    only) and return its manifest.

    The folders are copied first and the warehouse last, in one read of it (DuckDB's ``COPY FROM DATABASE``: a
    consistent copy whatever writes wait meanwhile): a release made between the two is then in the copied
    ledger even if its package is not, never the other way round, so restoring the backup never understates what
    was spent. Call it holding the run lock, so that no `collab run` writes meanwhile; a daemon run that wants the
    warehouse waits for the copy to finish."""
    if destination.resolve().is_relative_to(ws.home.resolve()):
        # Into a folder it copies, it would copy itself; anywhere in the workspace, it is lost with it.
        raise BackupError(f"{destination} is inside the workspace {ws.home}: a backup goes outside it")
    if destination.exists() and any(destination.iterdir()):
        raise BackupError(f"{destination} is not empty: a backup goes into a new folder")
    if not ws.warehouse_path.exists():
        raise BackupError(f"no warehouse at {ws.warehouse_path}: nothing to back up")
    destination.mkdir(parents=True, exist_ok=True)
    destination.chmod(0o700)  # the key and the pseudonymised warehouse: the pipeline's user only
    shutil.copy2(ws.settings_path, destination / ws.settings_path.name)
    for folder in _backed_up_folders(ws):
        if folder.exists():
            shutil.copytree(folder, destination / folder.name, ignore=_links)
    copy = destination / WAREHOUSE_COPY
    try:
        with connect(ws.warehouse_path, read_only=True, wait_seconds=wait_seconds) as con:
            source = con.execute("SELECT current_database()").fetchall()[0][0]
            con.execute(f"ATTACH '{_quoted(copy)}' AS backup_copy (READ_WRITE)")
            try:
                con.execute(f'COPY FROM DATABASE "{source}" TO backup_copy')
            finally:
                con.execute("DETACH backup_copy")
    except duckdb.IOException as error:  # another process kept the warehouse open for writing all that time
        raise BackupError(
            f"the warehouse stayed in use for {wait_seconds:.0f} s ({error}); no backup was made: try again when "
            f"no run is loading or releasing, and remove {destination}"
        ) from error
    copy.chmod(0o600)
    with duckdb.connect(str(copy), read_only=True) as con:
        version = int(con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0])
        charged = _charged(con)
    manifest = BackupManifest(
        made_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        schema_version=version,
        releases_charged=sorted(charged),
        files={_relative(path, destination): _described(path) for path in _files(destination)},
    )
    (destination / MANIFEST).write_text(json.dumps(asdict(manifest), indent=1), encoding="utf-8")
    return manifest


def verify_backup(backup: Path) -> BackupManifest:
    """The manifest of the backup at ``backup``, once every file it lists is there with its size and checksum, and
    no other file is; raise ``BackupError`` naming what differs."""
    try:
        manifest = BackupManifest(**json.loads((backup / MANIFEST).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as error:
        raise BackupError(f"{backup} has no readable {MANIFEST}: {error}") from error
    present = {_relative(path, backup): path for path in _files(backup)}
    problems = [f"missing: {name}" for name in sorted(set(manifest.files) - set(present))]
    problems += [f"not in the manifest: {name}" for name in sorted(set(present) - set(manifest.files))]
    problems += [
        f"changed: {name}"
        for name in sorted(set(manifest.files) & set(present))
        if _described(present[name]) != manifest.files[name]
    ]
    if problems:
        raise BackupError(f"{backup} does not match its manifest: " + "; ".join(problems))
    return manifest


def releases_missing_from_ledger(con: duckdb.DuckDBPyConnection, ws: Workspace) -> list[str]:
    """The releases with a package (made, or published) that the warehouse's privacy ledger does not hold: it was
    put back from a copy older than them, or made anew. Their noise was drawn and may be public, so what they cost
    is real; a ledger without them understates every later figure and budget check."""
    packaged = {
        folder.name
        for parent in (ws.releases, ws.publish / "releases")
        if parent.is_dir()
        for folder in parent.iterdir()
        if not folder.name.startswith(".") and (folder / "release.json").is_file()
    }
    return sorted(packaged - _charged(con))


def ledger_behind_packages(missing: list[str]) -> str:
    """What a release refusing for ``releases_missing_from_ledger`` says."""
    return (
        f"The privacy ledger does not hold {len(missing)} release(s) whose packages exist ({', '.join(missing)}): "
        "the warehouse was put back from a copy older than them, or made anew. What they cost is real (their noise "
        "was drawn, and may be published), so a release now would understate every person's privacy loss. Nothing "
        "was spent. Put back a backup made after them (`collab backup`); see docs/deployment.md, Backups."
    )


def _charged(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute("SELECT DISTINCT release_id FROM privacy_ledger").fetchall()}


def _links(folder: str, names: list[str]) -> list[str]:
    """Links are not followed, nor copied: the workspace's folders hold none of their own, and one put there would
    copy whatever it points at into the backup."""
    return [name for name in names if Path(folder, name).is_symlink()]


def _files(root: Path) -> list[Path]:
    return sorted(
        Path(folder, name)
        for folder, _, names in os.walk(root)
        for name in names
        if Path(folder, name) != root / MANIFEST
    )


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _described(path: Path) -> dict[str, int | str]:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
