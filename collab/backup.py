"""Backups of what the collaborative cannot make again, restoring one, and the privacy ledger's guard.

The warehouse holds the privacy ledger: what every release made has cost the people in it. Lose it, or put
back a copy older than some release, and the next release's budget check and statements count less than was
spent: every person's loss is understated, and nothing would say so. So:

- ``back_up`` copies, consistently, the warehouse, the settings, the registry, the secrets (the
  pseudonymisation key: without it a person's later contacts get other keys), the release packages and
  what was published, with a manifest of their checksums. Raw files (landing, archive, staging,
  quarantine) are not copied: they are charities' data, kept only as long as the retention rules say,
  and nothing published depends on them once loaded.
- ``restore`` puts a backup back, refusing one whose ledger lacks a release the workspace has made: it
  keeps every package the workspace has, so that no release id is made twice.
- ``releases_missing_from_ledger`` names every release whose package exists but which the ledger does not
  hold; a release refuses to spend while there is one (``assets.releases``), and `collab budget` says so, until a
  backup holding it is restored or it is charged again from its package (``collab.recovery``).

The manifest's checksums find a damaged or incomplete backup, not a forged one (it is not signed): keep
backups where only the collaborative's operators can write.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from collab.intake import submission_dir
from collab.schema import LATEST_VERSION
from collab.site import BUILT_FROM
from collab.staging import CONTACTS_FILE, MINIMISED_CONTACTS_FILE
from collab.states import submission_states, write_state
from collab.warehouse import connect
from collab.workspace import Settings, SettingsError, Workspace, read_settings
from privacy.accountant import ROUNDING

MANIFEST = "backup.json"
WAREHOUSE_COPY = "warehouse.duckdb"
PACKAGE_FILE = "release.json"
# ASCII digits only: Python's \d also takes full-width ones ("２０２６Q3-v1", a hostile trial).
RELEASE_ID = re.compile(r"[0-9]{4}Q[1-4]-v[1-9][0-9]*")


@dataclass(frozen=True)
class BackupManifest:
    """What a backup holds: when it was made, the warehouse's schema version, the releases its ledger charged, each
    file's size and SHA-256 (paths relative to the backup), and the links in the workspace it left out."""

    made_at: str
    schema_version: int
    releases_charged: list[str]
    files: dict[str, dict[str, int | str]]
    links_left_out: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Restored:
    """What ``restore`` put back, and the packages of the backup it added to the workspace's (those it had already
    were kept as they were)."""

    manifest: BackupManifest
    packages_added: list[str]
    # Submissions loaded after the backup was made: set back to ``checked``, so the next run loads them again.
    submissions_resumed: list[str] = field(default_factory=list)
    # The settings the backup's replaced that differ; None if the workspace's could not be read, so none can be named.
    settings_changed: list[SettingChanged] | None = field(default_factory=list)


@dataclass(frozen=True)
class SettingChanged:
    """A setting the restore changed: its dotted name, the value it replaced and the value put back, and whether the
    value put back lets a person lose more than the one replaced (a larger privacy budget, or a smaller public cap on
    the units a person may be, which the worst case counts)."""

    name: str
    replaced: Any
    restored: Any
    loosens_privacy: bool


# Privacy settings under which a person may lose more: budgets when raised, caps on a person's units when lowered
# (an unset cap counts every charity: the largest).
# A higher link threshold misses more links, and a person split into m units loses m²ρ (its own description).
_LOOSER_RAISED = {"privacy.release_rho", "privacy.period_rho", "privacy.lifetime_rho", "privacy.link_threshold"}
_LOOSER_LOWERED = {"privacy.max_unlinked_charities", "privacy.linked_units_per_person"}


class BackupError(Exception):
    """A backup could not be made or put back, or does not match its manifest."""


def _backed_up_folders(ws: Workspace) -> list[Path]:
    return [ws.registry, ws.secrets, ws.releases, ws.publish]


