"""The demo, end to end, built once for the module (the slowest step of the suite): `collab demo` as an
analyst runs it, and what a reader gets: the published site in real headless Chromium (Debian's package,
driven by Playwright; never a downloaded browser) served by `collab serve-site`, the Frictionless data
packages, and the reader notebooks executed headless against `publish/`."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urlparse

import fastexcel
import nbformat
import polars as pl
import pytest
from frictionless import validate
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from playwright.sync_api import BrowserContext, Page

from collab.publication import ReleaseIntegrityError, verify_release_package
from collab.site import build_site
from collab.workspace import PublicationSettings
from tests.browser import axe_violations, chromium
from tests.pipeline.test_releases import SPENT
from tests.system.commands import collab
from tests.tampering import alter_one_row

pytestmark = pytest.mark.system
REPOSITORY = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPOSITORY / "notebooks"
ARTIFACTS = REPOSITORY / "tests" / "artifacts" / "site"


@dataclass(frozen=True)
class Demo:
    home: Path
    # What `collab demo --json` printed, and `collab budget --json` straight after (before the revision).
    summary: dict[str, Any]
    budget_after_demo: dict[str, Any]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """`collab demo` on six charities over four quarters, every quarter published; then the latest quarter
    revised, so the site's history has a superseded release."""
    home = tmp_path_factory.mktemp("demo") / "var"
    summary = json.loads(
        collab(home, "demo", "--contacts", "3000", "--charities", "6", "--quarters", "4", "--json").stdout
    )
    budget = json.loads(collab(home, "budget", "--json").stdout)
    latest = summary["releases"][-1]["period"]
    revised = json.loads(collab(home, "release", latest, "--revise", "--json").stdout)
    assert revised["published"] and revised["release_id"] == f"{latest}-v2"
    return Demo(home=home, summary=summary, budget_after_demo=budget)


@pytest.fixture(scope="module")
def demo_home(demo: Demo) -> Path:
    return demo.home


