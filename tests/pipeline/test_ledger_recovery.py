"""`collab recover-releases`: a ledger lost with its warehouse, charged again from the release packages.

One collaborative makes three releases through the real assets (2026Q1-v1 and 2025Q4-v1 published, then the
revision 2026Q1-v2 awaiting approval) and its site; each test takes a copy of it, loses or rolls back the warehouse,
and tampers with what it says.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import DagsterInstance

from collab.invariants import unit_caps
from collab.publication import sha256_of
from collab.recovery import Recovery, RecoveryRefused, recover_releases
from collab.site import build_site
from collab.states import read_state, write_state
from collab.warehouse import connect
from collab.workspace import Workspace
from pipelines.run_lock import run_lock
from pipelines.runner import rebuild_stale_site
from privacy.mechanisms import epsilon_at, gaussian_measurement
from tests.pipeline.test_releases import insert_people, register_contributors, release, set_privacy
from tests.system.commands import COLLAB, collab

# In the order they were made: two quarters' releases interleaved, the last a revision awaiting approval.
MADE = ["2026Q1-v1", "2025Q4-v1", "2026Q1-v2"]
LEDGER = (
    "SELECT release_id, period, indicator_id, measurement, kind, mechanism, rho, noise_scale, sensitivity, max_units, "
    "rho_per_person, spent_order FROM privacy_ledger ORDER BY spent_order, rowid"
)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The collaborative as it was before the loss: its home, and what its warehouse and `collab budget` said."""
    home = tmp_path_factory.mktemp("made") / "var"
    workspace = Workspace(home)
    workspace.init()
    settings = workspace.settings.model_copy(deep=True)
    settings.publication.first_quarter = "2025Q4"
    workspace.save_settings(settings)
    with pytest.MonkeyPatch.context() as env:
        for name, value in workspace.environment().items():
            env.setenv(name, value)
        register_contributors(workspace, ["charity-c", "charity-d"])
        insert_people(workspace)
        set_privacy(workspace, auto_publish=True)
        instance = DagsterInstance.ephemeral()
        assert release(workspace, instance).success
        assert release(workspace, instance, period="2025Q4").success
        set_privacy(workspace, auto_publish=False)
        assert release(workspace, instance, revise=True).success
    build_site(workspace.publish, workspace.settings.publication)
    with connect(workspace.warehouse_path, read_only=True) as con:
        ledger = con.execute(LEDGER).fetchall()
        releases = con.execute("SELECT * FROM releases ORDER BY release_id").fetchall()
        cells = con.execute("SELECT * FROM release_cells ORDER BY ALL").fetchall()
    yield {
        "home": home,
        "ledger": ledger,
        "releases": releases,
        "cells": cells,
        "budget": _figures(json.loads(collab(home, "budget", "--json").stdout)),
    }


@pytest.fixture
def lost(made: dict[str, Any], tmp_path: Path) -> Workspace:
    """A copy of the collaborative whose warehouse is lost, its packages and site kept."""
    home = tmp_path / "var"
    shutil.copytree(made["home"], home, symlinks=True)
    (home / "warehouse.duckdb").unlink()
    return Workspace(home)


def _figures(budget: dict[str, Any]) -> dict[str, Any]:
    """`collab budget --json` but the times entries were recorded at (a recharged entry's is its release's)."""
    return budget | {"entries": [{k: v for k, v in e.items() if k != "recorded_at"} for e in budget["entries"]]}


def _recover(workspace: Workspace, *release_ids: str) -> Recovery:
    return recover_releases(workspace, release_ids, caps=unit_caps(workspace.settings.privacy))


def _lose_packages(workspace: Workspace, *release_ids: str) -> None:
    """Every copy of each release's package deleted, made and published."""
    for release_id in release_ids:
        for root in (workspace.releases, workspace.publish / "releases"):
            shutil.rmtree(root / release_id, ignore_errors=True)