def back_up(ws: Workspace, destination: Path, *, wait_seconds: float = 120.0) -> BackupManifest:
    """Copy what the collaborative cannot make again into ``destination`` (a new folder, the pipeline's user's
    only) and return its manifest. A backup that fails part-way is removed: a folder with no ``backup.json``
    is never a backup.

    The folders are copied first and the warehouse last, in one read of it (DuckDB's ``COPY FROM DATABASE``: a
    consistent copy whatever writes wait meanwhile): a release made between the two is then in the copied
    ledger even if its package is not, never the other way round, so restoring the backup never understates what
    was spent. Call it holding the run lock, so that no `collab run` writes meanwhile; a daemon run that wants the
    warehouse waits for the copy to finish."""
    if destination.resolve().is_relative_to(ws.home.resolve()):
        # Into a folder it copies, it would copy itself; anywhere in the workspace, it is lost with it.
        raise BackupError(f"{destination} is inside the workspace {ws.home}: a backup goes outside it")
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise BackupError(f"{destination} is not an empty folder: a backup goes into a new one")
    if not ws.warehouse_path.exists():
        raise BackupError(f"no warehouse at {ws.warehouse_path}: nothing to back up")
    try:
        return _copied(ws, destination, wait_seconds)
    except BaseException as error:
        _emptied(destination)
        if isinstance(error, duckdb.IOException) and "lock" in str(error).lower():  # kept open for writing
            raise BackupError(
                f"the warehouse stayed in use for {wait_seconds:.0f} s ({error}); no backup was made: try again "
                "when no run is loading or releasing"
            ) from error
        if isinstance(error, OSError | shutil.Error | duckdb.Error):  # a full disk, a read-only mount, a file
            raise BackupError(f"no backup was made in {destination}: {_first_line(error)}") from error
        raise


def _copied(ws: Workspace, destination: Path, wait_seconds: float) -> BackupManifest:
    destination.mkdir(parents=True, exist_ok=True)
    destination.chmod(0o700)  # the key and the pseudonymised warehouse: the pipeline's user only
    shutil.copy2(ws.settings_path, destination / ws.settings_path.name)
    links: list[str] = []

    def without_links(folder: str, names: list[str]) -> list[str]:
        # Links are not followed, nor copied: the workspace's folders hold none of their own, and one put there
        # would copy whatever it points at. Each is named in the manifest, and by `collab backup`.
        found = [name for name in names if Path(folder, name).is_symlink()]
        links.extend(_relative(Path(folder, name), ws.home) for name in found)
        return found

    for folder in _backed_up_folders(ws):
        if folder.exists():
            shutil.copytree(folder, destination / folder.name, ignore=without_links)
    copy = destination / WAREHOUSE_COPY
    with connect(ws.warehouse_path, read_only=True, wait_seconds=wait_seconds) as con:
        source = con.execute("SELECT current_database()").fetchall()[0][0]
        con.execute(f"ATTACH '{_quoted(copy)}' AS backup_copy (READ_WRITE)")
        try:
            con.execute(f'COPY FROM DATABASE "{source}" TO backup_copy')
        finally:
            con.execute("DETACH backup_copy")
    copy.chmod(0o600)
    version, charged = _described_warehouse(copy)
    manifest = BackupManifest(
        made_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        schema_version=version,
        releases_charged=charged,
        files={_relative(path, destination): _described(path) for path in _files(destination)},
        links_left_out=sorted(links),
    )
    (destination / MANIFEST).write_text(json.dumps(asdict(manifest), indent=1), encoding="utf-8")
    return manifest


