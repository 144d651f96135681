"""The `collab` command as a user runs it: subprocesses on a fresh workspace."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from collab.publication import verify_release_package
from collab.workspace import Workspace
from tests.conftest import contact_rows, write_csv
from tests.pipeline.test_releases import SPENT
from tests.system.commands import collab
from tests.system.conftest import DEMO_GROUP, Demo

pytestmark = pytest.mark.system


@DEMO_GROUP
def test_demo_publishes_every_quarter_with_intervals_and_budget(demo: Demo) -> None:
    demo_home, summary = demo.home, demo.summary
    assert Path(summary["site"]).exists()
    releases = summary["releases"]
    assert len(releases) == 4 and all(r["published"] and r["new_spend"] and not r["error"] for r in releases)
    for r in releases:
        manifest = verify_release_package(demo_home / "publish" / "releases" / r["release_id"])
        assert manifest["privacy"]["rho_spent"] > 0
        with (demo_home / "publish" / "releases" / r["release_id"] / "data" / "people_by_need_region.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 120 and {"value", "ci_low", "ci_high"} <= set(rows[0])
    budget = demo.budget_after_demo
    # Per unit 0.125 a quarter; three non-linking charities and the linked cluster make a person up to 4 units.
    assert budget["lifetime_rho_per_unit"] == pytest.approx(4 * 0.125 * SPENT)
    assert budget["lifetime_rho_per_person"] == pytest.approx(4 * 4**2 * 0.125 * SPENT)
    assert [p["period"] for p in budget["periods"]] == [r["period"] for r in releases]
    assert all(p["max_units"] == 4 for p in budget["periods"])
    text = collab(demo_home, "budget").stdout
    assert "lifetime" in text and "ρ per person" in text and "measurement" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "measurement" in collab(demo_home, "budget", "--detail").stdout


@DEMO_GROUP
def test_demo_files_show_realistic_mistakes_with_feedback(demo: Demo) -> None:
    demo_home, summary = demo.home, demo.summary
    statuses = {s["file_name"]: s for s in summary["submissions"]}
    first_attempt = next(s for name, s in statuses.items() if "first-attempt" in name)
    assert first_attempt["status"] == "rejected" and first_attempt["codes"] == ["E_MISSING_COLUMN"]
    pdf = statuses["annual-report.pdf"]
    assert pdf["status"] == "rejected" and pdf["codes"] == ["E_UNSUPPORTED_FORMAT"]
    assert len(summary["duplicates"]) == 1
    accepted = [s for s in summary["submissions"] if s["status"] != "rejected"]
    assert len(accepted) >= 6 * 4 - 1
    for submission in summary["submissions"]:
        feedback = list(
            (demo_home / "feedback" / submission["charity_id"]).glob(f"*{submission['submission_id']}.feedback.html")
        )
        assert len(feedback) == 1
    truth = demo_home / "demo" / "truth" / "people_by_need_region.csv"
    assert truth.exists() and "people_charity_units" in truth.read_text().splitlines()[0]


@DEMO_GROUP
def test_running_again_processes_nothing_and_spends_nothing(demo: Demo) -> None:
    before = json.loads(collab(demo.home, "budget", "--json").stdout)
    # The demo's four releases and the revision of the latest quarter, each 4² × 0.125 for a person of 4 units.
    assert before["lifetime_rho_per_person"] == pytest.approx(5 * 4**2 * 0.125 * SPENT)
    report = json.loads(collab(demo.home, "run", "--json").stdout)
    assert report["submissions"] == [] and report["releases"] == []
    again = json.loads(collab(demo.home, "release", "2026Q1", "--json").stdout)
    assert again["new_spend"] is False
    assert json.loads(collab(demo.home, "budget", "--json").stdout) == before


def test_check_exit_codes(tmp_path: Path) -> None:
    home = tmp_path / "var"
    good = write_csv(tmp_path / "good.csv", contact_rows(5))
    assert collab(home, "check", str(good)).returncode == 0
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"%PDF-1.4")
    result = collab(home, "check", str(bad), "--json", check=False)
    assert result.returncode == 1 and json.loads(result.stdout)["status"] == "rejected"
    assert collab(home, "check", str(tmp_path / "missing.csv"), check=False).returncode == 2


def test_charity_registration_submit_and_run(tmp_path: Path) -> None:
    home = tmp_path / "var"
    added = json.loads(collab(home, "charity", "add", "test-pantry", "--name", "Test Pantry", "--json").stdout)
    assert added["charity_id"] == "test-pantry"
    assert collab(home, "charity", "add", "Bad Id!", "--name", "x", check=False).returncode == 1
    collab(home, "submit", "--charity", "test-pantry", str(write_csv(tmp_path / "q.csv", contact_rows(20))))
    collab(home, "charity", "add", "second-pantry", "--name", "Second Pantry")  # a release needs two charities
    workspace = Workspace(home)
    settings = workspace.settings.model_copy(deep=True)
    settings.publication.first_quarter = "2026Q1"  # the collaborative reports from 2026Q1, by the calendar
    workspace.save_settings(settings)
    collab(home, "submit", "--charity", "second-pantry", str(write_csv(tmp_path / "s.csv", contact_rows(20))))
    report = json.loads(collab(home, "run", "--json").stdout)
    assert [s["status"] for s in report["submissions"]] == ["accepted", "accepted"]
    assert report["releases"][0]["period"] == "2026Q1" and report["releases"][0]["published"] is False
    approved = json.loads(collab(home, "approve", report["releases"][0]["release_id"], "--json").stdout)
    assert approved["published"] is True
    assert (home / "publish" / "site" / "index.html").exists()


def test_a_charity_proposes_a_mapping_checks_with_it_and_exports_the_standard(tmp_path: Path) -> None:
    home = tmp_path / "var"
    rows = [[f"R{i}", f"1{i % 9}/02/2026", ["Food", "UC problem", "Fuel"][i % 3], "LS1 4AP"] for i in range(30)]
    own = write_csv(tmp_path / "own.csv", rows, ["Ref", "Wen", "Why", "Where"])
    first = collab(home, "check", str(own), "--json", check=False)
    assert first.returncode == 1 and json.loads(first.stdout)["issues"][0]["code"] == "E_MISSING_COLUMN"
    proposed = json.loads(collab(home, "standard", "suggest-mapping", str(own), "--json").stdout)
    mapping = Path(proposed["mapping_file"])
    assert mapping == tmp_path / "own.mapping.yaml" and proposed["missing"] == []
    assert proposed["values_to_choose"] == {"need": ["UC problem"]}
    assert collab(home, "standard", "suggest-mapping", str(own), check=False).returncode == 2  # never overwrites
    mapping.write_text(mapping.read_text().replace("# UC problem: ???", "UC problem: benefits_income"))
    html = tmp_path / "feedback.html"
    checked = collab(home, "check", str(own), "--mapping", str(mapping), "--html", str(html))
    assert "Accepted: 30 of 30 row(s) accepted." in checked.stdout and "Accepted" in html.read_text()
    broken = tmp_path / "broken.yaml"
    broken.write_text("values: {need: {UC problem: benefits}}\n")
    assert collab(home, "check", str(own), "--mapping", str(broken), check=False).returncode == 2
    collab(home, "standard", "export", str(tmp_path / "standard"))
    assert {p.name for p in (tmp_path / "standard").iterdir()} == {
        "contact-extract-v1-reference.md",
        "contact-extract-v1.schema.json",
        "contact-extract-v1-template.csv",
        "contact-extract-v1-example.csv",
        "contact-extract-v1-template.xlsx",
    }


@DEMO_GROUP
def test_the_pseudonymisation_key_appears_nowhere_but_its_own_file(demo: Demo) -> None:
    demo_home = demo.home
    """Not in the warehouse, Dagster's run and event storage (logs, metadata), releases, feedback or the site."""
    import base64

    key_file = demo_home / "secrets" / "pseudonymisation.key"
    key = key_file.read_bytes()
    forms = [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key)]
    scanned = 0
    for path in demo_home.rglob("*"):
        if path.is_file() and path != key_file:
            content = path.read_bytes()
            scanned += 1
            assert not any(form in content for form in forms), path
    assert scanned > 100 and (demo_home / "dagster").exists() and (demo_home / "warehouse.duckdb").exists()


