"""Backups of the workspace, and the privacy ledger's guard against a copy older than the releases made."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner, Result

from collab import backup as backups
from collab.backup import MANIFEST, BackupError, back_up, releases_missing_from_ledger, restore, verify_backup
from collab.warehouse import connect
from collab.workspace import Workspace
from pipelines.cli import register_commands
from pipelines.cli.app import app


def _charge(ws: Workspace, release_id: str) -> None:
    with connect(ws.warehouse_path) as con:
        con.execute(
            "INSERT INTO privacy_ledger (release_id, period, indicator_id, measurement, kind, mechanism, rho, "
            "noise_scale, sensitivity, recorded_at, max_units, rho_per_person, spent_order) "
            "VALUES (?, ?, 'people', 'count', 'release', 'gaussian', 0.1, 2.0, 1.0, now(), 1, 0.1, 1)",
            [release_id, release_id[:6]],
        )


def _collab(*arguments: str) -> Result:
    """A `collab` command run in this process, on the workspace the environment names."""
    register_commands()
    return CliRunner().invoke(app, list(arguments))


def _package(folder: Path, release_id: str) -> None:
    (folder / release_id).mkdir(parents=True)
    (folder / release_id / "release.json").write_text(json.dumps({"release_id": release_id}), encoding="utf-8")


def test_a_backup_holds_the_warehouse_and_what_cannot_be_made_again_and_checks_against_its_manifest(
    workspace: Workspace, tmp_path: Path
) -> None:
    _charge(workspace, "2026Q1-v1")
    _package(workspace.releases, "2026Q1-v1")
    (workspace.landing / "charity-a").mkdir(parents=True, exist_ok=True)
    (workspace.landing / "charity-a" / "raw.csv").write_text("person_ref\nR1\n", encoding="utf-8")
    outside = tmp_path / "outside.txt"
    outside.write_text("not the collaborative's", encoding="utf-8")
    (workspace.registry / "link").symlink_to(outside)

    made = back_up(workspace, tmp_path / "backup")
    backup = tmp_path / "backup"
    assert made.releases_charged == ["2026Q1-v1"] and made.schema_version > 0
    assert {
        "warehouse.duckdb",
        "settings.yaml",
        "secrets/pseudonymisation.key",
        "releases/2026Q1-v1/release.json",
    } <= set(made.files)
    assert not any(name.startswith(("landing", "archive", "staging")) for name in made.files)  # raw files stay out
    assert not (backup / "registry" / "link").exists()  # a link is neither followed nor copied, but named
    assert made.links_left_out == ["registry/link"]
    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    assert stat.S_IMODE((backup / "warehouse.duckdb").stat().st_mode) == 0o600
    with duckdb.connect(str(backup / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT release_id FROM privacy_spend").fetchall() == [("2026Q1-v1",)]
    assert verify_backup(backup) == made

    (backup / "releases" / "2026Q1-v1" / "release.json").write_text("{}", encoding="utf-8")
    (backup / "stray.txt").write_text("x", encoding="utf-8")
    (backup / "settings.yaml").unlink()
    with pytest.raises(BackupError) as refused:
        verify_backup(backup)
    assert str(refused.value).endswith(
        "missing: settings.yaml; not in the manifest: stray.txt; changed: releases/2026Q1-v1/release.json"
    )
    with pytest.raises(BackupError, match="not an empty folder"):
        back_up(workspace, backup)
    with pytest.raises(BackupError, match="inside the workspace"):
        back_up(workspace, workspace.registry / "backup")  # it would copy itself into itself
    assert not (workspace.registry / "backup").exists()
    (backup / MANIFEST).unlink()
    with pytest.raises(BackupError, match=r"no readable backup\.json"):
        verify_backup(backup)


def test_releases_packaged_or_published_but_not_in_the_ledger_are_named(workspace: Workspace) -> None:
    _package(workspace.releases, "2026Q1-v1")
    _package(workspace.publish / "releases", "2026Q2-v1")
    (workspace.releases / ".2026Q3-v1.partial").mkdir()  # a package being written: not a release made
    (workspace.releases / "notes").mkdir()  # no release.json: no package
    _charge(workspace, "2026Q2-v1")
    with connect(workspace.warehouse_path) as con:
        assert releases_missing_from_ledger(con, workspace) == ["2026Q1-v1"]
    _charge(workspace, "2026Q1-v1")
    with connect(workspace.warehouse_path) as con:
        assert releases_missing_from_ledger(con, workspace) == []


def test_a_package_whose_release_json_is_lost_is_still_a_release_made(workspace: Workspace) -> None:
    """An attack on the guard: with the only package's release.json deleted, and the warehouse lost, the next release
    of its quarter took its id again. A release writes no folder without one (``.<id>.partial`` first)."""
    _package(workspace.releases, "2026Q1-v1")
    (workspace.releases / "2026Q1-v1" / "release.json").unlink()
    (workspace.releases / "2026Q2-v1").write_text("a file named like one is not", encoding="utf-8")
    with connect(workspace.warehouse_path) as con:
        assert releases_missing_from_ledger(con, workspace) == ["2026Q1-v1"]


def test_a_warehouse_kept_open_for_writing_gives_a_plain_refusal(workspace: Workspace, tmp_path: Path) -> None:
    _charge(workspace, "2026Q1-v1")  # the warehouse made
    holding = f"import duckdb, time; held = duckdb.connect({str(workspace.warehouse_path)!r}); time.sleep(60)"
    held = subprocess.Popen([sys.executable, "-c", holding])
    try:
        time.sleep(1.5)  # let it open the file
        with pytest.raises(BackupError, match="stayed in use for 1 s"):
            back_up(workspace, tmp_path / "backup", wait_seconds=1)
    finally:
        held.kill()


def test_verifying_finds_links_and_a_ledger_other_than_the_manifest_says(workspace: Workspace, tmp_path: Path) -> None:
    """An operator's trial: a link to a folder passed, and so did a manifest rewritten to list fewer releases."""
    _charge(workspace, "2026Q1-v1")
    backup = tmp_path / "backup"
    back_up(workspace, backup)
    (backup / "etc").symlink_to("/etc")
    with pytest.raises(BackupError, match="a link: etc"):
        verify_backup(backup)
    (backup / "etc").unlink()
    (backup / "settings-link.yaml").symlink_to(backup / "settings.yaml")  # a link to a file is named as one too
    with pytest.raises(BackupError, match=r"a link: settings-link\.yaml"):
        verify_backup(backup)
    (backup / "settings-link.yaml").unlink()
    manifest = json.loads((backup / MANIFEST).read_text(encoding="utf-8"))
    (backup / MANIFEST).write_text(json.dumps(manifest | {"releases_charged": []}), encoding="utf-8")
    with pytest.raises(BackupError, match=r"holds the releases \['2026Q1-v1'\]"):
        verify_backup(backup)


