"""What a reader gets, end to end: the demo's published site in real headless Chromium (Debian's
package, driven by Playwright; never a downloaded browser) served by `collab serve-site`, the
Frictionless data packages, and the reader notebooks executed headless against `publish/`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import nbformat
import pytest
from frictionless import validate
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from playwright.sync_api import BrowserContext, Page

from collab.publication import ReleaseIntegrityError
from collab.site import build_site
from tests.browser import chromium
from tests.system.test_cli import collab

pytestmark = pytest.mark.system
REPOSITORY = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPOSITORY / "notebooks"
ARTIFACTS = REPOSITORY / "tests" / "artifacts" / "site"


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's four published quarters, the last one revised so the history has a superseded release."""
    home = tmp_path_factory.mktemp("site") / "var"
    summary = json.loads(collab(home, "demo", "--contacts", "3000", "--quarters", "4", "--json").stdout)
    latest = summary["releases"][-1]["period"]
    revised = json.loads(collab(home, "release", latest, "--revise", "--json").stdout)
    assert revised["published"] and revised["release_id"] == f"{latest}-v2"
    return home


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


def check_charts(page: Page) -> int:
    """Every chart is a non-empty SVG with an accessible name; returns how many there are."""
    charts = page.eval_on_selector_all(
        "svg.chart",
        """els => els.map(e => ({
            width: e.getBoundingClientRect().width,
            height: e.getBoundingClientRect().height,
            marks: e.querySelectorAll('rect, line, polyline, polygon, circle').length,
            role: e.getAttribute('role'),
            name: (e.getAttribute('aria-labelledby') || '').split(' ')
                .map(id => (document.getElementById(id) || {}).textContent || '').join(' ').trim(),
        }))""",
    )
    for chart in charts:
        assert chart["width"] > 0 and chart["height"] > 0 and chart["marks"] > 0, (page.url, chart)
        assert chart["role"] == "img" and len(chart["name"]) > 20, (page.url, chart)
    return len(charts)


def test_every_page_loads_cleanly_every_chart_renders_and_every_link_resolves(
    site_url: str, browser: BrowserContext
) -> None:
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.on("request", lambda r: None if r.url.startswith(site_url) else problems.append(f"off-site request: {r.url}"))

    start = f"{site_url}/site/index.html"
    queue, visited, downloads, charts = [start], set(), set(), 0
    while queue:
        url = queue.pop(0)
        if url in visited:
            continue
        visited.add(url)
        response = page.goto(url, wait_until="load")
        assert response is not None and response.ok, url
        assert page.locator("html[lang]").count() == 1 and page.locator("h1").count() == 1, url
        assert page.locator("script").count() == 0, f"{url} needs no JavaScript"
        charts += check_charts(page)
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            target, fragment = urldefrag(href)
            assert target.startswith(site_url), f"{url} links off the site: {href}"
            if fragment and target == url:
                assert page.locator(f"[id='{fragment}']").count() == 1, f"{url}#{fragment} has no target"
            elif urlparse(target).path.endswith(".html"):
                queue.append(target)
            else:
                downloads.add(target)
    for url in sorted(downloads):
        assert browser.request.get(url).status == 200, url
    assert problems == []
    assert len(visited) >= 5 and charts >= 10
    assert any(url.endswith("datapackage.json") for url in downloads) and any(u.endswith(".csv") for u in downloads)


def test_screenshots_of_the_home_page_and_an_indicator_page(site_url: str, browser: BrowserContext) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page()
    page.goto(f"{site_url}/site/index.html", wait_until="load")
    assert "Poverty indicators for" in page.locator("h1").inner_text()
    page.screenshot(path=str(ARTIFACTS / "home.png"), full_page=True)
    page.click("article.card h3 a")
    assert page.url.endswith("/site/indicators/people_by_need_region.html")
    page.screenshot(path=str(ARTIFACTS / "indicator.png"), full_page=True)
    for name in ("home.png", "indicator.png"):
        assert (ARTIFACTS / name).stat().st_size > 20_000


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
    data.write_text(data.read_text().replace(",false", ",true", 1))
    with pytest.raises(CellExecutionError) as refused:
        execute(NOTEBOOKS / "02_compare_two_regions.ipynb", publish)
    assert refused.value.ename == "TamperedReleaseError"
    assert (
        "has been altered since it was published (data/people_by_need_region.csv does not match" in refused.value.evalue
    )
    with pytest.raises(ReleaseIntegrityError, match=r"people_by_need_region\.csv has been changed since release"):
        build_site(publish)