@DEMO_GROUP
def test_only_charities_that_agreed_are_named_on_the_site(demo: Demo) -> None:
    demo_home = demo.home
    manifest = json.loads(next((demo_home / "publish" / "releases").glob("*/release.json")).read_text())
    assert manifest["named_contributors"] == ["Northside Food Bank"]  # the one demo charity that agreed
    assert manifest["contributors"] == 6
    methodology = (demo_home / "publish" / "site" / "methodology.html").read_text()
    assert "Northside Food Bank" in methodology and "Riverside Advice Centre" not in methodology
    listed = json.loads(collab(demo_home, "charity", "list", "--json").stdout)
    assert {c["id"]: c["publish_name"] for c in listed}["riverside-advice"] is False


def test_linkage_and_naming_are_switched_on_and_off(tmp_path: Path) -> None:
    home = tmp_path / "var"
    added = json.loads(collab(home, "charity", "add", "test-pantry", "--name", "Test Pantry", "--json").stdout)
    assert added["linkage"] is True  # linkage is the default for a new charity
    opted_out = collab(home, "charity", "add", "other-pantry", "--name", "Other Pantry", "--no-linkage", "--json")
    assert json.loads(opted_out.stdout)["linkage"] is False
    off = json.loads(collab(home, "charity", "linkage", "test-pantry", "--off", "--json").stdout)
    on = json.loads(collab(home, "charity", "linkage", "test-pantry", "--on", "--json").stdout)
    assert off["linkage"] is False
    named = json.loads(collab(home, "charity", "named", "test-pantry", "--on", "--json").stdout)
    assert on["linkage"] is True and named == {"charity_id": "test-pantry", "linkage": True, "publish_name": True}
    off = collab(home, "charity", "named", "test-pantry", "--off")
    assert "Test Pantry is counted, not named" in " ".join(off.stdout.split())
    assert collab(home, "charity", "linkage", "no-such-charity", "--on", check=False).returncode == 1