def test_a_fifo_in_a_backup_is_refused_not_read_for_ever(workspace: Workspace, tmp_path: Path) -> None:
    """A hostile trial: a FIFO in place of a file the manifest lists hung the check (the alarm ends a test that would)."""
    _charge(workspace, "2026Q1-v1")
    backup = tmp_path / "backup"
    back_up(workspace, backup)
    (backup / "settings.yaml").unlink()
    os.mkfifo(backup / "settings.yaml")

    def hung(signum: int, frame: object) -> None:
        raise TimeoutError("verify_backup was still reading the FIFO after 20 s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        with pytest.raises(BackupError, match=r"settings\.yaml is not a regular file"):
            verify_backup(backup)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_backup_that_cannot_be_made_says_why_in_a_line_and_leaves_nothing(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _charge(workspace, "2026Q1-v1")
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    with pytest.raises(BackupError, match="not an empty folder"):
        back_up(workspace, tmp_path / "a-file")
    real_copytree = backups.shutil.copytree

    def disk_full_at_the_releases(source: Path, target: Path, **options: object) -> object:
        if Path(source).name == "releases":
            raise OSError(28, "No space left on device")
        return real_copytree(source, target, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(backups.shutil, "copytree", disk_full_at_the_releases)
    with pytest.raises(BackupError) as refused:
        back_up(workspace, tmp_path / "backup")
    assert str(refused.value) == f"no backup was made in {tmp_path / 'backup'}: [Errno 28] No space left on device"
    assert list((tmp_path / "backup").iterdir()) == []  # what was copied before is gone: no half backup


def test_restoring_refuses_a_backup_older_than_a_release_made_and_otherwise_keeps_every_package(
    workspace: Workspace, tmp_path: Path
) -> None:
    """An operator's trial: the documented restore of an older backup (its packages too) turned the guard off,
    and the next release took the same id with new noise; a write-ahead log left behind was replayed onto it."""
    _charge(workspace, "2026Q1-v1")
    _package(workspace.releases, "2026Q1-v1")
    back_up(workspace, tmp_path / "old")
    _charge(workspace, "2026Q2-v1")
    _package(workspace.publish / "releases", "2026Q2-v1")
    back_up(workspace, tmp_path / "new")
    settings = workspace.settings_path.read_text(encoding="utf-8")

    with pytest.raises(BackupError, match=r"older than release\(s\) 2026Q2-v1.*nothing was changed"):
        restore(workspace, tmp_path / "old")
    workspace.warehouse_path.unlink()  # lost: the ledger is no witness now, the package still is
    with pytest.raises(BackupError, match=r"older than release\(s\) 2026Q2-v1"):
        restore(workspace, tmp_path / "old")
    assert not workspace.warehouse_path.exists()

    shutil.rmtree(workspace.releases / "2026Q1-v1")  # lost with the disk; the other package kept, and changed
    (workspace.publish / "releases" / "2026Q2-v1" / "kept.txt").write_text("the workspace's", encoding="utf-8")
    workspace.warehouse_path.with_name("warehouse.duckdb.wal").write_bytes(b"a log of another database")
    key = workspace.key_path.read_bytes()
    workspace.key_path.write_bytes(b"a key made since" * 2)
    (workspace.registry / "registered-since.yaml").write_text("id: since\n", encoding="utf-8")
    restored = restore(workspace, tmp_path / "new")
    assert workspace.key_path.read_bytes() == key and stat.S_IMODE(workspace.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(workspace.warehouse_path.stat().st_mode) == 0o600
    assert not (workspace.registry / "registered-since.yaml").exists()
    assert stat.S_IMODE(workspace.registry.stat().st_mode) == 0o700
    assert restored.packages_added == ["releases/2026Q1-v1"]
    assert (workspace.publish / "releases" / "2026Q2-v1" / "kept.txt").exists()
    assert not workspace.warehouse_path.with_name("warehouse.duckdb.wal").exists()
    assert workspace.settings_path.read_text(encoding="utf-8") == settings
    with connect(workspace.warehouse_path) as con:
        assert releases_missing_from_ledger(con, workspace) == []
        assert con.execute("SELECT count(DISTINCT release_id) FROM privacy_ledger").fetchall() == [(2,)]


def test_a_copy_of_a_package_under_another_name_is_the_same_release(workspace: Workspace) -> None:
    _charge(workspace, "2026Q1-v1")
    _package(workspace.releases, "2026Q1-v1")
    shutil.copytree(workspace.releases / "2026Q1-v1", workspace.releases / "2026Q1-v1.old")
    with connect(workspace.warehouse_path) as con:
        assert releases_missing_from_ledger(con, workspace) == []


def test_restoring_reads_the_sites_record_refuses_a_newer_schema_and_loads_again_what_came_after(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-trial: a damaged warehouse with the newer packages deleted let an older backup back; a backup of a newer
    schema was put back, and `collab run` then crashed; a file loaded after the backup stayed "loaded" without rows,
    and sent again was refused as a duplicate; a restore stopped mid-copy kept a half package for good."""
    from collab.states import read_state, write_state

    _charge(workspace, "2026Q1-v1")
    _package(workspace.publish / "releases", "2026Q1-v1")
    back_up(workspace, tmp_path / "old")
    (workspace.publish / "site").mkdir()
    (workspace.publish / "site" / "built-from.json").write_text(
        json.dumps({"releases": ["2026Q1-v1", "2026Q2-v1"]}), encoding="utf-8"
    )
    workspace.warehouse_path.write_bytes(b"damaged" * 1000)  # and no package of 2026Q2-v1 left
    with pytest.raises(BackupError, match=r"older than release\(s\) 2026Q2-v1"):
        restore(workspace, tmp_path / "old")
    (workspace.publish / "site" / "built-from.json").unlink()

    newer = tmp_path / "newer"
    shutil.copytree(tmp_path / "old", newer)
    manifest = json.loads((newer / MANIFEST).read_text(encoding="utf-8"))
    monkeypatch.setattr(backups, "_described_warehouse", lambda path: (99, manifest["releases_charged"]))
    (newer / MANIFEST).write_text(json.dumps(manifest | {"schema_version": 99}), encoding="utf-8")
    with pytest.raises(BackupError, match="schema version 99, newer than this code's"):
        restore(workspace, newer)
    monkeypatch.undo()

    (workspace.staging / "charity-c-00000000a1f7").mkdir(parents=True)
    (workspace.staging / "charity-c-00000000a1f7" / "contacts.parquet").touch()  # staged: it can be loaded again
    write_state(workspace, submission_id="charity-c-00000000a1f7", charity_id="c", file_name="x.csv", state="loaded")
    (workspace.publish / "releases" / ".2026Q1-v1.restoring").mkdir()  # left by a restore stopped mid-copy
    shutil.rmtree(workspace.publish / "releases" / "2026Q1-v1")
    restored = restore(workspace, tmp_path / "old")
    assert restored.submissions_resumed == ["charity-c-00000000a1f7"]
    state = read_state(workspace, "charity-c-00000000a1f7")
    assert state is not None and state.state == "checked"  # unfinished: the next run loads it again
    assert restored.packages_added == ["publish/releases/2026Q1-v1"]
    assert sorted(p.name for p in (workspace.publish / "releases").iterdir()) == ["2026Q1-v1"]
    assert not workspace.restore_marker.exists()


def test_a_restore_that_stops_part_way_leaves_the_workspace_refusing_every_command_but_restore(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _charge(workspace, "2026Q1-v1")
    back_up(workspace, tmp_path / "backup")
    real_put_back = backups._put_back_folder

    def killed(source: Path, target: Path) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(backups, "_put_back_folder", killed)
    with pytest.raises(BackupError, match="stopped part-way"):
        restore(workspace, tmp_path / "backup")
    refused = _collab("budget")
    assert refused.exit_code == 2 and "stopped part-way: run `collab restore" in " ".join(refused.output.split())
    monkeypatch.setattr(backups, "_put_back_folder", real_put_back)
    assert _collab("restore", str(tmp_path / "backup")).exit_code == 0
    assert _collab("budget").exit_code == 0


def test_a_restore_puts_the_key_back_into_a_secrets_folder_that_is_a_link(workspace: Workspace, tmp_path: Path) -> None:
    """A re-trial: with `secrets/` a link (keys kept on their own mount) every restore failed with "File exists"."""
    _charge(workspace, "2026Q1-v1")
    (workspace.secrets / "backup.json").write_text("{}", encoding="utf-8")
    back_up(workspace, tmp_path / "backup")
    key = workspace.key_path.read_bytes()
    mounted = tmp_path / "keys-mount"
    shutil.move(workspace.secrets, mounted)
    workspace.secrets.symlink_to(mounted)
    workspace.key_path.write_bytes(b"another key, made since" * 2)
    (mounted / "backup.json").unlink()
    restore(workspace, tmp_path / "backup")
    assert workspace.secrets.is_symlink() and (mounted / "pseudonymisation.key").read_bytes() == key
    # A file named as a backup's manifest, inside a folder, is put back like any other.
    assert (mounted / "backup.json").read_text(encoding="utf-8") == "{}"


def test_what_is_put_into_the_package_folders_by_hand_is_never_read_through_a_link_nor_whole_when_huge(
    workspace: Workspace, tmp_path: Path
) -> None:
    """A hostile trial: a FIFO as a release.json hung `collab budget`; a link to a folder outside had its release.json
    read and its contents shown; a 330 MB release.json took 12 GB of memory. Each is now named by its folder."""
    (workspace.releases / "2025Q3-v1").mkdir(parents=True)
    os.mkfifo(workspace.releases / "2025Q3-v1" / "release.json")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "release.json").write_text(json.dumps({"release_id": "SECRET-FROM-OUTSIDE"}), encoding="utf-8")
    (workspace.releases / "zz-link").symlink_to(outside)
    (workspace.releases / "2025Q4-v1").mkdir()
    with (workspace.releases / "2025Q4-v1" / "release.json").open("w", encoding="utf-8") as huge:
        huge.write('{"release_id": "2025Q4-v1", "padding": "')
        huge.truncate(17 * 1024 * 1024)  # past what any record of ours holds, without writing it
    (workspace.publish / "site").mkdir(parents=True)
    (outside / "built-from.json").write_text(json.dumps({"releases": ["OUTSIDE-2099"]}), encoding="utf-8")
    (workspace.publish / "site" / "built-from.json").symlink_to(outside / "built-from.json")
    with connect(workspace.warehouse_path) as con:
        assert releases_missing_from_ledger(con, workspace) == ["2025Q3-v1", "2025Q4-v1", "zz-link"]


def test_a_restore_names_each_setting_it_puts_back_and_which_let_a_person_lose_more(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile trial: a backup from before the budgets were tightened put its looser ones back, unannounced."""
    _charge(workspace, "2026Q1-v1")
    settings = workspace.settings.model_copy(deep=True)
    settings.privacy.lifetime_rho, settings.privacy.linked_units_per_person = 8.0, 1
    settings.instance.max_concurrent_runs = 3
    workspace.save_settings(settings)
    back_up(workspace, tmp_path / "backup")
    tightened = settings.model_copy(deep=True)
    tightened.privacy.lifetime_rho, tightened.privacy.linked_units_per_person = 4.0, 2
    tightened.privacy.max_unlinked_charities, tightened.privacy.link_threshold = 3, 0.9
    tightened.instance.max_concurrent_runs = 1
    workspace.save_settings(tightened)
    assert workspace.settings.instance.max_concurrent_runs == 1  # read, and so kept, before the restore
    real_put_back = backups._put_back_folder

    def killed(source: Path, target: Path) -> None:  # after the settings were put back
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(backups, "_put_back_folder", killed)
    with pytest.raises(BackupError, match="stopped part-way"):
        restore(workspace, tmp_path / "backup")
    monkeypatch.setattr(backups, "_put_back_folder", real_put_back)

    restored = restore(workspace, tmp_path / "backup")  # run again: the changes are those the first one made

    assert [(c.name, c.replaced, c.restored, c.loosens_privacy) for c in restored.settings_changed] == [
        ("privacy.lifetime_rho", 4.0, 8.0, True),
        ("privacy.max_unlinked_charities", 3, None, False),
        ("privacy.linked_units_per_person", 2, 1, True),
        ("privacy.link_threshold", 0.9, 0.5, False),
        ("instance.max_concurrent_runs", 1, 3, False),
    ]
    # The instance's configuration is made from the settings put back, not those the workspace had read.
    assert "max_concurrent_runs: 3" in (workspace.dagster_home / "dagster.yaml").read_text(encoding="utf-8")
    assert [p.name for p in workspace.home.iterdir() if "restor" in p.name] == []
    assert restore(workspace, tmp_path / "backup").settings_changed == []


def test_a_backup_whose_settings_cannot_be_used_is_refused_and_one_mends_settings_that_cannot(
    workspace: Workspace, tmp_path: Path
) -> None:
    _charge(workspace, "2026Q1-v1")
    back_up(workspace, tmp_path / "good")
    shutil.copytree(tmp_path / "good", tmp_path / "bad")
    (tmp_path / "bad" / "settings.yaml").write_text("privacy:\n  lifetime_rho: -1\n", encoding="utf-8")
    manifest = json.loads((tmp_path / "bad" / MANIFEST).read_text(encoding="utf-8"))
    manifest["files"]["settings.yaml"] = backups._described(tmp_path / "bad" / "settings.yaml")
    (tmp_path / "bad" / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    before = workspace.settings_path.read_bytes()
    with pytest.raises(BackupError, match=r"settings cannot be used .*lifetime_rho.*nothing was changed"):
        restore(workspace, tmp_path / "bad")
    assert workspace.settings_path.read_bytes() == before and not workspace.restore_marker.exists()

    workspace.settings_path.write_bytes(b"\xff\xfe not text")  # damaged: every other command refuses
    assert _collab("budget").exit_code == 2
    mended = _collab("restore", str(tmp_path / "good"))
    assert mended.exit_code == 0, mended.output
    assert "Settings put back" not in mended.output  # nothing readable to compare with
    assert workspace.settings_path.read_bytes() == before
    assert _collab("budget").exit_code == 0


@pytest.mark.parametrize("made_how", ["folder", "fifo", "link to nothing"])
def test_settings_that_are_no_file_are_refused_in_a_line_and_a_restore_mends_all_but_a_folder(
    workspace: Workspace, tmp_path: Path, made_how: str
) -> None:
    """A hostile trial: such a settings.yaml hung every command (a FIFO) or ended it in a traceback."""
    _charge(workspace, "2026Q1-v1")
    back_up(workspace, tmp_path / "backup")
    workspace.settings_path.unlink()
    if made_how == "folder":
        workspace.settings_path.mkdir()
    elif made_how == "fifo":
        os.mkfifo(workspace.settings_path)
    else:
        workspace.settings_path.symlink_to(tmp_path / "nowhere.yaml")
    refused = _collab("budget")
    assert refused.exit_code == 2 and "settings.yaml" in "".join(refused.output.split()), refused.output
    restored = _collab("restore", str(tmp_path / "backup"))
    if made_how == "folder":
        assert restored.exit_code == 1 and "is a folder" in " ".join(restored.output.split())
        assert not workspace.restore_marker.exists()
        return
    assert restored.exit_code == 0, restored.output
    assert "could not be read, so what the backup's put back changed cannot be named" in " ".join(
        restored.output.split()
    )
    assert _collab("budget").exit_code == 0


@pytest.mark.parametrize("kept", ["none", "false", "folder"])
def test_a_backup_without_settings_that_can_be_used_is_refused_before_anything_changes(
    workspace: Workspace, tmp_path: Path, kept: str
) -> None:
    """A hostile trial: a backup without settings.yaml replaced the warehouse, then stopped part-way at every try."""
    _charge(workspace, "2026Q1-v1")
    back_up(workspace, tmp_path / "backup")
    settings = tmp_path / "backup" / "settings.yaml"
    settings.unlink()
    manifest = json.loads((tmp_path / "backup" / MANIFEST).read_text(encoding="utf-8"))
    del manifest["files"]["settings.yaml"]
    if kept == "false":  # YAML for no mapping at all, once read as the defaults
        settings.write_text("false\n", encoding="utf-8")
    elif kept == "folder":
        settings.mkdir()
        (settings / "privacy.yaml").write_text("{}\n", encoding="utf-8")
    for path in [settings, *(settings.iterdir() if settings.is_dir() else [])]:
        if path.is_file():
            manifest["files"][str(path.relative_to(tmp_path / "backup"))] = backups._described(path)
    (tmp_path / "backup" / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    warehouse = workspace.warehouse_path.read_bytes()
    with pytest.raises(BackupError, match="nothing was changed"):
        restore(workspace, tmp_path / "backup")
    assert workspace.warehouse_path.read_bytes() == warehouse and not workspace.restore_marker.exists()
