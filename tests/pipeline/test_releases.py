"""Quarterly releases through the real assets: budget, atomicity, the gate and publication."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import frictionless
import pytest
from dagster import DagsterInstance, RunRequest, SensorResult, SkipReason, build_sensor_context, materialize

from assets.releases import REVISE_TAG, check_release_disclosure, published_release, quarterly_release
from assets.resources import resources_for
from collab.publication import ReleaseIntegrityError, disclosure_problems, publish_release, verify_release_package
from collab.registry import Registry
from collab.site import site_is_current
from collab.states import State, write_state
from collab.warehouse import calendar_quarters, connect, stale_quarters
from collab.workspace import Workspace
from pipelines.runner import approve_and_publish, rebuild_stale_site, release_quarter
from pipelines.sensors import published_site_sensor, quarter_release_sensor
from privacy.accountant import spent
from privacy.estimators import MEDIAN_SHARES
from privacy.mechanisms import epsilon_at
from standards.catalogue import cells, load_catalogue
from standards.extract import quarter_of
from tests.pipeline.test_warehouse_load import contacts, load, minimised
from tests.system.commands import COLLAB, collab
from tests.tampering import alter_one_row

RELEASE_ASSETS = [quarterly_release, check_release_disclosure, published_release]
# What a release spends of its rho: all but the median's count, which reuses the mean's.
SPENT = 1 - load_catalogue().get("median_debt_by_region").budget_share * MEDIAN_SHARES["count"]


def register_contributors(workspace: Workspace, charities: list[str], *, linkage: bool = False) -> None:
    """Register ``charities`` and record a loaded submission of each: the public facts a release states."""
    registry = Registry(workspace)
    with connect(workspace.warehouse_path) as con:
        for charity in charities:
            registry.add(charity, f"Charity {charity}", linkage=linkage)
            con.execute(
                "INSERT INTO submissions VALUES (?, ?, 'extract.csv', 'x', now(), now(), 1, 0, ['2026Q1'], '1.0', 0)",
                [f"sub-{charity}", charity],
            )


def insert_people(workspace: Workspace, period: str = "2026Q1") -> None:
    """300 people in ``period`` from charity-c and charity-d across two regions and two needs, some with debt."""
    with connect(workspace.warehouse_path) as con:
        con.execute(
            "INSERT INTO contacts (submission_id, charity_id, person_key, quarter, need, region_code, local_authority_code, "
            "nation_code, total_debt_gbp, monthly_income_gbp, monthly_essential_costs_gbp, linked) "
            "SELECT 's1', CASE WHEN i < 250 THEN 'charity-c' ELSE 'charity-d' END, i, $period, "
            "CASE WHEN i % 3 = 0 THEN 'debt' ELSE 'food' END, "
            "CASE WHEN i % 2 = 0 THEN 'E12000001' ELSE 'E12000007' END, "
            "CASE WHEN i % 2 = 0 THEN 'E06000001' ELSE 'E09000001' END, 'E92000001', "
            "CASE WHEN i % 3 = 0 THEN 1000 + 10 * i ELSE 0 END, 1200, 1000 + i, FALSE FROM range(300) t(i)",
            {"period": period},
        )


@pytest.fixture
def loaded(workspace: Workspace) -> Workspace:
    """A warehouse with 300 people in 2026Q1 from two charities across two regions and two needs, some with debt."""
    register_contributors(workspace, ["charity-c", "charity-d"])
    insert_people(workspace)
    return workspace


def release(  # type: ignore[no-untyped-def]
    workspace: Workspace, instance: DagsterInstance, *, revise: bool = False, period: str = "2026Q1"
):
    instance.add_dynamic_partitions("quarters", [period])
    return materialize(
        RELEASE_ASSETS,
        partition_key=period,
        resources=resources_for(workspace),
        instance=instance,
        raise_on_error=False,
        tags={REVISE_TAG: "true"} if revise else {},
    )


def set_privacy(workspace: Workspace, **values: object) -> None:
    settings = workspace.settings.model_copy(deep=True)
    for name, value in values.items():
        setattr(settings.privacy if name != "auto_publish" else settings.publication, name, value)
    workspace.save_settings(settings)


def test_release_is_published_with_intervals_and_spend(loaded: Workspace) -> None:
    set_privacy(loaded, auto_publish=True, release_rho=0.5)
    result = release(loaded, DagsterInstance.ephemeral())
    assert result.success
    published = loaded.publish / "releases" / "2026Q1-v1"
    manifest = verify_release_package(published)
    assert manifest["privacy"]["rho_spent"] == pytest.approx(0.5 * SPENT)  # per privacy unit
    # Two charities that do not link records: a person may be two units, 2² × 0.5 by OpenDP's maps.
    per_person = manifest["privacy"]["per_person"]
    assert per_person["max_units"] == 2 and per_person["release_rho"] == pytest.approx(2.0 * SPENT)
    assert per_person["period_rho"] == per_person["lifetime_rho"] == pytest.approx(2.0 * SPENT)
    assert per_person["lifetime_epsilon"] == pytest.approx(epsilon_at(2.0 * SPENT, per_person["delta"]))
    statement = manifest["privacy"]["statement"]
    assert "counted separately up to twice (once for each reference held for them by a charity" in statement
    # Uncapped, the one assumption left is said (a privacy audit: people with two references at one such charity).
    assert (
        "This assumes that nobody is counted separately more than twice by its 2 charities that do not link records "
        "(a charity that gives one person two references counts them twice)"
    ) in statement
    assert "as the collaborative declares" not in statement
    assert manifest["contributors"] == 2
    with (published / "data" / "people_by_need_region.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 120
    north_east_food = next(r for r in rows if r["region_code"] == "E12000001" and r["need_code"] == "food")
    assert abs(int(north_east_food["value"]) - 100) < 20  # 100 true people, noise scale 4.6
    for row in rows:
        assert 0 <= int(row["ci_low"]) <= int(row["ci_high"]) and int(row["value"]) >= 0
    package = json.loads((published / "datapackage.json").read_text())
    # The areas come from ONS lookups built on OS and Royal Mail data, whose licences ask for all three.
    geography = package["sources"][1]
    assert all(owner in geography["title"] for owner in ("Office for National Statistics", "OS data", "Royal Mail"))
    names = [f["name"] for f in package["resources"][0]["schema"]["fields"]]
    keyed = {r["name"]: r["schema"]["primaryKey"] for r in package["resources"]}
    assert keyed["people-by-need-region"] == ["period", "region_code", "need_code"]
    # Scotland is a nation and its own region: one row at each level, named by both.
    assert keyed["people-by-local-authority"] == ["period", "area_code", "area_level"]
    report = frictionless.validate(str(published / "datapackage.json"))  # the keys name one row each
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    assert names[-3:] == ["low_reliability", "estimate", "estimate_variance"]
    # The unclipped estimate is the cell's own noisy measurement, of the variance its noise scale gives.
    scale = next(i for i in manifest["indicators"] if i["id"] == "people_by_need_region")["noise_scale"]
    assert all(float(row["estimate_variance"]) == pytest.approx(scale**2) for row in rows)
    assert not (loaded.publish / "site").exists()  # built once after a run's publications: the next test


def test_the_site_is_rebuilt_once_after_publications_and_whenever_it_is_behind_them(loaded: Workspace) -> None:
    set_privacy(loaded, auto_publish=True, release_rho=0.25, period_rho=4.0)  # room for a revision
    instance = DagsterInstance.ephemeral()

    def sensed() -> RunRequest | SkipReason:
        return published_site_sensor(build_sensor_context(instance=instance, resources=resources_for(loaded)))

    assert isinstance(sensed(), SkipReason)  # nothing published, no site needed
    assert release(loaded, instance).success
    first_request = sensed()
    assert isinstance(first_request, RunRequest)
    assert rebuild_stale_site(loaded, instance) is None
    assert "2026Q1-v1" in (loaded.publish / "site" / "releases.html").read_text()
    assert site_is_current(loaded.publish, loaded.settings.publication) and isinstance(sensed(), SkipReason)
    runs = len(instance.get_runs())
    assert rebuild_stale_site(loaded, instance) is None and len(instance.get_runs()) == runs  # current: not rebuilt

    # A revision published by a run that stopped before the site: the next rebuild (or the sensor) catches up.
    assert release(loaded, instance, revise=True).success
    second_request = sensed()
    assert isinstance(second_request, RunRequest) and second_request.run_key != first_request.run_key
    assert rebuild_stale_site(loaded, instance) is None
    assert "2026Q1-v2" in (loaded.publish / "site" / "releases.html").read_text()

    # Settings the site reads changed, and a published release altered since: the rebuild fails, says why, and the
    # site stays as it was.
    before = (loaded.publish / "site" / "index.html").read_text()
    settings = loaded.settings.model_copy(deep=True)
    settings.publication.max_interval_share /= 2
    loaded.save_settings(settings)
    alter_one_row(loaded.publish / "releases" / "2026Q1-v1" / "data" / "people_by_need_region.csv")
    error = rebuild_stale_site(loaded, instance)
    assert error is not None and "SHA-256 mismatch" in error
    assert (loaded.publish / "site" / "index.html").read_text() == before


def test_the_whole_catalogue_is_released_with_its_hierarchy_consistent(loaded: Workspace) -> None:
    set_privacy(loaded, auto_publish=True, release_rho=1.0, period_rho=4.0)
    assert release(loaded, DagsterInstance.ephemeral()).success
    published = loaded.publish / "releases" / "2026Q1-v1"
    manifest = verify_release_package(published)
    catalogue = load_catalogue()
    assert [i["id"] for i in manifest["indicators"]] == [i.id for i in catalogue.indicators]
    assert manifest["privacy"]["units_per_person"] == 2  # two charities that do not link records
    assert manifest["privacy"]["per_person"]["release_rho"] == pytest.approx(4.0 * SPENT)  # 2² × 1.0
    for entry in manifest["indicators"]:
        indicator = catalogue.get(entry["id"])
        with (published / entry["path"]).open() as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == entry["cells"] == len(cells(indicator))
        share = indicator.budget_share * (1 - MEDIAN_SHARES["count"] if indicator.measure == "median" else 1)
        assert entry["rho"] == pytest.approx(share) and entry["unit"] == indicator.unit
        assert all(float(r["ci_low"]) <= float(r["value"]) <= float(r["ci_high"]) for r in rows)
    with (published / "data" / "people_by_local_authority.csv").open() as handle:
        areas = list(csv.DictReader(handle))
    by_code = {(r["area_level"], r["area_code"]): int(r["value"]) for r in areas}
    assert by_code[("local_authority", "E06000001")] == pytest.approx(150, abs=25)
    for level, parent_level in (("local_authority", "region"), ("region", "nation"), ("nation", "uk")):
        for (parent_kind, code), value in by_code.items():
            if parent_kind == parent_level:
                children = [
                    int(r["value"]) for r in areas if r["area_level"] == level and r["area_parent_code"] == code
                ]
                assert sum(children) == value
    with (published / "data" / "mean_debt_by_region.csv").open() as handle:
        north_east = next(r for r in csv.DictReader(handle) if r["region_code"] == "E12000001")
    # 50 people with debt, £1,000 + £10 i for i = 0, 6, ..., 294: a mean of £2,470; the interval is ±1.96 sd.
    width = float(north_east["ci_high"]) - float(north_east["ci_low"])
    assert width > 0 and abs(float(north_east["value"]) - 2470) <= 3 * width


def test_rematerialising_spends_nothing_and_a_revision_is_recorded(loaded: Workspace) -> None:
    instance = DagsterInstance.ephemeral()
    assert release(loaded, instance).success
    first = (loaded.releases / "2026Q1-v1" / "data" / "people_by_need_region.csv").read_text()
    assert release(loaded, instance).success
    assert (loaded.releases / "2026Q1-v1" / "data" / "people_by_need_region.csv").read_text() == first
    with connect(loaded.warehouse_path) as con:
        assert spent(con, "2026Q1") == pytest.approx(0.5 * SPENT)
    assert release(loaded, instance, revise=True).success
    with connect(loaded.warehouse_path) as con:
        kinds = con.execute("SELECT DISTINCT release_id, kind FROM privacy_ledger ORDER BY release_id").fetchall()
        assert [k[1] for k in kinds] == ["release", "revision"]
        assert spent(con, "2026Q1") == pytest.approx(1.0 * SPENT)


def test_a_package_rendered_again_names_only_charities_that_agreed_when_it_was_made_and_still_do(
    loaded: Workspace,
) -> None:
    """Found by review: rendered again (a release interrupted after spending, published by the next run), the package
    named whoever agreed at that moment, a charity that joined since among them, beside a count that did not count it."""
    instance = DagsterInstance.ephemeral()
    registry = Registry(loaded)
    registry.set_publish_name("charity-c", True)
    assert release(loaded, instance).success

    def counted_and_named() -> tuple[int, list[str]]:
        manifest = json.loads((loaded.releases / "2026Q1-v1" / "release.json").read_text(encoding="utf-8"))
        return manifest["contributors"], manifest["named_contributors"]

    assert counted_and_named() == (2, ["Charity charity-c"])
    register_contributors(loaded, ["charity-e"])
    registry.set_publish_name("charity-e", True)
    registry.set_publish_name("charity-d", True)
    assert release(loaded, instance).success
    assert counted_and_named() == (2, ["Charity charity-c"])
    registry.set_publish_name("charity-c", False)  # a charity that withdraws is no longer named
    assert release(loaded, instance).success
    assert counted_and_named() == (2, [])


def test_overspend_fails_the_release_and_publishes_nothing(loaded: Workspace) -> None:
    set_privacy(loaded, release_rho=0.3, auto_publish=True)  # 1.2 per person at two units; a revision is 2.4 > 2
    instance = DagsterInstance.ephemeral()
    assert release(loaded, instance).success
    before = sorted(p.name for p in (loaded.publish / "releases").iterdir())
    result = release(loaded, instance, revise=True)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "Nothing was published" in str(failure.event_specific_data.error.message) or "rho" in str(
        failure.event_specific_data.error
    )
    assert sorted(p.name for p in (loaded.publish / "releases").iterdir()) == before == ["2026Q1-v1"]
    assert not (loaded.releases / "2026Q1-v2").exists()
    with connect(loaded.warehouse_path) as con:
        assert spent(con, "2026Q1") == pytest.approx(1.2 * SPENT)
        assert spent(con, "2026Q1", per_person=False) == pytest.approx(0.3 * SPENT)


def test_a_quarter_that_has_not_ended_is_refused_with_nothing_spent(loaded: Workspace) -> None:
    set_privacy(loaded, auto_publish=True)
    this_quarter = quarter_of(dt.date.today())
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("quarters", [this_quarter])
    result = materialize(
        RELEASE_ASSETS,
        partition_key=this_quarter,
        resources=resources_for(loaded),
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert f"{this_quarter} has not ended yet" in failure.event_specific_data.error.message
    # The CLI's path refuses before a Dagster run, and before the quarter becomes one of Dagster's partitions.
    outcome = release_quarter(loaded, this_quarter, instance=instance)
    assert outcome.error is not None and "nothing has been spent" in outcome.error and outcome.run_id is None
    with connect(loaded.warehouse_path) as con:
        assert spent(con, this_quarter) == 0
        assert con.execute("SELECT count(*) FROM releases").fetchone() == (0,)
    assert not loaded.releases.exists() or not any(loaded.releases.iterdir())
    assert not (loaded.publish / "releases").exists() or not any((loaded.publish / "releases").iterdir())
    # Nor one before the collaborative's first quarter (the attacker's second trial: 1999Q1 was charged).
    settings = loaded.settings.model_copy(deep=True)
    settings.publication.first_quarter = "2026Q1"
    loaded.save_settings(settings)
    before = release_quarter(loaded, "2025Q4", instance=instance)
    assert before.error is not None and "before the collaborative's first quarter, 2026Q1" in before.error
    with connect(loaded.warehouse_path) as con:
        assert con.execute("SELECT count(*) FROM privacy_ledger").fetchone() == (0,)


def test_release_waits_for_approval_unless_auto_publishing(loaded: Workspace) -> None:
    result = release(loaded, DagsterInstance.ephemeral())
    assert result.success
    assert (loaded.releases / "2026Q1-v1" / "release.json").exists()
    assert not (loaded.publish / "releases" / "2026Q1-v1").exists()
    assert result.asset_materializations_for_node("published_release") == []


def test_a_release_awaiting_approval_is_not_published_after_the_caps_were_raised(loaded: Workspace) -> None:
    # A privacy audit approved a release made at 4 units after the caps were raised to 5: published, it stated a
    # lifetime ρ of 9.98 where 15.59 was true, past a lifetime budget of 10.
    set_privacy(loaded, max_unlinked_charities=1)
    instance = DagsterInstance.get()  # the workspace's own, which `collab approve` uses
    assert release(loaded, instance).success  # 1 unit a person, awaiting approval
    set_privacy(loaded, max_unlinked_charities=None)  # 2 now
    [outcome] = approve_and_publish(loaded, ["2026Q1-v1"], actor="analyst")
    assert not outcome.published and "was made before the caps on units per person were raised" in str(outcome.error)
    assert not (loaded.publish / "releases" / "2026Q1-v1").exists()
    # A revision charges the first again and states it; approved, it is published.
    assert release(loaded, instance, revise=True).success
    assert approve_and_publish(loaded, ["2026Q1-v2"], actor="analyst")[0].published
    per_person = json.loads((loaded.publish / "releases" / "2026Q1-v2" / "release.json").read_text())["privacy"]
    with connect(loaded.warehouse_path) as con:
        assert per_person["per_person"]["lifetime_rho"] == pytest.approx(4 * spent(con, per_person=False), rel=1e-9)


def test_releases_approved_at_once_are_published_with_the_site_rebuilt_once_and_one_unknown_approves_none(
    loaded: Workspace,
) -> None:
    """An analyst approves a year's quarters in one command: each is published, the site is built once for them all
    (once per release, it was most of their publication's time), and an id that is not a quarter's latest release
    refuses them all before any is approved."""
    with connect(loaded.warehouse_path) as con:
        con.execute("INSERT INTO contacts SELECT * REPLACE ('2026Q2' AS quarter) FROM contacts")
        con.execute("UPDATE submissions SET quarters = ['2026Q1', '2026Q2']")
    instance = DagsterInstance.get()  # the workspace's own, which `collab approve` uses
    assert release(loaded, instance).success and release(loaded, instance, period="2026Q2").success
    with pytest.raises(LookupError, match="2026Q2-v2"):
        approve_and_publish(loaded, ["2026Q1-v1", "2026Q2-v2"], actor="analyst")
    with connect(loaded.warehouse_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'approve'").fetchall() == [(0,)]
    assert not (loaded.publish / "releases").exists() or not list((loaded.publish / "releases").iterdir())

    outcomes = approve_and_publish(loaded, ["2026Q1-v1", "2026Q2-v1", "2026Q1-v1"], actor="analyst")  # one twice
    assert [(o.release_id, o.published, o.error, o.site_error) for o in outcomes] == [
        ("2026Q1-v1", True, None, None),
        ("2026Q2-v1", True, None, None),
    ]
    assert len([run for run in instance.get_runs() if run.job_name == "site_job"]) == 1
    listed = (loaded.publish / "site" / "releases.html").read_text()
    assert "2026Q1-v1" in listed and "2026Q2-v1" in listed
    with connect(loaded.warehouse_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'approve'").fetchall() == [(2,)]


def test_tampered_release_is_refused_by_the_gate_and_by_publication(loaded: Workspace) -> None:
    assert release(loaded, DagsterInstance.ephemeral()).success
    package = loaded.releases / "2026Q1-v1"
    with connect(loaded.warehouse_path) as con:
        assert disclosure_problems(package, con) == []
        data = package / "data" / "people_by_need_region.csv"
        alter_one_row(data)
        (package / "notes.txt").write_text("not allowed")
        problems = disclosure_problems(package, con)
        assert any("changed since release" in p for p in problems)
        with pytest.raises(ReleaseIntegrityError, match="SHA-256 mismatch"):
            publish_release(package, loaded.publish, con)
    assert not (loaded.publish / "releases" / "2026Q1-v1").exists()


def test_a_declared_cap_on_units_per_person_is_stated_with_the_figures_it_qualifies(loaded: Workspace) -> None:
    # A privacy audit: with the cap below the charities that do not link records, every release said "even someone
    # counted up to 1 times", and nothing published said that this was an assumption.
    set_privacy(loaded, max_unlinked_charities=1)
    assert release(loaded, DagsterInstance.ephemeral()).success
    manifest = json.loads((loaded.releases / "2026Q1-v1" / "release.json").read_text())
    assert manifest["privacy"]["per_person"]["max_units"] == 1
    assert manifest["privacy"]["per_person"]["units_assumed_at_most"] is True
    assert (
        "This assumes, as the collaborative declares, that nobody is counted separately more than once by its 2 "
        "charities that do not link records (a charity that gives one person two references counts them twice)"
        in manifest["privacy"]["statement"]
    )


def test_units_declared_across_linking_charities_are_counted_recorded_and_stated(loaded: Workspace) -> None:
    # Twins are one cluster to linkage, and a person split by a missed link is two: declaring two units across the
    # charities that link records covers either, and every release says so and charges for it.
    register_contributors(loaded, ["charity-l"], linkage=True)
    set_privacy(loaded, max_unlinked_charities=1, linked_units_per_person=2)
    assert release(loaded, DagsterInstance.ephemeral()).success
    per_person = json.loads((loaded.releases / "2026Q1-v1" / "release.json").read_text())["privacy"]["per_person"]
    assert (per_person["max_units"], per_person["linked_units"], per_person["units_assumed_at_most"]) == (3, 2, True)
    with connect(loaded.warehouse_path) as con:
        assert con.execute("SELECT units_per_person, linked_units_per_person FROM releases").fetchall() == [(3, 2)]
        assert con.execute("SELECT DISTINCT max_units FROM privacy_ledger").fetchall() == [(3,)]
    statement = json.loads((loaded.releases / "2026Q1-v1" / "release.json").read_text())["privacy"]["statement"]
    assert "and up to twice across those that do)" in statement
    assert "nobody is counted separately more than once by its 2 charities that do not link records" in statement
    assert (
        "It also assumes that record linkage went wrong for this person at most once, counting each extra group"
        in statement
    )


def test_raising_a_declared_cap_charges_the_releases_already_made_at_their_new_units(loaded: Workspace) -> None:
    # A privacy audit raised privacy.linked_units_per_person between releases: the next release's statement and
    # budget check kept the earlier release at its old units, understating the lifetime worst case (ρ 9.23 said,
    # 13.72 true) and letting a release past the budgets.
    register_contributors(loaded, ["charity-l"], linkage=True)
    set_privacy(loaded, release_rho=0.1, period_rho=10.0, lifetime_rho=20.0)
    instance = DagsterInstance.ephemeral()
    assert release(loaded, instance).success  # 2 charities that do not link records, and one across those that do
    set_privacy(loaded, linked_units_per_person=2)
    assert release(loaded, instance, revise=True).success
    with connect(loaded.warehouse_path) as con:
        assert con.execute("SELECT release_id, units_per_person FROM releases ORDER BY 1").fetchall() == [
            ("2026Q1-v1", 3),
            ("2026Q1-v2", 4),
        ]
        assert con.execute(
            "SELECT release_id, charged_with, units_before, units_after FROM privacy_recharges"
        ).fetchall() == [("2026Q1-v1", "2026Q1-v2", 3, 4)]
        per_unit = spent(con, per_person=False)
        # Both releases at 4 units now: 4² times what each spends per unit, by OpenDP's maps.
        assert spent(con) == pytest.approx(16 * per_unit, rel=1e-9)
    per_person = json.loads((loaded.releases / "2026Q1-v2" / "release.json").read_text())["privacy"]["per_person"]
    assert per_person["max_units"] == 4
    assert per_person["period_rho"] == pytest.approx(16 * per_unit, rel=1e-9)
    assert per_person["lifetime_rho"] == pytest.approx(16 * per_unit, rel=1e-9)
    # The budget check counts the recharge. A third release (half the per-unit ρ spent so far) at 5 units (3 across
    # the linking charities) beside the first two at 4 is 16 + 12.5 times that ρ; with them charged again at 5,
    # 25 + 12.5. A period budget of 32 times it lets the first through, so the third is refused, and charges nothing.
    set_privacy(loaded, linked_units_per_person=3, period_rho=32 * per_unit, lifetime_rho=100.0)
    refused = release(loaded, instance, revise=True)
    assert not refused.success
    [failure] = [e for e in refused.all_events if e.is_step_failure]
    assert "counts the releases already made charged again" in str(failure.event_specific_data)
    with connect(loaded.warehouse_path) as con:
        assert con.execute("SELECT count(*) FROM privacy_recharges").fetchall() == [(1,)]
        assert con.execute("SELECT count(*) FROM releases").fetchall() == [(2,)]
    # Lowered again, the caps never lower what was charged.
    set_privacy(loaded, linked_units_per_person=1, period_rho=10.0)
    assert release(loaded, instance, revise=True).success
    with connect(loaded.warehouse_path) as con:
        assert con.execute("SELECT count(*) FROM privacy_recharges").fetchall() == [(1,)]
        third = con.execute("SELECT rho FROM releases WHERE release_id = '2026Q1-v3'").fetchall()[0][0]
        assert spent(con, "2026Q1") == pytest.approx(16 * per_unit + 9 * third, rel=1e-9)


def test_quarter_release_sensor_requests_each_ended_quarter_of_the_calendar_once(loaded: Workspace) -> None:
    instance = DagsterInstance.ephemeral()

    def sensed() -> SensorResult | SkipReason:
        return quarter_release_sensor(build_sensor_context(instance=instance, resources=resources_for(loaded)))

    # Unset, the collaborative reports from the quarter its first charity registered in: today's, not ended.
    assert isinstance(sensed(), SkipReason)
    settings = loaded.settings.model_copy(deep=True)
    settings.publication.first_quarter = "2026Q1"
    loaded.save_settings(settings)
    result = sensed()
    assert isinstance(result, SensorResult)
    expected = calendar_quarters("2026Q1")
    # Every ended quarter from the first, with or without rows (only 2026Q1 holds any); never the current one.
    assert [r.partition_key for r in result.run_requests] == expected and expected[:2] == ["2026Q1", "2026Q2"]
    assert quarter_of(dt.date.today()) not in expected
    assert result.run_requests[0].run_key.startswith("release-2026Q1-after-")
    assert release(loaded, instance).success
    again = sensed()
    assert [r.partition_key for r in getattr(again, "run_requests", [])] == expected[1:]


def test_a_release_waits_for_unfinished_submissions_whoever_asked_for_it(loaded: Workspace) -> None:
    # A release the daemon's sensor requested does not hold `collab run`'s lock: found unfinished submissions when it
    # ran, it would have published the quarter with part of its files, as a second `collab run` once did.
    instance = DagsterInstance.ephemeral()
    settings = loaded.settings.model_copy(deep=True)
    settings.publication.first_quarter = "2026Q1"
    loaded.save_settings(settings)
    (loaded.staging / "sub-late").mkdir(parents=True)

    def submission_is(state: State) -> None:
        write_state(loaded, submission_id="sub-late", charity_id="charity-c", file_name="late.csv", state=state)

    def sensed() -> SensorResult | SkipReason:
        return quarter_release_sensor(build_sensor_context(instance=instance, resources=resources_for(loaded)))

    submission_is("loaded")
    first = sensed()
    assert isinstance(first, SensorResult)
    submission_is("checked")  # the same file sent again (a review: its key then repeated, and never ran again)
    assert isinstance(sensed(), SkipReason)
    refused = release(loaded, instance)
    assert not refused.success
    failure = refused.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None and "1 submission(s) are not finished (sub-late)" in failure.message
    # `collab release` says so before Dagster runs anything: plainly, not as a Dagster failure.
    outcome = release_quarter(loaded, "2026Q1", instance=instance)
    assert outcome.release_id is None and (outcome.error or "").startswith("2026Q1 was not released: 1 submission(s)")
    with connect(loaded.warehouse_path) as con:
        assert con.execute("SELECT count(*) FROM releases").fetchone() == (0,)
        assert spent(con) == 0
    time.sleep(1)  # states are dated to the second
    submission_is("loaded")
    result = sensed()
    assert isinstance(result, SensorResult) and result.run_requests[0].run_key != first.run_requests[0].run_key
    assert release(loaded, instance).success


def test_a_quarter_that_receives_data_after_its_release_is_flagged_for_revision_whatever_the_clock_says(
    loaded: Workspace,
) -> None:
    """Told by the ledger's order: a clock set back after the release dated this load a day before it, and the
    comparison of times missed it; a load dated after a release made first, flagged the quarter for good."""
    with connect(loaded.warehouse_path) as con:
        con.execute("UPDATE submissions SET loaded_at = now() + INTERVAL 1 DAY")  # the clock was ahead, then put right
    assert release(loaded, DagsterInstance.ephemeral()).success
    with connect(loaded.warehouse_path) as con:
        assert stale_quarters(con) == []
    load(loaded, "c-late", minimised(loaded, "c-late", contacts(3, "2026Q1")))
    with connect(loaded.warehouse_path) as con:
        con.execute("UPDATE submissions SET loaded_at = now() - INTERVAL 1 DAY WHERE submission_id = 'c-late'")
        assert stale_quarters(con) == ["2026Q1"]


def test_two_releases_at_once_each_publish_what_they_say_and_a_site_failure_is_not_a_release_failure(
    loaded: Workspace,
) -> None:
    # A hostile trial: two `collab release --revise` at once both said "published"; only one of the two revisions
    # was, and the other's budget was spent for nothing said. They now take turns (the workspace's run lock).
    set_privacy(loaded, auto_publish=True)
    settings = loaded.settings.model_copy(deep=True)
    settings.publication.first_quarter = "2026Q1"
    loaded.save_settings(settings)
    racing = [
        subprocess.Popen(
            [str(COLLAB), "release", "2026Q1", "--revise", "--json"],
            env={**os.environ, **loaded.environment()},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    finished = [process.communicate(timeout=600) for process in racing]
    assert [process.returncode for process in racing] == [0, 0], "\n".join(err for _, err in finished)
    outcomes = [json.loads(out) for out, _ in finished]
    assert [process.returncode for process in racing] == [0, 0]
    assert sorted(o["release_id"] for o in outcomes) == ["2026Q1-v1", "2026Q1-v2"]
    assert all(o["published"] and o["new_spend"] and o["error"] is None for o in outcomes)
    assert sorted(p.name for p in (loaded.publish / "releases").iterdir()) == ["2026Q1-v1", "2026Q1-v2"]
    assert site_is_current(loaded.publish, loaded.settings.publication)

    # Publication no longer automatic: re-running the published release spends nothing and still says published.
    set_privacy(loaded, auto_publish=False)
    again = release_quarter(loaded, "2026Q1", instance=DagsterInstance.get())
    assert (again.release_id, again.new_spend, again.published, again.error) == ("2026Q1-v2", False, True, None)
    set_privacy(loaded, auto_publish=True)

    # A published release altered by hand stops the site's rebuild after the next revision: the revision is published
    # (and paid for), and the command says so, and that only the site is behind.
    alter_one_row(loaded.publish / "releases" / "2026Q1-v1" / "data" / "people_by_need_region.csv")
    revised = collab(loaded.home, "release", "2026Q1", "--revise", check=False)
    said = " ".join(revised.stdout.split())
    assert revised.returncode == 1 and "failed" not in said, revised.stdout + revised.stderr
    assert "Release 2026Q1-v3 (new noise drawn); published." in said, revised.stdout + revised.stderr
    assert "The site was not rebuilt:" in said and "SHA-256 mismatch" in said and "nothing more needs spending" in said
    assert (loaded.publish / "releases" / "2026Q1-v3").is_dir()


def test_a_warehouse_put_back_from_before_a_release_refuses_to_release_until_a_later_backup_is(
    loaded: Workspace, tmp_path: Path
) -> None:
    """Rule 4: a ledger older than the releases made understates every later figure and budget check."""
    from collab.backup import back_up, verify_backup

    set_privacy(loaded, auto_publish=True)
    before = back_up(loaded, tmp_path / "before")
    instance = DagsterInstance.ephemeral()
    assert release(loaded, instance).success
    after = back_up(loaded, tmp_path / "after")
    assert (before.releases_charged, after.releases_charged) == ([], ["2026Q1-v1"])
    with connect(loaded.warehouse_path) as con:
        spent_before = spent(con)

    shutil.copy2(tmp_path / "before" / "warehouse.duckdb", loaded.warehouse_path)  # the old copy put back
    result = release(loaded, instance, revise=True)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert (
        "does not hold 1 release(s) whose packages exist, or that the published site was built from, or holds less than "
        "their packages say they cost (2026Q1-v1)" in str(failure.event_specific_data.error)
    )
    assert "Nothing was spent." in str(failure.event_specific_data.error)
    with connect(loaded.warehouse_path) as con:
        assert spent(con) == 0  # nothing spent on top of the old ledger
    shown = collab(loaded.home, "budget", "--json", check=False)  # figures that count less than was spent: exit 1
    assert shown.returncode == 1 and json.loads(shown.stdout)["releases_missing_from_ledger"] == ["2026Q1-v1"]
    told = collab(loaded.home, "budget", check=False)
    assert told.returncode == 1 and "2026Q1-v1" in told.stdout

    refused = collab(loaded.home, "restore", str(tmp_path / "before"), check=False)
    assert refused.returncode == 1 and "older than release(s) 2026Q1-v1" in refused.stderr + refused.stdout
    verify_backup(tmp_path / "after")
    assert "Restored" in collab(loaded.home, "restore", str(tmp_path / "after")).stdout
    assert release(loaded, instance, revise=True).success
    with connect(loaded.warehouse_path) as con:
        assert spent(con) == pytest.approx(2 * spent_before)
