"""The site builder on hand-made published packages: any indicators, any breakdowns, counts or
amounts, an indicator with no figures, a tampered release, and escaping of every label."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

from collab.publication import ReleaseIntegrityError, indicator_fields, sha256_of
from collab.site import build_site, charts
from collab.site.model import Estimate, change_between, combined, quarter_label

REGIONS = [("E12000001", "North East"), ("E12000007", "London"), ("W92000004", "Wales")]
NEEDS = [("food", "Food"), ("debt", "Debt")]


def indicator(id_: str, breakdowns: list[str], rows: list[list[Any]], **meta: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "title": meta.pop("title", id_.replace("_", " ").capitalize()),
        "description": "A test indicator.",
        "measure": meta.pop("measure", "people_count"),
        "breakdowns": breakdowns,
        "path": f"data/{id_}.csv",
        "cells": len(rows),
        "low_reliability_cells": 0,
        "rho": 0.25,
        "noise_scale": 2.0,
        "max_cells_per_person": 1,
        "rows": rows,
        **meta,
    }


def publish(root: Path, release_id: str, indicators: list[dict[str, Any]], revision: int = 1) -> Path:
    """A published release package as ``write_release_package`` lays it out."""
    period = release_id.split("-v")[0]
    directory = root / "releases" / release_id
    (directory / "data").mkdir(parents=True)
    resources, metas = [], []
    for item in indicators:
        meta = {k: v for k, v in item.items() if k != "rows"}
        fields = indicator_fields(meta["breakdowns"])
        with (directory / meta["path"]).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow([f["name"] for f in fields])
            writer.writerows([release_id, period, *row] for row in item["rows"])
        resources.append({"name": meta["id"], "path": meta["path"], "schema": {"fields": fields}})
        metas.append(meta)
    (directory / "datapackage.json").write_text(json.dumps({"resources": resources}), encoding="utf-8")
    manifest = {
        "release_id": release_id,
        "period": period,
        "revision": revision,
        "kind": "release" if revision == 1 else "revision",
        "created_at": "2026-10-02T09:00:00+00:00",
        "standard_version": "1.0",
        "code_version": "0.1.0+test",
        "contributors": 3,
        "privacy": {
            "unit": "one person at one charity, per calendar quarter",
            "definition": "zero-concentrated differential privacy (rho-zCDP)",
            "mechanism": "discrete Gaussian (OpenDP)",
            "rho_spent": 0.5,
            "epsilon": 5.67,
            "delta": 1e-7,
            "period_rho_spent": 0.5,
            "period_rho_budget": 1.0,
            "lifetime_rho_spent": 1.0,
            "lifetime_rho_budget": 5.0,
        },
        "indicators": metas,
        "files": {
            p.relative_to(directory).as_posix(): sha256_of(p) for p in sorted(directory.rglob("*")) if p.is_file()
        },
    }
    (directory / "release.json").write_text(json.dumps(manifest), encoding="utf-8")
    return directory


def need_region_rows(scale: int) -> list[list[Any]]:
    return [
        [r, rn, n, nn, scale * (i + 1) * (j + 2), scale * (i + 1) * (j + 2) - 4, scale * (i + 1) * (j + 2) + 4, "false"]
        for i, (r, rn) in enumerate(REGIONS)
        for j, (n, nn) in enumerate(NEEDS)
    ]


@pytest.fixture
def two_quarters(tmp_path: Path) -> Path:
    root = tmp_path / "publish"
    publish(root, "2026Q1-v1", [indicator("people_by_need_region", ["region", "need"], need_region_rows(10))])
    amounts = [
        [f"E0600000{i}", f"Authority <{i}> & Co", 800.5 + 40 * i, 700.25 + 40 * i, 900.75 + 40 * i, "false"]
        for i in range(1, 31)
    ]
    publish(
        root,
        "2026Q2-v1",
        [
            indicator("people_by_need_region", ["region", "need"], need_region_rows(12)),
            indicator(
                "median_income_by_local_authority",
                ["local_authority"],
                amounts,
                measure="median_amount",
                unit="gbp",
                title="Median monthly income",
            ),
            indicator("people_linked_across_charities", ["region"], [], title="People seen by several charities"),
        ],
    )
    return root


def test_site_has_every_page_with_charts_tables_and_downloads(two_quarters: Path) -> None:
    index = build_site(two_quarters)
    site = index.parent
    pages = {p.relative_to(site).as_posix() for p in site.rglob("*.html")}
    assert pages == {
        "index.html",
        "methodology.html",
        "releases.html",
        "indicators/index.html",
        "indicators/people_by_need_region.html",
        "indicators/median_income_by_local_authority.html",
        "indicators/people_linked_across_charities.html",
    }
    home = index.read_text()
    assert "Poverty indicators for Apr–Jun 2026" in home
    # Headline: the sum of the 6 cells (12*(2+3+4+6+6+9)=...) with the interval of summed noise.
    total = sum(row[4] for row in need_region_rows(12))
    assert f"{total:,}" in home and "clear rise" in home
    assert "No figures this quarter" in home
    page = (site / "indicators" / "people_by_need_region.html").read_text()
    assert page.count("<svg") >= 4 and 'role="img"' in page and "<table>" in page
    assert "../../releases/2026Q1-v1/data/people_by_need_region.csv" in page
    for link in ("../releases/2026Q2-v1/datapackage.json", "../releases/2026Q1-v1/release.json"):
        assert link in (site / "releases.html").read_text()
    assert (site / "assets" / "site.css").exists()
    assert "http://" not in home.replace("http://www.w3.org/2000/svg", "") and "https://" not in home


def test_amounts_are_shown_in_pounds_and_long_rankings_are_cut_to_the_highest(two_quarters: Path) -> None:
    site = build_site(two_quarters).parent
    page = (site / "indicators" / "median_income_by_local_authority.html").read_text()
    assert "£2,000.50" not in page and "£2,000" in page  # 800.5 + 40*30, whole pounds above £100
    assert "The 25 highest of 30 are drawn" in page
    assert page.count("<tr") == 31  # every authority is in the table
    # Labels are escaped in the table and inside the SVG.
    assert "Authority &lt;30&gt; &amp; Co" in page and "<30>" not in page


def test_an_indicator_with_no_rows_says_no_figures_rather_than_drawing_an_empty_chart(two_quarters: Path) -> None:
    site = build_site(two_quarters).parent
    page = (site / "indicators" / "people_linked_across_charities.html").read_text()
    assert "No figures this quarter" in page
    assert '<svg class="chart"' not in page and "<table>" not in page


def test_a_revision_supersedes_its_release_and_both_stay_listed(two_quarters: Path) -> None:
    publish(
        two_quarters,
        "2026Q2-v2",
        [indicator("people_by_need_region", ["region", "need"], need_region_rows(20))],
        revision=2,
    )
    site = build_site(two_quarters).parent
    history = (site / "releases.html").read_text()
    assert "2026Q2-v2" in history and '2026Q2-v1 <span class="small">(superseded)</span>' in history
    assert "release 2026Q2-v2" in (site / "index.html").read_text()


def test_a_tampered_published_release_stops_the_build_and_keeps_the_previous_site(two_quarters: Path) -> None:
    index = build_site(two_quarters)
    before = index.read_text()
    data = two_quarters / "releases" / "2026Q1-v1" / "data" / "people_by_need_region.csv"
    data.write_text(data.read_text().replace(",false", ",true", 1))
    with pytest.raises(
        ReleaseIntegrityError, match=r"2026Q1-v1 is not intact: .*people_by_need_region.csv has been changed"
    ):
        build_site(two_quarters)
    assert index.read_text() == before


def test_nothing_published_yet_renders_a_plain_notice(tmp_path: Path) -> None:
    (tmp_path / "releases").mkdir()
    assert "Nothing published yet" in build_site(tmp_path).read_text()


def test_totals_and_changes_combine_unclipped_estimates_and_their_variances() -> None:
    # The empty cell was published as 0 but measured as -3: the total adds -3, unbiased, with variance 3σ².
    estimates = [Estimate(100, 96, 104, False, 101.0, 4.0), Estimate(50, 46, 54, False, 49.0, 4.0)]
    estimates.append(Estimate(0, 0, 4, True, -3.0, 4.0))
    total = combined(estimates)
    assert total.value == 147 and total.unclipped == 147 and total.variance == 12.0 and not total.approximate
    assert total.high - total.value == pytest.approx(1.959964 * 2.0 * 3**0.5, rel=1e-5)
    empty = combined([Estimate(0, 0, 4, True, -3.0, 4.0), Estimate(0, 0, 4, True, -2.0, 4.0)])
    assert empty.value == 0 == empty.low and empty.high == pytest.approx(-5 + 1.959964 * 8**0.5, rel=1e-5)
    # A release without unclipped estimates: the variance its interval implies, called approximate.
    assert combined([Estimate(100, 96, 104)]).approximate
    change = change_between(Estimate(120, 110, 130), Estimate(100, 90, 110), "2026Q1")
    assert change.low == pytest.approx(20 - 10 * 2**0.5) and change.clear and change.approximate
    exact = change_between(Estimate(120, 110, 130, False, 121.0, 9.0), Estimate(100, 90, 110, False, 99.0, 16.0), "Q")
    assert exact.difference == 22 and exact.high - exact.difference == pytest.approx(1.959964 * 5, rel=1e-5)
    assert not change_between(Estimate(105, 95, 115), Estimate(100, 90, 110), "2026Q1").clear
    assert quarter_label("2026Q3") == "Jul–Sep 2026" and quarter_label("2026-07") == "2026-07"


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours."""

    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    lighter, darker = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_text_and_chart_colours_meet_wcag_aa() -> None:
    css = (Path(charts.__file__).with_name("static") / "site.css").read_text()
    colours = dict(re.findall(r"--([a-z-]+): (#[0-9a-fA-F]{6})", css))
    text_pairs = [
        ("ink", "paper"),
        ("muted", "paper"),
        ("muted", "wash"),
        ("link", "paper"),
        ("link", "wash"),
        ("amber", "amber-wash"),
        ("green", "green-wash"),
        ("paper", "navy"),
    ]
    for foreground, background in text_pairs:
        assert contrast(colours[foreground], colours[background]) >= 4.5, (foreground, background)
    for text in (charts.INK, charts.MUTED):
        assert contrast(text, "#ffffff") >= 4.5
    assert contrast(charts.BLUE, "#ffffff") >= 3  # graphical objects (WCAG 1.4.11)


def test_an_area_by_need_indicator_headlines_the_uk_total_across_needs() -> None:
    from collab.site.model import Cell, IndicatorRelease, Unit, headline, rankings

    def cell(area: str, level: str, need: str, value: float) -> Cell:
        return Cell((area, need), (area, need), Estimate(value, value - 10, value + 10), level)

    release = IndicatorRelease(
        {"breakdowns": ["area", "need"], "max_cells_per_person": 3},
        "2026Q1-v1",
        "2026Q1",
        [
            cell("K02000001", "uk", "food", 300),
            cell("K02000001", "uk", "debt", 200),
            cell("E92000001", "nation", "food", 250),
            cell("E92000001", "nation", "debt", 150),
            cell("W92000004", "nation", "food", 50),
            cell("W92000004", "nation", "debt", 50),
        ],
    )
    top = headline(release, Unit("count", noun="contacts"))
    assert top is not None and top.estimate.value == 500  # both needs at UK level, not one UK row
    assert top.label == "United Kingdom, all needs added together"
    [panel] = rankings(release, Unit("count", noun="contacts"))
    assert [bar.label for bar in panel.bars] == ["E92000001", "W92000004"]  # nations only: the UK is not ranked