@pytest.fixture(scope="module")
def site_url(demo_home: Path) -> Iterator[str]:
    """`collab serve-site` on a free localhost port, stopped by its own pid afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "COLLAB_HOME": str(demo_home), "DAGSTER_HOME": str(demo_home / "dagster")}
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("collab")), "serve-site", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError("collab serve-site did not start") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


WIDTHS = (1280, 390)  # a desktop, and a phone (iPhone 12 to 15) in portrait
# Area pages checked in the browser: the UK, a nation, a region, and the two recoded authorities. Every
# other area page gets the cheap structural check of `test_every_area_page_is_well_formed`.
AREA_SAMPLE = ("K02000001", "W92000004", "E12000002", "E08000038", "E08000039")


def check_charts(page: Page) -> int:
    """Every visible chart is a non-empty SVG with an accessible name whose text renders at 12 px or more;
    returns how many there are."""
    charts = page.eval_on_selector_all(
        "svg.chart",
        """els => els.filter(e => e.getBoundingClientRect().width > 0).map(e => ({
            width: e.getBoundingClientRect().width,
            height: e.getBoundingClientRect().height,
            marks: e.querySelectorAll('rect, line, polyline, polygon, circle').length,
            role: e.getAttribute('role'),
            name: (e.getAttribute('aria-labelledby') || '').split(' ')
                .map(id => (document.getElementById(id) || {}).textContent || '').join(' ').trim(),
            smallest: Math.min(1000, ...[...e.querySelectorAll('text')].map(t => t.getBoundingClientRect().height)
                .filter(h => h > 0)),
            font: Math.min(1000, ...[...e.querySelectorAll('text')].map(t =>
                parseFloat(t.getAttribute('font-size') || '16') * e.getBoundingClientRect().width
                / e.viewBox.baseVal.width)),
        }))""",
    )
    for chart in charts:
        assert chart["width"] > 0 and chart["height"] > 0 and chart["marks"] > 0, (page.url, chart)
        assert chart["role"] == "img" and len(chart["name"]) > 20, (page.url, chart)
        assert chart["font"] >= 12, f"{page.url}: chart text renders at {chart['font']:.1f} px"
    return len(charts)


def watch(page: Page, site_url: str) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.on("request", lambda r: None if r.url.startswith(site_url) else problems.append(f"off-site request: {r.url}"))
    return problems


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_loads_cleanly_fits_the_screen_passes_axe_and_every_link_resolves(
    site_url: str, browser: BrowserContext, width: int
) -> None:
    page = browser.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    problems = watch(page, site_url)
    start = f"{site_url}/site/index.html"
    queue, visited, downloads, charts, hexes = [start], set(), set(), 0, 0
    headline_shares: list[float] = []
    area_sample = {f"{site_url}/site/areas/{code}.html" for code in AREA_SAMPLE}
    while queue:
        url = queue.pop(0)
        if url in visited:
            continue
        visited.add(url)
        response = page.goto(url, wait_until="load")
        assert response is not None and response.ok, url
        assert page.locator("html[lang]").count() == 1 and page.locator("h1").count() == 1, url
        assert page.locator("script").count() == 0, f"{url} needs no JavaScript"
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{url} scrolls sideways by {overflow} px at {width} px"
        charts += check_charts(page)
        if width == WIDTHS[0]:  # axe reads the same document at both widths; once keeps the suite fast
            assert axe_violations(page) == [], url
        hexes += page.locator("svg.map a").count()
        shares = page.eval_on_selector_all("[data-headline-share]", "els => els.map(e => e.dataset.headlineShare)")
        headline_shares += [float(share) for share in shares if share != "none"]
        # Resolved from the attribute: an SVG link's .href is an object, not a string.
        links = "els => els.map(e => new URL(e.getAttribute('href'), document.baseURI).href)"
        for href in page.eval_on_selector_all("a[href]", links):
            target, fragment = urldefrag(href)
            assert target.startswith(site_url), f"{url} links off the site: {href}"
            if fragment and target == url:
                assert page.locator(f"[id='{fragment}']").count() == 1, f"{url}#{fragment} has no target"
            elif "/site/areas/" in target and not target.endswith("/areas/index.html") and target not in area_sample:
                continue  # every other area page: `test_every_area_page_is_well_formed`
            elif urlparse(target).path.endswith(".html"):
                queue.append(target)
            else:
                downloads.add(target)
    for url in sorted(downloads):
        assert browser.request.get(url).status == 200, url
    assert problems == []
    assert len(visited) >= 20 and charts >= 10 and hexes >= 3 * 361  # home and the areas page (two maps)
    assert set(area_sample) <= visited
    # No headline is quoted whose interval is wider than the setting allows (the rest read "not enough data").
    assert headline_shares and max(headline_shares) <= PublicationSettings().max_interval_share
    assert any(url.endswith("datapackage.json") for url in downloads) and any(u.endswith(".csv") for u in downloads)


def test_every_area_page_is_well_formed(demo_home: Path) -> None:
    """All 375 area pages, cheaply: one h1, no script, and every relative link lands on a file that exists."""
    site = demo_home / "publish" / "site"
    pages = sorted((site / "areas").glob("*.html"))
    assert len(pages) == 1 + 4 + 9 + 361 + 1
    for path in pages:
        html = path.read_text(encoding="utf-8")
        assert html.count("<h1") == 1 and "<script" not in html, path.name
        for href in re.findall(r'href="([^"#]+)', html):
            assert (path.parent / href).resolve().is_file(), f"{path.name} links to missing {href}"


def test_an_indicator_table_over_the_area_levels_says_each_rows_level(demo_home: Path) -> None:
    """Wales is a nation and a region: its two rows are told apart by their level, not shown as a repeat."""
    page = (demo_home / "publish" / "site" / "indicators" / "people_by_local_authority.html").read_text()
    table = page[page.index('<h2 id="table">') :]
    assert '<th scope="col">Level</th>' in table
    assert "<td>Wales</td><td>nation</td>" in table and "<td>Wales</td><td>region</td>" in table
    assert "<td>local authority</td>" in table


def test_a_count_of_contacts_is_not_described_as_people(demo_home: Path) -> None:
    """An analyst's trial (session 31): the contacts indicator's page said each figure counted people, once per cell,
    and that its total added up people."""
    page = " ".join((demo_home / "publish" / "site" / "indicators" / "contacts_by_need.html").read_text().split())
    assert "people who had at least one contact" not in page and "adds up people" not in page
    assert "contacts with participating charities in that quarter, each person's counted at most 4 times" in page
    people = " ".join(
        (demo_home / "publish" / "site" / "indicators" / "people_by_need_region.html").read_text().split()
    )
    assert "people who had at least one contact with a participating charity in that quarter" in people


def test_the_home_page_has_one_people_supported_total(site_url: str, browser: BrowserContext) -> None:
    page = browser.new_page()
    page.goto(f"{site_url}/site/index.html", wait_until="load")
    assert page.locator("[data-total='people-supported']").count() == 1
    total = page.locator("[data-total='people-supported'] .figure").inner_text()
    # No other figure on the home page is a count of people: cards show UK figures of other things only.
    figures = page.locator(".figure").all_inner_texts()
    assert figures.count(total) == 1 and len(figures) <= 3, figures
    assert "Highest" not in page.locator("main").inner_text()


@pytest.mark.parametrize("width", WIDTHS)
def test_screenshots_of_home_an_area_an_indicator_and_the_map(
    site_url: str, browser: BrowserContext, width: int
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{site_url}/site/index.html", wait_until="load")
    assert "Poverty indicators for" in page.locator("h1").inner_text()
    page.screenshot(path=str(ARTIFACTS / f"home-{width}.png"), full_page=True)
    page.click("article.card h3 a")
    assert page.url.endswith("/site/indicators/people_by_need_region.html")
    page.screenshot(path=str(ARTIFACTS / f"indicator-{width}.png"), full_page=True)
    page.goto(f"{site_url}/site/areas/index.html", wait_until="load")
    page.locator("section[aria-labelledby='map-title']").screenshot(path=str(ARTIFACTS / f"map-{width}.png"))
    page.click("svg.map#map-la a[href$='E08000039.html']")  # Sheffield, under its current code
    assert page.locator("h1").inner_text() == "Sheffield"
    page.screenshot(path=str(ARTIFACTS / f"area-{width}.png"), full_page=True)
    for name in ("home", "indicator", "map", "area"):
        assert (ARTIFACTS / f"{name}-{width}.png").stat().st_size > 20_000


def test_downloads_cover_every_quarter_and_every_release(demo_home: Path) -> None:
    downloads = demo_home / "publish" / "site" / "downloads"
    with (downloads / "people_by_local_authority-time-series.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    releases = sorted({(row["period"], row["release_id"]) for row in rows})
    assert len(releases) == 4 and releases[-1][1].endswith("-v2")  # the latest revision of each quarter
    assert len(rows) == 4 * (1 + 4 + 9 + 3 + 361)  # every area at every level (a nation that is a region twice)
    # A nation that is a region: one figure at both levels, as the data dictionary tells a reader adding up areas.
    wales = {row["area_level"]: row for row in rows if row["area_code"] == "W92000004" and row["period"] == "2026Q1"}
    assert {level: (r["value"], r["ci_low"], r["ci_high"]) for level, r in wales.items()} == dict.fromkeys(
        ("nation", "region"), (wales["nation"]["value"], wales["nation"]["ci_low"], wales["nation"]["ci_high"])
    )
    package = json.loads(next((demo_home / "publish" / "releases").glob("*/datapackage.json")).read_text())
    fields = [
        f for r in package["resources"] if r["name"] == "people-by-local-authority" for f in r["schema"]["fields"]
    ]
    level = next(f["description"] for f in fields if f["name"] == "area_level")
    assert "one level at a time" in level and "Wales" in level
    packages = sorted((demo_home / "publish" / "releases").iterdir())
    for package in packages:
        workbook = fastexcel.read_excel(downloads / f"{package.name}.xlsx")
        assert workbook.sheet_names[:3] == ["Cover", "Contents", "Notes"] and len(workbook.sheet_names) == 3 + 11
        counts = workbook.load_sheet("Table_1", header_row=4).to_polars()
        estimates = counts["Estimate [note 7]"], counts["Estimate variance [note 7]"]
        assert estimates[0].dtype == estimates[1].dtype == pl.Float64  # numbers a spreadsheet adds
        assert "Figure (people)" in counts.columns  # in its unit
        with zipfile.ZipFile(downloads / f"{package.name}.zip") as archive:
            assert f"{package.name}/datapackage.json" in archive.namelist()


def test_frictionless_validates_every_published_package(demo_home: Path) -> None:
    packages = sorted((demo_home / "publish" / "releases").glob("*/datapackage.json"))
    assert len(packages) == 5
    for package in packages:
        report = validate(str(package))
        assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])


def execute(notebook: Path, publish: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(notebook, as_version=4)
    os.environ["COLLAB_PUBLISH"] = str(publish)
    try:
        NotebookClient(
            nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        ).execute()
    finally:
        os.environ.pop("COLLAB_PUBLISH", None)
    return nb


@pytest.mark.parametrize("name", ["01_trend_with_interval.ipynb", "02_compare_two_regions.ipynb"])
def test_reader_notebooks_run_headless_on_the_published_releases(demo_home: Path, name: str) -> None:
    nb = execute(NOTEBOOKS / name, demo_home / "publish")
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 1
    assert "95% interval" in "".join(o.get("text", "") for o in outputs if o.output_type == "stream")


def test_a_tampered_release_is_refused_by_the_loader_and_the_site_build(demo_home: Path, tmp_path: Path) -> None:
    publish = tmp_path / "publish"
    shutil.copytree(demo_home / "publish", publish)
    data = next((publish / "releases").glob("*-v1/data/people_by_need_region.csv"))
    alter_one_row(data)
    with pytest.raises(CellExecutionError) as refused:
        execute(NOTEBOOKS / "02_compare_two_regions.ipynb", publish)
    assert refused.value.ename == "TamperedReleaseError"
    assert (
        "has been altered since it was published (data/people_by_need_region.csv does not match" in refused.value.evalue
    )
    with pytest.raises(ReleaseIntegrityError, match=r"people_by_need_region\.csv has been changed since release"):
        build_site(publish)


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
    # Four figures, so that four quarters visibly add up to the lifetime (at three, 0.125 each made 0.499).
    now = json.loads(collab(demo_home, "budget", "--json").stdout)
    assert f"│ {now['periods'][0]['rho_per_unit']:.4g} " in text
    assert f"│ {now['lifetime_rho_per_unit']:.4g} " in text
    assert "measurement" in collab(demo_home, "budget", "--detail").stdout


def test_demo_files_show_realistic_mistakes_with_feedback(demo: Demo) -> None:
    demo_home, summary = demo.home, demo.summary
    statuses = {s["file_name"]: s for s in summary["submissions"]}
    first_attempt = next(s for name, s in statuses.items() if "first-attempt" in name)
    # The column left out is one the charity's mapping file names: the report says so beside the missing column.
    assert first_attempt["status"] == "rejected"
    assert first_attempt["codes"] == ["E_MISSING_COLUMN", "W_MAPPED_COLUMN_MISSING"]
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


def test_running_again_processes_nothing_and_spends_nothing(demo: Demo) -> None:
    before = json.loads(collab(demo.home, "budget", "--json").stdout)
    # The demo's four releases and the revision of the latest quarter, each 4² × 0.125 for a person of 4 units.
    assert before["lifetime_rho_per_person"] == pytest.approx(5 * 4**2 * 0.125 * SPENT)
    report = json.loads(collab(demo.home, "run", "--json").stdout)
    assert report["submissions"] == [] and report["releases"] == []
    again = json.loads(collab(demo.home, "release", "2026Q1", "--json").stdout)
    assert again["new_spend"] is False
    assert json.loads(collab(demo.home, "budget", "--json").stdout) == before


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


def test_only_charities_that_agreed_are_named_on_the_site(demo: Demo) -> None:
    demo_home = demo.home
    manifest = json.loads(next((demo_home / "publish" / "releases").glob("*/release.json")).read_text())
    assert manifest["named_contributors"] == ["Northside Food Bank"]  # the one demo charity that agreed
    assert manifest["contributors"] == 6
    methodology = (demo_home / "publish" / "site" / "methodology.html").read_text()
    assert "Northside Food Bank" in methodology and "Riverside Advice Centre" not in methodology
    listed = json.loads(collab(demo_home, "charity", "list", "--json").stdout)
    assert {c["id"]: c["publish_name"] for c in listed}["riverside-advice"] is False
