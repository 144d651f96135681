"""Backups of the workspace, and the privacy ledger's guard against a copy older than the releases made."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from collab.backup import MANIFEST, BackupError, back_up, releases_missing_from_ledger, verify_backup
from collab.warehouse import connect
from collab.workspace import Workspace


def _charge(ws: Workspace, release_id: str) -> None:
    with connect(ws.warehouse_path) as con:
        con.execute(
            "INSERT INTO privacy_ledger (release_id, period, indicator_id, measurement, kind, mechanism, rho, "
            "noise_scale, sensitivity, recorded_at, max_units, rho_per_person, spent_order) "
            "VALUES (?, ?, 'people', 'count', 'release', 'gaussian', 0.1, 2.0, 1.0, now(), 1, 0.1, 1)",
            [release_id, release_id[:6]],
        )


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
    assert not (backup / "registry" / "link").exists()  # a link is neither followed nor copied
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
    with pytest.raises(BackupError, match="not empty"):
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
