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
from tests.tampering import alter_one_row

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


def publish(
    root: Path,
    release_id: str,
    indicators: list[dict[str, Any]],
    revision: int = 1,
    created_at: str = "2026-10-02T09:00:00+00:00",
    **privacy: Any,
) -> Path:
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
        "created_at": created_at,
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
            **privacy,
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


AREAS = [  # code, name, level, parent, people in 2026Q1
    ("K02000001", "United Kingdom", "uk", "", 1000),
    ("E92000001", "England", "nation", "K02000001", 800),
    ("W92000004", "Wales", "nation", "K02000001", 200),
    ("E12000001", "North East", "region", "E92000001", 300),
    ("E12000007", "London", "region", "E92000001", 500),
    ("W92000004", "Wales", "region", "W92000004", 200),
    ("E06000001", "Hartlepool", "local_authority", "E12000001", 100),
    ("E06000002", "Middlesbrough", "local_authority", "E12000001", 200),
    ("E09000001", "City of London", "local_authority", "E12000007", 500),
    ("W06000001", "Isle of Anglesey", "local_authority", "W92000004", 200),
]
LONDON_AND_ABOVE = {"K02000001", "E92000001", "E12000007", "E09000001"}


def area_rows(london_rise: int) -> list[list[Any]]:
    """People by area, consistent up the hierarchy; London (and so England and the UK) up by ``london_rise``."""
    rows = []
    for code, name, level, parent, people in AREAS:
        value = people + (london_rise if code in LONDON_AND_ABOVE else 0)
        rows.append([code, name, level, parent, value, value - 10, value + 10, "false"])
    return rows


def people_by_area(london_rise: int) -> dict[str, Any]:
    return indicator(
        "people_by_local_authority",
        ["area"],
        area_rows(london_rise),
        title="People supported, by local authority",
        unit="people",
        area_levels=["uk", "nation", "region", "local_authority"],
        population="everyone",
    )


@pytest.fixture
def two_quarters(tmp_path: Path) -> Path:
    return make_two_quarters(tmp_path)


