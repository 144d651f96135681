"""The `collab` command as a user runs it: subprocesses on a fresh workspace."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest

from collab.workspace import Workspace
from tests.conftest import contact_rows, latest_ended_quarter, write_csv
from tests.system.commands import collab
from tests.tampering import alter_one_row

pytestmark = pytest.mark.system


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
    refused = collab(home, "charity", "add", "../evil", "--name", "Evil", check=False)
    assert refused.returncode == 2 and "is not a charity id" in refused.stderr + refused.stdout
    assert "pydantic" not in refused.stderr + refused.stdout
    # Pantries that record no surnames: they do not link records (linking, their people would not be counted).
    added = json.loads(
        collab(home, "charity", "add", "test-pantry", "--name", "Test Pantry", "--no-linkage", "--json").stdout
    )
    assert added["charity_id"] == "test-pantry"
    assert collab(home, "charity", "add", "Bad Id!", "--name", "x", check=False).returncode == 2  # a usage error
    quarter, start = latest_ended_quarter()  # one quarter to release, by the calendar
    collab(
        home, "submit", "--charity", "test-pantry", str(write_csv(tmp_path / "q.csv", contact_rows(20, start=start)))
    )
    collab(home, "charity", "add", "second-pantry", "--name", "Second Pantry", "--no-linkage")  # a release needs two
    workspace = Workspace(home)
    settings = workspace.settings.model_copy(deep=True)
    settings.publication.first_quarter = quarter
    workspace.save_settings(settings)
    # A name the landing area takes for an unfinished file's was once sent as it was, and never read.
    hidden = write_csv(tmp_path / ".s.csv", contact_rows(20, start=start))
    sent = json.loads(collab(home, "submit", "--charity", "second-pantry", str(hidden), "--json").stdout)
    assert sent["sent_as"] == "s.csv"
    report = json.loads(collab(home, "run", "--json").stdout)
    assert [s["status"] for s in report["submissions"]] == ["accepted", "accepted"]
    assert [r["period"] for r in report["releases"]] == [quarter] and report["releases"][0]["published"] is False
    # An analyst's trial (session 31): the name `collab submissions` lists was refused by `collab purge` as a path,
    # and an unknown charity's submissions were "No submissions yet".
    [listed, _] = json.loads(collab(home, "submissions", "--json").stdout)
    purged = json.loads(collab(home, "purge", listed["name"], "--json").stdout)
    assert purged["submission_id"] == listed["submission_id"] and purged["removed"]
    unknown = collab(home, "submissions", "--charity", "no-such-pantry", check=False)
    assert unknown.returncode == 1 and "no charity 'no-such-pantry'" in unknown.stderr
    [approved] = json.loads(collab(home, "approve", report["releases"][0]["release_id"], "--json").stdout)["releases"]
    assert approved["published"] is True and approved["already_approved"] is False
    # An analyst's trial (session 31): approving it again said "Approved and published" and logged a second approval.
    again = collab(home, "approve", approved["release_id"])
    assert "was already approved and published; nothing was done again" in " ".join(again.stdout.split())
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        logged = con.execute("SELECT count(*) FROM audit_log WHERE action = 'approve'").fetchone()
    assert logged == (1,)
    site = home / "publish" / "site" / "index.html"
    before = site.read_text()

    # A published release altered by hand and the site's record of what it was built from lost: the next run
    # rebuilds the site, refuses the altered release, says so and fails, and the site stays as it was.
    alter_one_row(home / "publish" / "releases" / approved["release_id"] / "data" / "people_by_need_region.csv")
    (home / "publish" / "site" / "built-from.json").unlink()
    failed = collab(home, "run", check=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    said = " ".join(failed.stdout.split())
    assert "The site was not rebuilt:" in said and "SHA-256 mismatch" in said, said
    assert "Traceback" not in failed.stdout + failed.stderr
    assert site.read_text() == before


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
    checked = collab(home, "check", str(own), "--mapping", str(mapping), "--html", str(html), "--no-linkage")
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


def test_linkage_and_naming_are_switched_on_and_off(tmp_path: Path) -> None:
    home = tmp_path / "var"
    refused = collab(home, "charity", "add", "../evil", "--name", "Evil", check=False)
    assert refused.returncode == 2 and "is not a charity id" in refused.stderr + refused.stdout
    assert "pydantic" not in refused.stderr + refused.stdout
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


def test_what_a_careless_or_hostile_analyst_types_is_refused_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the hostile trial of session 20: each of these gave a traceback, or worse.
    home = tmp_path / "var"
    collab(home, "charity", "add", "north-pantry", "--name", "North Pantry")
    settings = home / "settings.yaml"
    for broken, said in (
        ("privacy:\n  release_rho: -1\n", "privacy.release_rho: Input should be greater than 0"),
        ("privacy:\n  lifetime_rho: .inf\n", "privacy.lifetime_rho: Input should be a finite number"),
        ("privacy: [\n", "is not valid YAML"),
    ):
        settings.write_text(broken, encoding="utf-8")
        refused = collab(home, "budget", check=False)
        output = " ".join((refused.stdout + refused.stderr).split())
        assert refused.returncode == 2 and said in output and "Traceback" not in output, output
    settings.unlink()
    # A device filled the landing area (11.6 GB in 20 s); a pipe waited for ever.
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    for source in ("/dev/zero", str(fifo)):
        refused = collab(home, "submit", "--charity", "north-pantry", source, check=False)
        assert refused.returncode == 2 and "is not a file" in refused.stderr, refused.stderr
    assert not [p for p in (home / "landing" / "north-pantry").iterdir()]
    # A path for a submission id deleted the records purge keeps; a quarter with a line break got past the check.
    refused = collab(home, "purge", "../staging/north-pantry-0123456789ab", check=False)
    assert refused.returncode == 2 and "is not a submission id" in refused.stderr
    refused = collab(home, "release", "2026Q1\n", check=False)
    assert refused.returncode == 2 and "is not a quarter" in refused.stderr and "Traceback" not in refused.stderr
    # An operator's trial: the production profile without its database's URL exported gave Dagster's traceback.
    settings.write_text("instance:\n  database: postgres\n", encoding="utf-8")
    monkeypatch.delenv("COLLAB_DAGSTER_POSTGRES_URL", raising=False)
    for command in (["run"], ["release", "2026Q1"], ["approve", "2026Q1-v1"]):
        refused = collab(home, *command, check=False)
        said = " ".join(refused.stderr.split())
        assert refused.returncode == 2 and "COLLAB_DAGSTER_POSTGRES_URL is not set" in said, said
        assert "Traceback" not in refused.stdout + refused.stderr