def verify_backup(backup: Path) -> BackupManifest:
    """The manifest of the backup at ``backup``, once every file it lists is there with its size and checksum, no
    other file or link is, and its warehouse's ledger holds the releases it lists; raise ``BackupError`` naming
    what differs."""
    try:
        manifest = BackupManifest(**json.loads((backup / MANIFEST).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as error:
        raise BackupError(f"{backup} has no readable {MANIFEST}: {_first_line(error)}") from error
    present = {_relative(path, backup): path for path in _files(backup) if path != backup / MANIFEST}
    problems = [f"missing: {name}" for name in sorted(set(manifest.files) - set(present))]
    problems += [f"not in the manifest: {name}" for name in sorted(set(present) - set(manifest.files))]
    problems += [
        f"changed: {name}"
        for name in sorted(set(manifest.files) & set(present))
        if present[name].is_symlink() or _described(present[name]) != manifest.files[name]
    ]
    problems += [f"a link: {_relative(path, backup)}" for path in _links_in(backup)]
    if not problems:
        version, charged = _described_warehouse(backup / WAREHOUSE_COPY)
        if (version, charged) != (manifest.schema_version, manifest.releases_charged):
            problems.append(f"its warehouse is at version {version} and holds the releases {charged or 'none'}")
    if problems:
        raise BackupError(f"{backup} does not match its manifest: " + "; ".join(problems))
    return manifest


def restore(ws: Workspace, backup: Path) -> Restored:
    """Put the backup at ``backup`` back into the workspace: its warehouse, settings, registry and secrets replace
    the workspace's, and its release packages and published releases are added where the workspace has none of the
    same name (those it has are kept as they are). Call it holding the run lock, with the daemon stopped.

    Refused, changing nothing, if the backup does not match its manifest, or if its ledger lacks a release that the
    workspace has made (a package, or a ledger entry of a warehouse still readable): restoring it would lose what
    that release cost, and the next release of its quarter would take its id again with new noise. A write-ahead
    log left beside the workspace's warehouse (a process killed while writing) is removed with it: DuckDB would
    otherwise replay that log onto the copy put back."""
    manifest = verify_backup(backup)
    kept_settings = backup / ws.settings_path.name
    if not kept_settings.is_file():  # read as the defaults, and not put back: every restore stopped part-way
        raise BackupError(
            f"{backup} holds no {kept_settings.name}: it is no backup of a workspace; nothing was changed"
        )
    try:
        restored_settings = read_settings(kept_settings)
    except SettingsError as error:  # put back, it would stop every command
        raise BackupError(f"the backup's settings cannot be used ({error}); nothing was changed") from error
    if ws.settings_path.is_dir() and not ws.settings_path.is_symlink():
        raise BackupError(
            f"{ws.settings_path} is a folder, which the backup's settings cannot replace: move it away and restore "
            "again; nothing was changed"
        )
    if manifest.schema_version > LATEST_VERSION:
        raise BackupError(
            f"the backup's warehouse is at schema version {manifest.schema_version}, newer than this code's "
            f"{LATEST_VERSION}: restore it with the code that made it; nothing was changed"
        )
    # Three witnesses of the releases made: the packages, the ledger if it can still be read, and the published site's
    # record of what it was built from (a damaged warehouse with its packages deleted still has that).
    made = packaged_releases(ws) | _charged_in(ws.warehouse_path) | site_built_from(ws)
    if lost := sorted(made - set(manifest.releases_charged)):
        raise BackupError(
            f"the backup of {manifest.made_at} is older than release(s) {', '.join(lost)}: put back, its ledger "
            "would lose what they cost. Restore a backup made after them; nothing was changed"
        )
    unfinished = ws.restore_marker
    # The settings replaced, kept until the restore ends: one run again after stopping part-way names the changes
    # from them, not from the backup's own, already put back.
    replaced = ws.settings_path.with_name(f".{ws.settings_path.name}.before-restore")
    ready = ws.warehouse_path.with_name(f".{ws.warehouse_path.name}.restoring")
    try:
        if not unfinished.exists() and ws.settings_path.is_file():
            shutil.copy2(ws.settings_path, replaced)
        changed = _settings_changed(replaced if replaced.exists() else ws.settings_path, restored_settings)
        unfinished.write_text(str(backup), encoding="utf-8")
        shutil.copy2(backup / WAREHOUSE_COPY, ready)
        ws.warehouse_path.with_name(f"{ws.warehouse_path.name}.wal").unlink(missing_ok=True)
        ready.replace(ws.warehouse_path)
        ws.warehouse_path.chmod(0o600)
        _put_back(backup / ws.settings_path.name, ws.settings_path)
        for folder in (ws.secrets, ws.registry):
            if (backup / folder.name).is_dir():
                _put_back_folder(backup / folder.name, folder)
        ws.key_path.chmod(0o600)
        added = []
        for folder in (ws.releases, ws.publish / "releases"):
            kept = backup / folder.relative_to(ws.home)
            for package in sorted(kept.iterdir()) if kept.is_dir() else []:
                if not (folder / package.name).exists():
                    # Copied whole under another name first: a restore stopped mid-copy leaves no half package.
                    partial = folder / f".{package.name}.restoring"
                    shutil.rmtree(partial, ignore_errors=True)
                    shutil.copytree(package, partial)
                    partial.replace(folder / package.name)
                    added.append(_relative(folder / package.name, ws.home))
        resumed = resume_loads_not_held(ws)
    except (OSError, shutil.Error, duckdb.Error) as error:
        ready.unlink(missing_ok=True)
        raise BackupError(f"restoring {backup} stopped part-way: {_first_line(error)}; restore it again") from error
    # The Dagster instance's configuration, made again from the settings put back (``ws`` may hold those replaced).
    Workspace(ws.home).init()
    replaced.unlink(missing_ok=True)
    unfinished.unlink()
    return Restored(manifest, added, resumed, changed)


def _settings_changed(replaced_file: Path, restored: Settings) -> list[SettingChanged] | None:
    """What putting back ``restored`` changes of the settings in ``replaced_file``; None if that file cannot be read
    (a restore is how such a workspace is mended, so it goes on)."""
    try:
        replaced = _flattened(read_settings(replaced_file).model_dump())
    except SettingsError:
        return None
    changes = []
    for name, value in _flattened(restored.model_dump()).items():
        if value == replaced[name]:
            continue
        if name in _LOOSER_RAISED:
            looser = value > replaced[name]
        elif name in _LOOSER_LOWERED:
            looser = (value or float("inf")) < (replaced[name] or float("inf"))
        else:
            looser = False
        changes.append(SettingChanged(name, replaced[name], value, looser))
    return changes


def _flattened(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in settings.items():
        if isinstance(value, dict):
            flat |= _flattened(value, f"{prefix}{name}.")
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def resume_loads_not_held(ws: Workspace) -> list[str]:
    """Set back to ``checked`` the submissions whose state says loaded but whose rows the warehouse does not hold
    (loaded after the copy put back was made, or the warehouse made anew): unfinished again, the next run loads them
    (from their staged files, as a run that stopped would). Sent again instead, they were refused as duplicates of a
    file already received. A purged one, its staged files deleted, cannot be loaded again and is left as it was (its
    charity's feedback, that it was used, stays true of the releases made from it). Every `collab run` does this
    first: a restore or a recovery killed before doing it is finished there."""
    if not ws.warehouse_path.exists():
        held: set[str] = set()
    else:
        with connect(ws.warehouse_path, read_only=True) as con:
            held = {row[0] for row in con.execute("SELECT submission_id FROM submissions").fetchall()}
    resumed = []
    for state in submission_states(ws):
        if state.state != "loaded" or state.submission_id in held or _purged(ws, state.submission_id):
            continue
        write_state(
            ws,
            submission_id=state.submission_id,
            charity_id=state.charity_id,
            file_name=state.file_name,
            state="checked",
            name=state.name,
            status=state.status,
        )
        resumed.append(state.submission_id)
    return sorted(resumed)


def _purged(ws: Workspace, submission_id: str) -> bool:
    """Whether a submission's staged contacts are gone (``collab purge``), or its state names no submission."""
    try:
        staged = submission_dir(ws, submission_id)
    except ValueError:
        return True
    return not any((staged / name).exists() for name in (CONTACTS_FILE, MINIMISED_CONTACTS_FILE))


def _put_back(source: Path, target: Path) -> None:
    """``source`` copied over ``target`` in one step: a restore stopped at any instant leaves each file whole, the old
    or the new, never none (without its key file, the next command would make a new key, and new pseudonyms)."""
    partial = target.with_name(f".{target.name}.restoring")
    shutil.copy2(source, partial)
    partial.replace(target)


def _put_back_folder(source: Path, target: Path) -> None:
    """The files of ``source`` put back into ``target`` one by one (``_put_back``), then those ``target`` has and
    ``source`` has not removed."""
    for folder, _, names in os.walk(source):
        within = target / Path(folder).relative_to(source)
        within.mkdir(parents=True, exist_ok=True)
        within.chmod(Path(folder).stat().st_mode & 0o777)
        for name in names:
            _put_back(Path(folder, name), within / name)
    kept = {_relative(path, source) for path in _files(source)}
    for path in _files(target):
        if _relative(path, target) not in kept:
            path.unlink()


def releases_missing_from_ledger(con: duckdb.DuckDBPyConnection, ws: Workspace) -> list[str]:
    """The releases made that the warehouse's privacy ledger does not hold: those with a package (made, or published),
    and those the published site was built from (``site_built_from``), whose packages may be lost with it. It was put
    back from a copy older than them, or made anew. Their noise was drawn and may be public, so what they cost is
    real; a ledger without them understates every later figure and budget check, and the next release of their
    quarter would take one's id again. Also those it holds for less than a package of theirs states they cost (a
    warehouse of another workspace whose releases had the same ids, put back: a hostile trial's ledger counted a
    twelfth of what was spent, and the next package stated less than the one before it)."""
    return sorted((packaged_releases(ws) | site_built_from(ws)) - charged_releases(con) | _understated(con, ws))


def _understated(con: duckdb.DuckDBPyConnection, ws: Workspace) -> set[str]:
    """The releases the ledger holds for less, per person, than a package of theirs says they cost."""
    charged = dict(
        con.execute("SELECT release_id, sum(rho_per_person) FROM privacy_ledger GROUP BY release_id").fetchall()
    )
    understated = set()
    for folder in package_folders(ws):
        record = None if folder.is_symlink() else _record(folder / PACKAGE_FILE)
        try:
            release_id, stated = record["release_id"], float(record["privacy"]["per_person"]["release_rho"])
        except (TypeError, KeyError, ValueError):
            continue  # no package a release wrote: counted by its folder, or refused by a recovery
        if release_id in charged and stated > charged[release_id] * (1 + ROUNDING):
            understated.add(release_id)
    return understated


def ledger_behind_packages(missing: list[str]) -> str:
    """What ``releases_missing_from_ledger`` means, said to the operator."""
    return (
        f"The privacy ledger does not hold {len(missing)} release(s) whose packages exist, or that the published site "
        f"was built from, or holds less than their packages say they cost ({', '.join(missing)}): "
        "the warehouse was put back from a copy older than them, or made anew. What they cost is real (their noise "
        "was drawn, and may be published), so every release is refused until the ledger holds them: a release now "
        "would understate every person's privacy loss. Put back a backup made after them (`collab restore`), or, "
        "with none, charge them again from their packages (`collab recover-releases`); see docs/deployment.md, "
        "Backups."
    )


def packaged_releases(ws: Workspace) -> set[str]:
    """The ids of the release packages in the workspace, made or published, as each package's ``release.json``
    names it (a copy of a package under another folder name is the same release). A folder named like a release
    is one made, its ``release.json`` lost or not: releases write none that has no ``release.json``."""
    return {
        package_id(folder)
        for folder in package_folders(ws)
        if (folder / PACKAGE_FILE).is_file() or (folder.is_dir() and RELEASE_ID.fullmatch(folder.name))
    }


def package_folders(ws: Workspace) -> list[Path]:
    """Everything in the folders of release packages, made and published (packages, links, anything else put there),
    but the copies being written or put back (``.<id>.partial``, ``.<id>.restoring``)."""
    return [
        folder
        for parent in (ws.releases, ws.publish / "releases")
        if parent.is_dir()
        for folder in sorted(parent.iterdir())
        if not folder.name.startswith(".")
    ]


def site_built_from(ws: Workspace) -> set[str]:
    """The releases the published site says it was built from (``collab.site``)."""
    site = ws.publish / "site"
    built = None if site.is_symlink() else _record(site / BUILT_FROM)
    releases = built.get("releases", []) if isinstance(built, dict) else []
    return {name for name in releases if isinstance(name, str)} if isinstance(releases, list) else set()


def package_id(folder: Path) -> str:
    """The release a package is, as its ``release.json`` names it, or its folder's name where that cannot be read
    (a link, which is never followed, is named by its own name)."""
    record = None if folder.is_symlink() else _record(folder / PACKAGE_FILE)
    named = record.get("release_id") if isinstance(record, dict) else None
    return named if isinstance(named, str) and named else folder.name


# A release.json, the site's record or a package's CSV is at most some tens of kilobytes: a file far larger is none
# of ours, and is not read.
LARGEST_RECORD_BYTES = 16 * 1024 * 1024


def _record(path: Path) -> Any:
    """The JSON of the regular file at ``path``, opened without following a link, if it holds at most
    ``LARGEST_RECORD_BYTES``; None otherwise. Put into releases/ by hand, a FIFO hung every command that reads the
    packages, a link was read outside the workspace, and a 330 MB file took 12 GB of memory (a hostile trial)."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(handle, "rb") as opened:
        status = os.fstat(opened.fileno())
        if not stat.S_ISREG(status.st_mode) or status.st_size > LARGEST_RECORD_BYTES:
            return None
        try:
            return json.loads(opened.read(LARGEST_RECORD_BYTES + 1))
        except (OSError, ValueError, RecursionError):
            return None


def charged_releases(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The releases the privacy ledger holds."""
    return {row[0] for row in con.execute("SELECT DISTINCT release_id FROM privacy_ledger").fetchall()}


def _charged_in(warehouse: Path) -> set[str]:
    """The releases the ledger of the warehouse at ``warehouse`` holds: none if it is missing or cannot be read (lost,
    damaged: what a restore is for)."""
    if not warehouse.exists():
        return set()
    try:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            return charged_releases(con)
    except duckdb.IOException as error:
        if "lock" in str(error).lower():
            raise BackupError(
                "the warehouse is open in another process: stop the daemon and every run before restoring"
            ) from error
        return set()
    except duckdb.Error:
        return set()


def _described_warehouse(path: Path) -> tuple[int, list[str]]:
    """A warehouse copy's schema version and the releases its ledger holds."""
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            version = int(con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0])
            return version, sorted(charged_releases(con))
    except duckdb.Error as error:
        raise BackupError(f"{path} is not a readable warehouse: {_first_line(error)}") from error


def _emptied(destination: Path) -> None:
    """Remove what a backup that failed wrote into ``destination`` (new, or empty when it began)."""
    if destination.is_dir() and not destination.is_symlink():
        for entry in destination.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _files(root: Path) -> list[Path]:
    return sorted(Path(folder, name) for folder, _, names in os.walk(root) for name in names)


def _links_in(root: Path) -> list[Path]:
    """Links anywhere in ``root``, to folders (``os.walk`` lists them as folders, and does not enter them) or files."""
    return sorted(
        Path(folder, name)
        for folder, folders, files in os.walk(root)
        for name in [*folders, *files]
        if Path(folder, name).is_symlink()
    )


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _described(path: Path) -> dict[str, int | str]:
    """The size and SHA-256 of the regular file at ``path``; ``BackupError`` for anything else (a FIFO in a backup
    hung its check for good, a hostile trial)."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise BackupError(f"{path} cannot be read: {error.strerror}") from error
    digest = hashlib.sha256()
    with os.fdopen(handle, "rb") as opened:
        status = os.fstat(opened.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise BackupError(f"{path} is not a regular file")
        while chunk := opened.read(1 << 20):
            digest.update(chunk)
    return {"bytes": status.st_size, "sha256": digest.hexdigest()}


def _first_line(error: BaseException) -> str:
    """The error's first line; for ``shutil.copytree``'s list of failed copies, the first copy's reason."""
    if isinstance(error, shutil.Error) and error.args and isinstance(error.args[0], list) and error.args[0]:
        return str(error.args[0][0][-1])[:300]
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