def _use_environment(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The workspace's variables set, as the commands and the Dagster resources read them."""
    for name, value in workspace.environment().items():
        monkeypatch.setenv(name, value)


def _rewrite(workspace: Workspace, release_id: str, change: Any) -> None:
    """Change both copies of a release's ``release.json`` alike (as someone covering their tracks would)."""
    for root in (workspace.home, workspace.publish):
        path = root / "releases" / release_id / "release.json"
        if path.exists():
            manifest = json.loads(path.read_text(encoding="utf-8"))
            change(manifest)
            path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _nothing_written(workspace: Workspace) -> None:
    with duckdb.connect(str(workspace.warehouse_path), read_only=True) as con:
        for table in ("privacy_ledger", "privacy_recharges", "releases", "release_cells"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchall() == [(0,)], table


def test_a_lost_warehouse_is_charged_again_as_it_was_and_the_next_release_takes_a_new_id(
    made: dict[str, Any], lost: Workspace
) -> None:
    home = lost.home
    before = {p: p.read_bytes() for p in sorted((home / "releases" / "2026Q1-v2").rglob("*")) if p.is_file()}
    refused = collab(home, "budget", "--json", check=False)
    assert refused.returncode == 1 and json.loads(refused.stdout)["releases_missing_from_ledger"] == sorted(MADE)
    said = " ".join(collab(home, "budget", check=False).stdout.split())
    assert (
        "(`collab restore`), or, with none, charge them again from their packages (`collab recover-releases`)" in said
    )

    recovered = json.loads(collab(home, "recover-releases", "--json").stdout)
    with connect(lost.warehouse_path, read_only=True) as con:
        assert con.execute("SELECT action, subject, detail FROM audit_log").fetchall() == [
            ("recover", release_id, f"releases/{release_id}") for release_id in MADE
        ]
    assert [(r["release_id"], r["spent_order"]) for r in recovered["releases"]] == [
        (r, n) for n, r in enumerate(MADE, 1)
    ]
    assert recovered["releases"][0]["package"] == "releases/2026Q1-v1" and recovered["releases"][0]["recharged"] == 0
    with connect(lost.warehouse_path, read_only=True) as con:
        # To the last digit: every ρ per unit and per person, in the order charged, and the rows beside them.
        assert con.execute(LEDGER).fetchall() == made["ledger"]
        assert con.execute("SELECT * FROM releases ORDER BY release_id").fetchall() == made["releases"]
        assert con.execute("SELECT * FROM release_cells ORDER BY ALL").fetchall() == made["cells"]
    shown = collab(home, "budget", "--json")  # whole again: exit 0, the same figures
    assert _figures(json.loads(shown.stdout)) == made["budget"]

    again = collab(home, "recover-releases")  # a second run charges nothing, and says so
    assert "The ledger holds every release whose package exists: nothing was charged." in " ".join(again.stdout.split())
    assert json.loads(collab(home, "recover-releases", "--json").stdout)["releases"] == []

    # Released again without new noise, the quarter's package is rendered again from the warehouse: byte for byte.
    rerun = json.loads(collab(home, "release", "2026Q1", "--json").stdout)
    assert (rerun["release_id"], rerun["new_spend"], rerun["error"]) == ("2026Q1-v2", False, None)
    assert {p: p.read_bytes() for p in before} == before
    # Approved, it passes the disclosure gate on the figures put back, and is published.
    [approved] = json.loads(collab(home, "approve", "2026Q1-v2", "--json").stdout)["releases"]
    assert approved["published"] and approved["error"] is None
    # The next revision takes the next id, and is charged after the releases charged again.
    # (Its disclosure check may refuse it: the charities' submissions were lost with the warehouse, and not loaded again.)
    revised = json.loads(collab(home, "release", "2026Q1", "--revise", "--json", check=False).stdout)
    assert (revised["release_id"], revised["new_spend"]) == ("2026Q1-v3", True)
    with connect(lost.warehouse_path, read_only=True) as con:
        assert con.execute(
            "SELECT DISTINCT spent_order FROM privacy_ledger WHERE release_id = '2026Q1-v3'"
        ).fetchall() == [(4,)]


def test_a_warehouse_put_back_from_before_some_releases_is_charged_the_rest_after_what_it_holds(
    made: dict[str, Any], lost: Workspace, tmp_path: Path
) -> None:
    """The copy held 2026Q1-v1 only (put back by hand): the two after it are charged after it, as they were, and a
    file loaded after the copy was made is loaded again by the next run, as `collab restore` has it."""
    shutil.copy2(made["home"] / "warehouse.duckdb", lost.warehouse_path)
    with connect(lost.warehouse_path) as con:
        for table in ("privacy_ledger", "releases", "release_cells"):
            con.execute(f"DELETE FROM {table} WHERE release_id <> '2026Q1-v1'")
    (lost.staging / "charity-c-00000000a1f7").mkdir(parents=True)
    (lost.staging / "charity-c-00000000a1f7" / "contacts.parquet").touch()  # staged: it can be loaded again
    write_state(lost, submission_id="charity-c-00000000a1f7", charity_id="charity-c", file_name="x.csv", state="loaded")
    (lost.staging / "charity-c-00000000b0d5").mkdir(parents=True)  # its staged files purged: it cannot
    write_state(lost, submission_id="charity-c-00000000b0d5", charity_id="charity-c", file_name="y.csv", state="loaded")
    recovery = _recover(lost)
    assert [(r.release_id, r.spent_order) for r in recovery.releases] == [("2025Q4-v1", 2), ("2026Q1-v2", 3)]
    state = read_state(lost, "charity-c-00000000a1f7")
    assert recovery.submissions_resumed == ["charity-c-00000000a1f7"] and state is not None and state.state == "checked"
    # A purged file's charity was told it was used, which stays true of the releases made from it (a hostile trial:
    # resumed, it failed for want of its files, and its feedback said nothing from it had been used).
    purged = read_state(lost, "charity-c-00000000b0d5")
    assert purged is not None and purged.state == "loaded"
    with connect(lost.warehouse_path, read_only=True) as con:
        assert con.execute(LEDGER).fetchall() == made["ledger"]
    # Asked for by name, a release the ledger holds is not charged again.
    assert _recover(lost, "2026Q1-v1") == Recovery([], ["2026Q1-v1"], [])


def test_releases_are_charged_in_the_order_they_were_made_whatever_their_clocks_said(lost: Workspace) -> None:
    """The revision's clock set back before both other releases (though not before its quarter ended, which no
    release can be): what each says had been spent up to it orders them."""
    _rewrite(lost, "2026Q1-v2", lambda m: m.update(created_at="2026-04-01T00:00:00+00:00"))
    assert [r.release_id for r in _recover(lost).releases] == MADE


def test_a_rho_lowered_below_what_openDP_maps_give_is_refused_and_nothing_is_written(lost: Workspace) -> None:
    def lowered(manifest: dict[str, Any]) -> None:
        manifest["indicators"][0]["measurements"][0]["rho"] /= 2

    _rewrite(lost, "2025Q4-v1", lowered)
    with pytest.raises(RecoveryRefused) as refused:
        _recover(lost)
    assert (refused.value.code, refused.value.package, refused.value.field) == (
        "E_RHO_CONTRADICTS_MAP",
        "releases/2025Q4-v1",
        "indicators.0.measurements.0.rho",
    )
    assert "is not what OpenDP's map gives for its parameters" in str(refused.value)
    _nothing_written(lost)


def test_an_earlier_release_forged_to_have_cost_less_is_refused_by_the_packages_after_it(lost: Workspace) -> None:
    """The attack: one measurement's scale doubled and its ρ lowered to what OpenDP's map then gives, and every figure
    of its package that adds it up lowered alike, in both copies. The release made after it says what had been spent
    over the lifetime up to it, and the ledger charged from the forged package would hold less."""

    def forged(manifest: dict[str, Any]) -> None:
        measurement = manifest["indicators"][0]["measurements"][0]
        scale = measurement["noise_scale"] * 2
        rho = float(gaussian_measurement(lambda a: [], l2_sensitivity=measurement["sensitivity"], scale=scale).map(1))
        saved, privacy = measurement["rho"] - rho, manifest["privacy"]
        units = privacy["per_person"]["max_units"]
        measurement.update(noise_scale=scale, rho=rho)
        manifest["indicators"][0]["rho"] -= saved
        privacy["rho_spent"] -= saved
        for name in ("release_rho", "period_rho", "lifetime_rho"):
            privacy["per_person"][name] -= saved * units**2
        privacy["period_rho_spent"] = privacy["per_person"]["period_rho"]
        privacy["lifetime_rho_spent"] = privacy["per_person"]["lifetime_rho"]
        privacy["epsilon"] = epsilon_at(privacy["rho_spent"], privacy["delta"])
        for name in ("release", "period", "lifetime"):
            privacy["per_person"][f"{name}_epsilon"] = epsilon_at(
                privacy["per_person"][f"{name}_rho"], privacy["delta"]
            )

    _rewrite(lost, "2026Q1-v1", forged)
    with pytest.raises(RecoveryRefused) as refused:
        _recover(lost)
    assert (refused.value.code, refused.value.package) == ("E_SPEND_NOT_ITEMISED", "releases/2025Q4-v1")
    assert refused.value.field == "privacy.per_person.lifetime_rho"
    _nothing_written(lost)


@pytest.mark.parametrize(
    ("damage", "code", "field"),
    [
        ("field removed", "E_PACKAGE_FIELD", "privacy.per_person.release_rho"),
        ("not JSON", "E_PACKAGE_UNREADABLE", ""),
        ("release.json lost", "E_PACKAGE_UNREADABLE", ""),
        ("a figure changed", "E_PACKAGE_FILES", ""),
        ("copies differ", "E_PACKAGES_DISAGREE", "indicators.3.measurements.0.noise_scale"),
        ("a link inside", "E_PACKAGE_LINK", "data/people_by_need_region.csv"),
        ("a path out of it", "E_PACKAGE_FIELD", "indicators.0.path"),
        ("ten million cells a person", "E_PACKAGE_FIELD", "indicators.7.max_cells_per_person"),  # hung composing
        # A hostile trial's edits, their checksums made again, that were charged as they said:
        ("a figure in full-width digits", "E_PACKAGE_FIELD", "data/people_by_need_region.csv row 2 value"),
        ("a figure with an underscore", "E_PACKAGE_FIELD", "data/people_by_need_region.csv row 2 value"),
        ("a figure with a leading zero", "E_PACKAGE_FIELD", "data/people_by_need_region.csv row 2 value"),
        ("made in 2099", "E_PACKAGE_FIELD", "created_at"),
        ("made at the calendar's end", "E_PACKAGE_FIELD", "created_at"),  # OverflowError
        ("made before its quarter ended", "E_PACKAGE_FIELD", "created_at"),
    ],
)
def test_a_package_that_is_not_whole_and_consistent_is_refused_naming_it(
    lost: Workspace, tmp_path: Path, damage: str, code: str, field: str
) -> None:
    package = lost.releases / "2026Q1-v1"
    if damage == "field removed":
        _rewrite(lost, "2026Q1-v1", lambda m: m["privacy"]["per_person"].pop("release_rho"))
    elif damage == "not JSON":
        (package / "release.json").write_text('{"release_id": "2026Q1-v1",', encoding="utf-8")
    elif damage == "release.json lost":
        shutil.rmtree(lost.publish / "releases" / "2026Q1-v1")
        (package / "release.json").unlink()
    elif damage == "a figure changed":
        csv = package / "data" / "people_by_need_region.csv"
        csv.write_text(csv.read_text(encoding="utf-8").replace(",false,", ",true,", 1), encoding="utf-8")
    elif damage == "copies differ":
        published = lost.publish / "releases" / "2026Q1-v1" / "release.json"
        manifest = json.loads(published.read_text(encoding="utf-8"))
        manifest["indicators"][3]["measurements"][0]["noise_scale"] += 1
        published.write_text(json.dumps(manifest), encoding="utf-8")
    elif damage == "ten million cells a person":
        _rewrite(lost, "2026Q1-v1", lambda m: m["indicators"][7].update(max_cells_per_person=10_000_000))
    elif damage.startswith("a figure "):
        for root in (lost.home, lost.publish):
            csv = root / "releases" / "2026Q1-v1" / "data" / "people_by_need_region.csv"
            header, first, *rest = csv.read_text(encoding="utf-8").split("\n")
            cells = first.split(",")
            value = cells[header.split(",").index("value")]
            assert value.isascii() and value.isdigit() and len(value) > 1, value
            figure = {
                "a figure in full-width digits": value.translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"}),
                "a figure with an underscore": value[0] + "_" + value[1:],
                "a figure with a leading zero": "0" + value,
            }[damage]
            cells[header.split(",").index("value")] = figure
            csv.write_text("\n".join([header, ",".join(cells), *rest]), encoding="utf-8")
        _rewrite(lost, "2026Q1-v1", lambda m: m["files"].update({f: sha256_of(package / f) for f in m["files"]}))
    elif damage.startswith("made "):
        made_at = {
            "made in 2099": "2099-01-01T00:00:00+00:00",
            "made at the calendar's end": "0001-01-01T00:00:00+14:00",
            "made before its quarter ended": "2026-03-30T12:00:00+00:00",
        }[damage]
        _rewrite(lost, "2026Q1-v1", lambda m: m.update(created_at=made_at))
    elif damage == "a path out of it":
        _rewrite(lost, "2026Q1-v1", lambda m: m["indicators"][0].update(path="data/../../../settings.yaml"))
    else:
        elsewhere = tmp_path / "people_by_need_region.csv"
        shutil.move(package / "data" / "people_by_need_region.csv", elsewhere)
        (package / "data" / "people_by_need_region.csv").symlink_to(elsewhere)
    if damage == "release.json lost":  # a folder named like a release is one made: releases wait for it
        missing = collab(lost.home, "budget", "--json", check=False)
        assert missing.returncode == 1 and "2026Q1-v1" in json.loads(missing.stdout)["releases_missing_from_ledger"]
    with pytest.raises(RecoveryRefused) as refused:
        _recover(lost)
    assert (refused.value.code, refused.value.field) == (code, field), str(refused.value)
    assert refused.value.package.endswith("releases/2026Q1-v1")
    _nothing_written(lost)


def test_a_package_that_is_a_link_is_not_followed_and_a_command_says_why_in_json(
    lost: Workspace, tmp_path: Path
) -> None:
    shutil.rmtree(lost.publish / "releases" / "2025Q4-v1")
    shutil.move(lost.releases / "2025Q4-v1", tmp_path / "2025Q4-v1")
    (lost.releases / "2025Q4-v1").symlink_to(tmp_path / "2025Q4-v1")
    refused = collab(lost.home, "recover-releases", "--json", check=False)
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["refused"] | {"message": ""} == {
        "code": "E_PACKAGE_LINK",
        "package": "releases/2025Q4-v1",
        "field": "",
        "message": "",
    }
    assert "a link is never followed" in " ".join(refused.stderr.split())
    _nothing_written(lost)


@pytest.mark.parametrize(
    ("gone", "code", "said"),
    [
        ("2026Q1-v1", "E_REVISION_MISSING", "2026Q1-v1 of 2026Q1 came before 2026Q1-v2"),
        ("2025Q4-v1", "E_SPEND_NOT_ITEMISED", "had been spent for the worst-case person over the lifetime up to it"),
    ],
)
def test_a_release_lost_between_two_others_is_refused_not_left_out(
    lost: Workspace, gone: str, code: str, said: str
) -> None:
    """Its id would be free for the next release of its quarter, and what it cost left out of every later figure: the
    revision of its quarter after it, or the next release of any quarter, says what had been spent up to it."""
    _lose_packages(lost, gone)
    (lost.publish / "site" / "built-from.json").unlink()  # the site's record of it lost too
    with pytest.raises(RecoveryRefused) as refused:
        _recover(lost)
    assert refused.value.code == code and said in str(refused.value)
    _nothing_written(lost)


def test_a_warehouse_that_is_no_older_copy_of_this_workspaces_is_refused(made: dict[str, Any], lost: Workspace) -> None:
    """Its ledger holds a release made after one it lacks (charged now, that one would count after it), or a release's
    row without its charges."""
    shutil.copy2(made["home"] / "warehouse.duckdb", lost.warehouse_path)
    with connect(lost.warehouse_path) as con:
        for table in ("privacy_ledger", "releases", "release_cells"):
            con.execute(f"DELETE FROM {table} WHERE release_id = '2026Q1-v1'")
    with pytest.raises(RecoveryRefused) as refused:
        _recover(lost)
    assert refused.value.code == "E_LEDGER_AHEAD" and "2026Q1-v1 was made before 2026Q1-v2" in str(refused.value)
    shutil.copy2(made["home"] / "warehouse.duckdb", lost.warehouse_path)
    with connect(lost.warehouse_path) as con:
        con.execute("DELETE FROM privacy_ledger WHERE release_id = '2026Q1-v2'")
    with pytest.raises(RecoveryRefused) as refused:
        _recover(lost)
    assert (refused.value.code, refused.value.package) == ("E_WAREHOUSE_CONFLICT", "releases/2026Q1-v2")
    with connect(lost.warehouse_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM privacy_ledger").fetchall() == [(len(made["ledger"]) - 21,)]


@pytest.mark.parametrize(
    ("release_id", "code", "field"),
    [
        # Forged, it would take the release of its quarter, which `collab run` would then never make.
        ("2099Q1-v1", "E_PACKAGE_FIELD", "period"),
        # Its revisions before it are a billion gaps: the first few are named, at once.
        ("2025Q4-v1000000000", "E_REVISION_MISSING", ""),
    ],
)
def test_a_package_claiming_a_place_no_release_can_have_is_refused(
    lost: Workspace, release_id: str, code: str, field: str
) -> None:
    period, revision = release_id.split("-v")
    package = lost.releases / release_id
    shutil.copytree(lost.releases / "2025Q4-v1", package)
    for table in (package / "data").iterdir():  # its figures said to be the forged release's, and their checksums
        table.write_text(table.read_text(encoding="utf-8").replace("\n2025Q4-v1,2025Q4,", f"\n{release_id},{period},"))

    def moved(manifest: dict[str, Any]) -> None:
        kind = "release" if revision == "1" else "revision"
        manifest.update(release_id=release_id, period=period, revision=int(revision), kind=kind)
        manifest["files"] = {name: sha256_of(package / name) for name in manifest["files"]}

    _rewrite(lost, release_id, moved)
    with pytest.raises(RecoveryRefused) as refused:
        _recover(lost, release_id)
    assert (refused.value.code, refused.value.field) == (code, field)
    _nothing_written(lost)


def test_a_published_release_whose_packages_are_all_lost_is_refused_by_the_sites_record(lost: Workspace) -> None:
    """The site was built from 2025Q4-v1: charged without it, the next release of 2025Q4 would be 2025Q4-v1 again."""
    _lose_packages(lost, "2025Q4-v1")
    with pytest.raises(RecoveryRefused) as refused:
        _recover(lost)
    assert (refused.value.code, refused.value.package) == ("E_RELEASE_WITHOUT_PACKAGE", "publish/site/built-from.json")
    assert "2025Q4-v1" in str(refused.value)
    _nothing_written(lost)


def test_a_release_the_site_was_built_from_refuses_the_next_though_its_packages_are_lost(
    lost: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every package lost with the warehouse, the published site still says 2025Q4-v1 and 2026Q1-v1 were made: a
    release of 2025Q4 would have been 2025Q4-v1 again, with new noise, its cost left out of every figure."""
    _lose_packages(lost, *MADE)
    shown = collab(lost.home, "budget", "--json", check=False)
    assert shown.returncode == 1 and json.loads(shown.stdout)["releases_missing_from_ledger"] == [
        "2025Q4-v1",
        "2026Q1-v1",
    ]
    _use_environment(lost, monkeypatch)
    refused = release(lost, DagsterInstance.ephemeral(), period="2025Q4")
    assert not refused.success
    failure = next(e for e in refused.all_events if e.is_step_failure)
    assert "say they cost (2025Q4-v1, 2026Q1-v1)" in str(failure.event_specific_data.error)
    _nothing_written(lost)


def test_the_site_is_not_rebuilt_while_the_ledger_lacks_a_release_it_was_built_from(
    lost: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile trial: with 2025Q4-v1's packages lost too, the next `collab run` rebuilt the site without it, which
    erased the only trace of it; recovered without it, the next release of 2025Q4 took its id with new noise."""
    _lose_packages(lost, "2025Q4-v1")
    record = (lost.publish / "site" / "built-from.json").read_bytes()
    _use_environment(lost, monkeypatch)
    error = rebuild_stale_site(lost, DagsterInstance.ephemeral())
    assert error is not None and "The site was not rebuilt" in error and "2025Q4-v1" in error
    assert (lost.publish / "site" / "built-from.json").read_bytes() == record


def test_releases_charged_by_name_leave_the_rest_refusing_every_release(made: dict[str, Any], lost: Workspace) -> None:
    """Charging the first release alone leaves the later ones missing: no release may take the revision's id."""
    with pytest.raises(RecoveryRefused) as refused:
        _recover(lost, "2026Q1-v2")  # before the release it revises
    assert refused.value.code == "E_REVISION_MISSING"
    assert [r.release_id for r in _recover(lost, "2026Q1-v1").releases] == ["2026Q1-v1"]
    shown = json.loads(collab(lost.home, "budget", "--json", check=False).stdout)
    assert shown["releases_missing_from_ledger"] == ["2025Q4-v1", "2026Q1-v2"]
    revised = json.loads(collab(lost.home, "release", "2026Q1", "--revise", "--json", check=False).stdout)
    assert revised["release_id"] is None and "does not hold 2 release(s)" in revised["error"]
    assert [r.release_id for r in _recover(lost).releases] == ["2025Q4-v1", "2026Q1-v2"]
    with connect(lost.warehouse_path, read_only=True) as con:
        assert con.execute(LEDGER).fetchall() == made["ledger"]


def test_recovering_waits_for_the_run_lock(lost: Workspace) -> None:
    with run_lock(lost):
        waiting = subprocess.Popen(
            [str(COLLAB), "recover-releases", "--json"],
            env={**os.environ, "COLLAB_HOME": str(lost.home), "DAGSTER_HOME": str(lost.home / "dagster")},
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(4)
        assert waiting.poll() is None  # a `collab run` holds the workspace: nothing charged beside it
    out, _ = waiting.communicate(timeout=120)
    assert waiting.returncode == 0 and [r["release_id"] for r in json.loads(out)["releases"]] == MADE


def test_copies_that_differ_only_in_the_charities_named_are_one_release_naming_those_both_name(
    made: dict[str, Any], lost: Workspace
) -> None:
    """A package rendered again after a charity withdrew its consent no longer names it; the published copy still does."""
    _rewrite(lost, "2026Q1-v1", lambda m: m.update(named_contributors=["Charity C"]))
    (lost.releases / "2026Q1-v1" / "release.json").write_text(
        (lost.releases / "2026Q1-v1" / "release.json").read_text(encoding="utf-8").replace('"Charity C"', ""),
        encoding="utf-8",
    )
    assert len(_recover(lost).releases) == len(MADE)
    with connect(lost.warehouse_path, read_only=True) as con:
        assert con.execute("SELECT named_contributors FROM releases WHERE release_id = '2026Q1-v1'").fetchall() == [
            ([],)
        ]
    assert collab(lost.home, "recover-releases", "2026Q1", check=False).returncode == 2  # a quarter is no release id


def test_releases_charged_again_when_the_caps_were_raised_are_charged_again_with_them(
    workspace: Workspace, tmp_path: Path
) -> None:
    """2026Q1-v1 made at one unit a person (a declared cap of one charity that does not link records); the cap lifted,
    2025Q4-v1 charged it again at two as it was made. Lost, both are charged again so, in that order; with the cap
    declared again since, what the packages say cannot be made again, and nothing is charged until it is lifted."""
    register_contributors(workspace, ["charity-c", "charity-d"])
    insert_people(workspace)
    set_privacy(workspace, auto_publish=True, max_unlinked_charities=1)
    instance = DagsterInstance.ephemeral()
    assert release(workspace, instance).success
    set_privacy(workspace, max_unlinked_charities=None)
    assert release(workspace, instance, period="2025Q4").success
    recharges = "SELECT release_id, period, charged_with, units_before, units_after, rho_per_person, spent_order FROM privacy_recharges"
    with connect(workspace.warehouse_path, read_only=True) as con:
        ledger, recharged = con.execute(LEDGER).fetchall(), con.execute(recharges).fetchall()
    assert [row[:5] for row in recharged] == [("2026Q1-v1", "2026Q1", "2025Q4-v1", 1, 2)]
    budget = _figures(json.loads(collab(workspace.home, "budget", "--json").stdout))

    workspace.warehouse_path.unlink()
    set_privacy(workspace, max_unlinked_charities=1)  # declared again since: the recharge cannot be made again
    with pytest.raises(RecoveryRefused) as refused:
        _recover(workspace)
    assert (refused.value.code, refused.value.package) == ("E_SPEND_NOT_ITEMISED", "releases/2025Q4-v1")
    _nothing_written(workspace)
    set_privacy(workspace, max_unlinked_charities=None)
    recovery = _recover(workspace)
    assert [(r.release_id, r.spent_order, r.recharged > 0) for r in recovery.releases] == [
        ("2026Q1-v1", 1, False),
        ("2025Q4-v1", 3, True),
    ]
    with connect(workspace.warehouse_path, read_only=True) as con:
        assert (con.execute(LEDGER).fetchall(), con.execute(recharges).fetchall()) == (ledger, recharged)
    assert _figures(json.loads(collab(workspace.home, "budget", "--json").stdout)) == budget


def test_a_ledger_holding_a_release_for_less_than_its_package_states_refuses_the_next_release(
    made: dict[str, Any], lost: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile trial: a backup of another workspace, whose releases had the same ids at a twelfth of the cost, was
    restored; the ledger then counted a twelfth of what was spent, and the next package stated less than the last."""
    shutil.copy2(made["home"] / "warehouse.duckdb", lost.warehouse_path)
    with connect(lost.warehouse_path) as con:
        con.execute("UPDATE privacy_ledger SET rho = rho / 12, rho_per_person = rho_per_person / 12")
    shown = collab(lost.home, "budget", "--json", check=False)
    assert shown.returncode == 1 and json.loads(shown.stdout)["releases_missing_from_ledger"] == sorted(MADE)
    _use_environment(lost, monkeypatch)
    refused = release(lost, DagsterInstance.ephemeral(), revise=True)
    assert not refused.success
    failure = next(e for e in refused.all_events if e.is_step_failure)
    assert "holds less than their packages say they cost" in str(failure.event_specific_data.error)


@pytest.mark.parametrize("named", ["２０２６Q1-v1", "../../etc/passwd", "2026Q1-v1/.."])
def test_a_name_that_is_no_release_id_is_refused_in_json_too(lost: Workspace, named: str) -> None:
    """A hostile trial: full-width digits passed as a release id, and `--json` answered in plain text."""
    refused = collab(lost.home, "recover-releases", named, "--json", check=False)
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["refused"]["code"] == "E_RELEASE_ID"
    assert "is not a release id like 2026Q1-v1" in refused.stderr


def test_a_release_named_with_no_package_left_is_refused(lost: Workspace) -> None:
    with pytest.raises(RecoveryRefused) as refused:
        _recover(lost, "2025Q4-v2")
    assert refused.value.code == "E_NO_PACKAGE" and "no package of 2025Q4-v2" in str(refused.value)


@pytest.mark.parametrize("made_how", ["fifo", "huge"])
def test_a_package_holding_a_fifo_or_a_huge_file_is_refused_unread(lost: Workspace, made_how: str) -> None:
    """Put there by hand, a FIFO as a release.json hung the recovery for good, and a huge one was read whole."""
    record = lost.releases / "2025Q4-v1" / "release.json"
    record.unlink()
    if made_how == "fifo":
        os.mkfifo(record)
    else:
        with record.open("w", encoding="utf-8") as huge:
            huge.truncate(17 * 1024 * 1024)
    with pytest.raises(RecoveryRefused) as refused:
        _recover(lost)
    assert (refused.value.code, refused.value.package, refused.value.field) == (
        "E_PACKAGE_FILES",
        "releases/2025Q4-v1",
        "release.json",
    )
    _nothing_written(lost)


def test_a_warehouse_that_cannot_be_opened_is_refused_plainly(lost: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Damaged, or held by another process past the wait: a stable code, nothing charged."""
    lost.warehouse_path.write_bytes(b"not a warehouse" * 1000)
    with pytest.raises(RecoveryRefused) as refused:
        _recover(lost)
    assert refused.value.code == "E_WAREHOUSE"

    lost.warehouse_path.unlink()
    monkeypatch.setattr("collab.recovery.connect", functools.partial(connect, wait_seconds=1.0))
    holding = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(lost.warehouse_path)!r}); print(1, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holding.stdout is not None and holding.stdout.readline().strip() == "1"
        with pytest.raises(RecoveryRefused) as refused:
            _recover(lost)
        assert refused.value.code == "E_WAREHOUSE_IN_USE"
    finally:
        holding.kill()
        holding.wait()