def make_two_quarters(tmp_path: Path) -> Path:
    root = tmp_path / "publish"
    publish(
        root,
        "2026Q1-v1",
        [
            indicator("people_by_need_region", ["region", "need"], need_region_rows(10), max_cells_per_person=3),
            people_by_area(0),
        ],
    )
    amounts = [
        [f"E0600000{i}", f"Authority <{i}> & Co", 800.5 + 40 * i, 700.25 + 40 * i, 900.75 + 40 * i, "false"]
        for i in range(1, 31)
    ]
    publish(
        root,
        "2026Q2-v1",
        [
            indicator("people_by_need_region", ["region", "need"], need_region_rows(12), max_cells_per_person=3),
            people_by_area(300),
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
    pages = {p.relative_to(site).as_posix() for p in site.rglob("*.html") if p.parent.name != "areas"}
    assert pages == {
        "index.html",
        "methodology.html",
        "releases.html",
        "indicators/index.html",
        "indicators/people_by_need_region.html",
        "indicators/people_by_local_authority.html",
        "indicators/median_income_by_local_authority.html",
        "indicators/people_linked_across_charities.html",
    }
    home = index.read_text()
    assert "Poverty indicators for Apr–Jun 2026" in home
    assert "No figures this quarter" in home
    page = (site / "indicators" / "people_by_need_region.html").read_text()
    assert page.count("<svg") >= 4 and 'role="img"' in page and "<table>" in page
    assert "../../releases/2026Q1-v1/data/people_by_need_region.csv" in page
    for link in ("../releases/2026Q2-v1/datapackage.json", "../releases/2026Q1-v1/release.json"):
        assert link in (site / "releases.html").read_text()
    assert (site / "assets" / "site.css").exists()
    assert "http://" not in home.replace("http://www.w3.org/2000/svg", "") and "https://" not in home


def test_the_home_page_leads_with_one_people_total_and_main_points_on_clear_changes_only(two_quarters: Path) -> None:
    home = build_site(two_quarters).read_text()
    # One total of people, the de-duplicated UK row: never a sum over needs that counts a person up to 3 times.
    assert home.count('data-total="people-supported"') == 1
    headline = home.split('data-total="people-supported"')[1].split("</div>")[0]
    assert "1,300" in headline and "A clear rise" in headline
    assert "Breakdowns by need count a person under each need they came with (up to 3)" in headline
    summed = sum(row[4] for row in need_region_rows(12))
    words = re.sub(r"<svg.*?</svg>", "", home, flags=re.S)
    assert f">{summed:,}<" not in words and "Highest" not in words
    points = re.findall(r"<li>(.*?)</li>", home.split('id="main-points"')[1].split("</ul>")[0], re.S)
    assert points[0].startswith("More people were supported across the UK than in Jan–Mar 2026: 1,300, up 300")
    # Levels rounded to 10, changes of 100 or more too. England and London (each +300, interval ±14) and then the needs (debt +36, food +24, each ±9.6) are clear.
    assert points[1:] == [
        "More people were supported in England: 1,100, up 300 on Jan–Mar 2026 (approximate 95% interval of the change +280 to +320).",
        "More people were supported in London: 800, up 300 on Jan–Mar 2026 (approximate 95% interval of the change +280 to +320).",
        "More people came for help with debt: 220, up 36 on Jan–Mar 2026 (approximate 95% interval of the change +26 to +46).",
        "More people came for help with food: 140, up 24 on Jan–Mar 2026 (approximate 95% interval of the change +14 to +34).",
    ]
    # The North East and Wales did not change: nothing is claimed about them.
    assert "North East:" not in home and "in Wales" not in home


def test_a_share_s_intervals_are_called_approximate_and_a_count_s_are_not(tmp_path: Path) -> None:
    root = tmp_path / "publish"
    shares = [[code, name, 0.4, 0.3, 0.5, "false"] for code, name in REGIONS]
    publish(
        root,
        "2026Q1-v1",
        [
            indicator("people_by_need_region", ["region", "need"], need_region_rows(10)),
            indicator("debt_share_by_region", ["region"], shares, measure="share", title="Share with debt"),
        ],
    )
    site = build_site(root).parent
    share = (site / "indicators" / "debt_share_by_region.html").read_text()
    assert "Approximate 95% interval</th>" in share and "is approximate: each share is worked out" in share
    count = (site / "indicators" / "people_by_need_region.html").read_text()
    assert "Approximate 95% interval</th>" not in count and "in at least 95 out of 100 draws" in count


def test_main_points_report_only_changes_that_stay_clear_when_every_change_compared_is_allowed_for() -> None:
    from collab.site.model import Change, Movement, main_points

    def moved(label: str, difference: float) -> Movement:  # each change's interval is ±10
        change = Change("2026Q1", difference, difference - 10, difference + 10, None)
        return Movement("need", label, Estimate(100, 90, 110), change)

    # One change 12 from zero is clear alone (p 0.019) but not among 22 (Holm's first threshold 0.05 / 22).
    compared = [moved("Debt", 40), moved("Food", 12), *(moved(f"Need {i}", 0) for i in range(20))]
    assert [m.label for m in main_points(compared)] == ["Debt"]
    assert [m.label for m in main_points(compared[:2])] == ["Debt", "Food"]  # two compared: 0.019 < 0.05 / 1


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
    alter_one_row(data)
    with pytest.raises(
        ReleaseIntegrityError, match=r"2026Q1-v1 is not intact: .*people_by_need_region.csv has been changed"
    ):
        build_site(two_quarters)
    assert index.read_text() == before


def test_nothing_published_yet_renders_a_plain_notice(tmp_path: Path) -> None:
    (tmp_path / "releases").mkdir()
    assert "Nothing published yet" in build_site(tmp_path).read_text()


def build_site_text_of_figure(estimate: Estimate) -> str:
    """What the site's figure macro writes for ``estimate``, a count of people."""
    from collab.site import _environment
    from collab.site.model import Unit

    macros = _environment().get_template("macros.html.j2").module
    return str(macros.figure(estimate, Unit("count", noun="people")))  # type: ignore[attr-defined]


def test_totals_and_changes_combine_unclipped_estimates_and_their_variances() -> None:
    # The empty cell was published as 0 but measured as -3: the total adds -3, unbiased, with variance 3σ².
    estimates = [Estimate(100, 96, 104, False, 101.0, 4.0), Estimate(50, 46, 54, False, 49.0, 4.0)]
    estimates.append(Estimate(0, 0, 4, True, -3.0, 4.0))
    total = combined(estimates)
    # The summed noise taken as normal: every total's interval is called approximate, as the methodology says.
    assert total.value == 147 and total.unclipped == 147 and total.variance == 12.0 and total.approximate
    assert total.high - total.value == pytest.approx(1.959964 * 2.0 * 3**0.5, rel=1e-5)
    empty = combined([Estimate(0, 0, 4, True, -3.0, 4.0), Estimate(0, 0, 4, True, -2.0, 4.0)])
    assert empty.value == 0 == empty.low and empty.high == pytest.approx(-5 + 1.959964 * 8**0.5, rel=1e-5)
    # A release without unclipped estimates: the variance its interval implies, called approximate.
    assert combined([Estimate(100, 96, 104)]).approximate
    shown = build_site_text_of_figure(Estimate(47, 40, 54, approximate=True))
    assert "approximate 95% interval 40 to 54" in shown
    assert "approximate" not in build_site_text_of_figure(Estimate(47, 40, 54))
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
    assert top.label == "United Kingdom, all needs added together (not a count of people)"  # up to 3 cells each
    [panel] = rankings(release, Unit("count", noun="contacts"))
    assert [bar.label for bar in panel.bars] == ["E92000001", "W92000004"]  # nations only: the UK is not ranked


def test_the_hex_map_has_one_hexagon_per_local_authority_under_its_current_code() -> None:
    from collab.site.maps import hexes
    from standards.geography import load_geography

    cells = hexes()
    codes = [cell.code for cell in cells]
    assert sorted(codes) == sorted(load_geography().local_authorities)  # all 361, Barnsley and Sheffield recoded
    assert {"E08000038", "E08000039"} <= set(codes) and not {"E08000016", "E08000019"} & set(codes)
    assert len({(cell.q, cell.r) for cell in cells}) == len(cells)


def test_map_classes_have_round_increasing_breaks() -> None:
    from collab.site.maps import SCALE, classes
    from collab.site.model import Unit

    shades = classes([float(v) for v in range(0, 1000, 7)], Unit("count", noun="people"))
    assert [s.colour for s in shades] == list(SCALE)
    assert [s.low for s in shades] == [0.0, 200.0, 400.0, 600.0, 800.0] and shades[-1].high is None
    assert classes([], Unit("count")) == []


def test_every_hex_links_to_an_area_page_and_every_area_has_one(two_quarters: Path) -> None:
    site = build_site(two_quarters).parent
    home = (site / "index.html").read_text()
    svg = home.split('<svg class="map"')[1].split("</svg>")[0]
    links = re.findall(r'<a href="([^"]+)"', svg)
    assert len(links) == 361 and all((site / link).is_file() for link in links)
    assert len(list((site / "areas").glob("*.html"))) == 1 + 4 + 9 + 361 + 1  # Scotland, Wales, NI once; the index
    # Hatched = low reliability; grey = no figure (only four authorities have figures in this package).
    assert svg.count('fill="#bdbdbd"') == 357
    london = (site / "areas" / "E09000001.html").read_text()
    assert "City of London" in london and ">800<" in london and "United Kingdom</a> › <a" in london
    region = (site / "areas" / "E12000001.html").read_text()
    assert "Areas within North East" in region and 'href="E06000001.html">Hartlepool' in region
    # The region's need breakdown is a table by need, not a single figure.
    assert "People by need region, North East, Apr–Jun 2026" in region and ">Debt<" in region
    areas = (site / "areas" / "index.html").read_text()
    assert 'href="#letter-H"' in areas and 'id="letter-H"' in areas and "Hartlepool" in areas


def test_figures_are_rounded_as_a_reader_needs_them() -> None:
    from collab.site.model import Unit

    people, pounds, share = Unit("count", noun="people"), Unit("pounds"), Unit("percent", fraction=True)
    assert [people.format(v) for v in (4, 99, 548, 999, 14_588, 31_009_299)] == [
        "4",
        "99",
        "550",
        "1,000",
        "14,600",
        "31,000,000",
    ]
    assert [pounds.format(v) for v in (31_009_299, 30_719_054, 1_002_215, 7575.21, 0)] == [
        "£31.0m",
        "£30.7m",
        "£1.00m",
        "£7,580",
        "£0",
    ]
    assert share.format(0.60784) == "61%"
    assert pounds.format(908_000, like=1_200_000) == "£0.91m"  # an interval end in its figure's terms
    assert people.format(125) == "130" and people.format(115) == "120"  # half up, not half to even
    assert people.interval(Estimate(2, 0, 4)) == "0 to 4" and people.interval(Estimate(548, 531, 566)) == "530 to 570"
    # A small count as published, its interval too: rounded to 10, 18 (9 to 26) read 20 (0 to 30).
    assert people.format(18) == "18" and people.interval(Estimate(18, 9, 26)) == "9 to 26"
    assert people.interval(Estimate(11_986, 11_960, 12_010)) == "11,900 to 12,100"  # never "12,000 to 12,000"
    assert people.format_change(-26) == "−26" and people.format_change(1234) == "+1,230"  # small changes exact


def test_a_headline_wider_than_the_setting_reads_not_enough_data(two_quarters: Path) -> None:
    from collab.site.model import Estimate, IndicatorView, Unit
    from collab.workspace import PublicationSettings

    home = build_site(two_quarters).read_text()
    assert 'data-headline-share="0.0154"' in home  # 1,300 (1,290 to 1,310): 20 / 1,300
    strict = build_site(two_quarters, PublicationSettings(max_interval_share=0.01)).read_text()
    total = strict.split('data-total="people-supported"')[1].split('<p class="lede">')[0]
    assert "Not enough data this quarter" in total and "1,300" not in total
    assert "spans more than 1% of the figure itself" in total
    assert "Main points" in strict and ": 1,300, up 300" not in strict
    # A bounded measure is judged against its range: a capped mean of £0 to £25,000 says nothing.
    mean = IndicatorView(
        "mean_debt", {"measure": "mean", "clamp": {"lower": 0, "upper": 25000}}, Unit("pounds"), [], "2026Q1",
        max_interval_share=0.5,
    )  # fmt: skip
    assert not mean.says_something(Estimate(12_500, 0, 25_000))
    assert mean.says_something(Estimate(7_575, 4_991, 10_159))
    # In a ranking, a figure that says nothing is never on top: it goes last and is drawn as an interval only.
    from collab.site.model import Bar, Panel, _quieten

    ranked = Panel("By region", [Bar("North East", Estimate(12_500, 0, 25_000)), Bar("North West", Estimate(7_575, 4_991, 10_159))], 2, True)  # fmt: skip
    quiet = _quieten(ranked, mean)
    assert [(b.label, b.says_little) for b in quiet.bars] == [("North West", False), ("North East", True)]
    drawn = charts.bar_chart("c", quiet, Unit("pounds"))
    assert drawn.count("<rect") == 1 + 1  # the hatch pattern's rect, one bar, none for North East
    assert "North East: not enough data (95% interval £0 to £25,000)" in drawn
    share = IndicatorView(
        "share", {"measure": "share"}, Unit("percent", fraction=True), [], "2026Q1", max_interval_share=0.5
    )
    assert not share.says_something(Estimate(0.0, 0.0, 1.0)) and share.says_something(Estimate(0.6, 0.5, 0.7))


def test_downloads_a_time_series_per_indicator_a_workbook_and_a_zip_per_release(two_quarters: Path) -> None:
    import zipfile

    import fastexcel

    site = build_site(two_quarters).parent
    with (site / "downloads" / "people_by_need_region-time-series.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["period"] for r in rows] == ["2026Q1"] * 6 + ["2026Q2"] * 6  # raw, unrounded, oldest first
    assert rows[-1]["value"] == "108"  # Wales, debt: 12 × 3 × 3
    workbook = fastexcel.read_excel(site / "downloads" / "2026Q2-v1.xlsx")
    cover = workbook.load_sheet("Cover", header_row=None).to_polars().to_series().to_list()
    assert any("Contains Royal Mail data" in str(line) for line in cover)  # the geography's attribution
    home = (site / "index.html").read_text()
    assert "Contains OS data © Crown copyright" in home and 'href="assets/HEXMAP-LICENSE.txt"' in home
    assert "MIT" in (site / "assets" / "HEXMAP-LICENSE.txt").read_text()
    assert workbook.sheet_names == ["Cover", "Contents", "Notes", "Table_1", "Table_2", "Table_3", "Table_4"]
    contents = workbook.load_sheet("Contents", header_row=2).to_polars()
    assert contents["Table title"].to_list()[0] == "People by need region"
    table = workbook.load_sheet("Table_3", header_row=4).to_polars()  # the median incomes, one row per authority
    assert table.height == 30 and table["Figure (£)"].to_list()[0] == 840.5  # each figure column in its unit
    # A median has no estimate: marked as a value not available, which a note explains.
    assert set(table["Estimate [note 7]"].to_list()) == {"[x]"}
    assert "Low reliability [note 3]" in table.columns and "95% interval, lower (£)" in table.columns
    notes = workbook.load_sheet("Notes", header_row=2).to_polars()
    assert notes["Note text"].to_list()[6].startswith("[x] marks a value not available")
    counts = workbook.load_sheet("Table_1", header_row=4).to_polars()
    assert "Figure (people)" in counts.columns
    with zipfile.ZipFile(site / "downloads" / "2026Q1-v1.zip") as archive:
        release = two_quarters / "releases" / "2026Q1-v1"
        assert sorted(archive.namelist()) == sorted(
            f"2026Q1-v1/{p.relative_to(release).as_posix()}" for p in release.rglob("*") if p.is_file()
        )
        assert archive.read("2026Q1-v1/release.json") == (release / "release.json").read_bytes()
        assert {info.external_attr >> 16 for info in archive.infolist()} == {0o644}  # owner-only once, unzipped
    page = (site / "indicators" / "people_by_need_region.html").read_text()
    assert page.count('href="../downloads/people_by_need_region-time-series.csv"') >= 3  # under each chart
    assert 'href="../downloads/2026Q2-v1.xlsx"' in page and 'href="../downloads/2026Q2-v1.zip"' in page


def test_how_we_protect_people_is_plain_and_the_statement_comes_from_the_release(two_quarters: Path) -> None:
    site = build_site(two_quarters).parent
    methodology = (site / "methodology.html").read_text()
    plain, annex = methodology.split('id="annex"', 1)[0], methodology.split('<h2 id="annex"', 1)[1]
    assert not re.search("[ρεσ]", plain) and "worst_case" not in plain and "e<sup>" not in methodology
    assert re.search("ρ", annex) and "σ" in annex
    assert all(f'id="{target}"' in methodology for target in re.findall(r'href="#([^"]+)"', methodology))
    for page in ("index.html", "releases.html", "indicators/people_by_need_region.html"):
        assert not re.search("[ρεσ]", (site / page).read_text()), page
    # An older release recorded no per-person figure: say so, never work it out.
    assert "The protection figure for one person was not recorded for this release" in plain
    statement = "Over every release so far, the figures reveal almost nothing about any one person."
    per_person = {
        "max_units": 4,
        "release_rho": 2.0,
        "period_rho": 2.0,
        "lifetime_rho": 4.0,
        "lifetime_epsilon": 9.87,
        "delta": 1e-7,
    }
    publish(
        two_quarters,
        "2026Q2-v2",
        [indicator("people_by_need_region", ["region", "need"], need_region_rows(20))],
        revision=2,
        per_person=per_person,
        statement=statement,
    )
    methodology = (build_site(two_quarters).parent / "methodology.html").read_text()
    plain, annex = methodology.split('id="annex"', 1)[0], methodology.split('<h2 id="annex"', 1)[1]
    assert statement in plain and "not recorded for this release" not in plain
    assert ">9.87<" in annex and ">4<" in annex  # the release's own numbers, as recorded

    # An earlier quarter revised after it: what a person has been exposed to over every release is what the
    # revision, made last, recorded; the latest quarter's release said less (the hostile trial of session 20).
    later = {**per_person, "lifetime_rho": 6.0, "lifetime_epsilon": 12.34}
    publish(
        two_quarters,
        "2026Q1-v2",
        [indicator("people_by_need_region", ["region", "need"], need_region_rows(20))],
        revision=2,
        created_at="2026-11-30T09:00:00+00:00",
        per_person=later,
        statement="Taking every release so far together, epsilon 12.34.",
        lifetime_rho_spent=6.0,
    )
    methodology = (build_site(two_quarters).parent / "methodology.html").read_text()
    plain, annex = methodology.split('id="annex"', 1)[0], methodology.split('<h2 id="annex"', 1)[1]
    assert "epsilon 12.34" in plain and statement not in plain and "release 2026Q1-v2, the last published" in plain
    assert ">12.34<" in annex and ">9.87<" not in annex and ">6 of 5<" in annex
    assert "How the figures in release 2026Q2-v2" in methodology  # the latest quarter's release is still the page's


def test_a_change_says_it_comes_from_the_measurements_not_the_rounded_figures(two_quarters: Path) -> None:
    """Found trying the site as a reader would: a headline change (+£1.75m) differed from the difference of the two
    figures beside it (£31.9m and £29.5m), with no word why. The change is worked out from the measurements as they came
    from the noise (an honest interval), the figures are rounded and made to add up: each page says so."""
    site = build_site(two_quarters).parent
    page = (site / "indicators" / "people_by_need_region.html").read_text()
    change = page.split('<p class="change')[1].split("</p>")[0]
    assert "before they were rounded and made to add up" in change
    methodology = (site / "methodology.html").read_text()
    assert "a change can differ from the difference between the two figures shown" in methodology
    assert "a total of many near-empty figures can be slightly high" not in methodology
