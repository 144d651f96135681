"""What the site shows, read from published release packages only (never the warehouse).

Everything here is post-processing of published DP figures: totals, changes and their intervals
are computed by ``privacy.combine`` from each cell's published unclipped estimate and its variance,
so they are unbiased, spend no budget and say when they are approximate.
The site is generic over the manifest: any number of indicators, any breakdowns, counts or
decimal measures, and an indicator with no rows in a quarter is shown as "no figures".
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

from collab.publication import published_manifests
from privacy.combine import Combination, combine, difference

Z95 = NormalDist().inv_cdf(0.975)
# Codes that stand for "everyone" in a breakdown: a row with only these is an indicator's total.
TOTAL_CODES = {"K02000001", "all", "total", "_all", "uk"}
GEOGRAPHY_BREAKDOWNS = ("local_authority", "region", "nation", "area", "geography")
RANKED_BARS = 25
SMALL_MULTIPLES = 12


def quarter_label(period: str) -> str:
    """``2026Q3`` -> ``Jul–Sep 2026``; any other period is shown as it is."""
    if len(period) == 6 and period[4] == "Q" and period[5] in "1234" and period[:4].isdigit():
        months = ("Jan–Mar", "Apr–Jun", "Jul–Sep", "Oct–Dec")[int(period[5]) - 1]
        return f"{months} {period[:4]}"
    return period


def breakdown_label(breakdown: str, plural: bool = False) -> str:
    label = breakdown.replace("_", " ")
    return label + "s" if plural and not label.endswith("s") else label


@dataclass(frozen=True)
class Estimate:
    """A published figure and its 95% interval, with the unclipped estimate and variance behind it
    (``unclipped``, ``variance``) when the release publishes them; ``approximate`` when the interval
    rests on an approximate variance (the delta method)."""

    value: float
    low: float
    high: float
    low_reliability: bool = False
    unclipped: float | None = None
    variance: float | None = None
    approximate: bool = False

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def parts(self) -> tuple[float, float, bool]:
        """(estimate, variance, approximate) to combine: the published unclipped estimate and its
        variance, or, for a release without them, the figure with the variance its interval implies."""
        if self.unclipped is not None and self.variance is not None:
            return self.unclipped, self.variance, self.approximate
        return self.value, (self.half_width / Z95) ** 2, True


@dataclass(frozen=True)
class Unit:
    """How an indicator's figures read: a count of people, a percentage, pounds or a plain number."""

    kind: str  # count | percent | pounds | number
    noun: str = ""
    fraction: bool = False  # percentages stored as 0-1

    @property
    def additive(self) -> bool:
        return self.kind == "count"

    def format(self, value: float) -> str:
        if self.kind == "count":
            return f"{round(value):,}"
        if self.kind == "percent":
            return f"{value * 100 if self.fraction else value:.1f}%"
        if self.kind == "pounds":
            return f"£{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"£{value:,.2f}"
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"

    def format_change(self, value: float) -> str:
        sign = "+" if value > 0 else "−" if value < 0 else ""
        text = self.format(abs(value))
        return f"{sign}{text}{' points' if self.kind == 'percent' else ''}"

    def describe(self) -> str:
        return {
            "count": f"a count of {self.noun or 'people'}",
            "percent": "a percentage",
            "pounds": "an amount in pounds",
            "number": "a number",
        }[self.kind]


def unit_of(indicator: dict[str, Any], values: list[float]) -> Unit:
    """The unit from the manifest's ``unit`` when present, else from the measure's name."""
    declared = str(indicator.get("unit", "")).lower()
    measure = str(indicator.get("measure", "")).lower()
    fraction = bool(values) and all(0 <= v <= 1 for v in values)
    if declared in {"gbp", "£", "pounds"} or "gbp" in measure or "amount" in measure:
        return Unit("pounds")
    if declared in {"percent", "%"}:
        return Unit("percent")
    if declared in {"share", "proportion", "fraction"} or any(w in measure for w in ("share", "proportion", "rate")):
        return Unit("percent", fraction=fraction)
    if "count" in measure or declared in {"people", "persons", "households", "contacts", "count"}:
        noun = declared if declared not in {"", "count"} else measure.removesuffix("_count").replace("_", " ")
        return Unit("count", noun=noun or "people")
    return Unit("number")


@dataclass(frozen=True)
class Cell:
    keys: tuple[str, ...]
    labels: tuple[str, ...]
    estimate: Estimate | None  # None: the figure was withheld
    level: str = ""  # the geography level when the package carries one

    @property
    def is_total(self) -> bool:
        return bool(self.keys) and all(k in TOTAL_CODES for k in self.keys)

    @property
    def is_place(self) -> bool:
        """A cell to rank against other places: not a total, and not the UK beside its own nations."""
        return not self.is_total and self.level != "uk"


@dataclass(frozen=True)
class IndicatorRelease:
    """One indicator in one published release."""

    meta: dict[str, Any]
    release_id: str
    period: str
    cells: list[Cell]

    @property
    def has_figures(self) -> bool:
        return any(c.estimate is not None for c in self.cells)


def _number(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None


def _level_column(columns: list[str]) -> str | None:
    return next((c for c in columns if c == "level" or c.endswith("_level")), None)


def read_indicator(release_dir: Path, manifest: dict[str, Any], meta: dict[str, Any]) -> IndicatorRelease:
    with (release_dir / meta["path"]).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        columns = list(reader.fieldnames or [])
    level = _level_column(columns)
    # Means and shares: the delta method's variance is approximate.
    approximate = str(meta.get("measure", "")) in ("mean", "share")
    cells = []
    for row in rows:
        value, low, high = (_number(row.get(c)) for c in ("value", "ci_low", "ci_high"))
        estimate = (
            Estimate(
                value,
                low if low is not None else value,
                high if high is not None else value,
                row.get("low_reliability") == "true",
                _number(row.get("estimate")),
                _number(row.get("estimate_variance")),
                approximate,
            )
            if value is not None
            else None
        )
        cells.append(
            Cell(
                keys=tuple(row.get(f"{b}_code", "") for b in meta["breakdowns"]),
                labels=tuple(row.get(f"{b}_name") or row.get(f"{b}_code", "") for b in meta["breakdowns"]),
                estimate=estimate,
                level=row.get(level, "") if level else "",
            )
        )
    return IndicatorRelease(meta, manifest["release_id"], manifest["period"], cells)


def combined(estimates: list[Estimate]) -> Estimate:
    """The total of independent published counts, by ``privacy.combine`` from their unclipped estimates
    and variances: unbiased however many cells are empty, with the exact variance of the summed noise.
    The shown total is never below zero; its interval is clipped at zero, never the sum."""
    parts = [e.parts() for e in estimates]
    total = combine([p[0] for p in parts], [p[1] for p in parts], approximate=any(p[2] for p in parts), floor=0.0)
    shown = max(0.0, total.value)
    return Estimate(
        shown,
        min(total.low, shown),
        total.high,
        low_reliability=total.high - total.low > shown,
        unclipped=total.value,
        variance=total.variance,
        approximate=total.approximate,
    )


@dataclass(frozen=True)
class Change:
    """The change between two quarters' figures, with the 95% interval of the difference."""

    previous_period: str
    difference: float
    low: float
    high: float
    relative: float | None
    approximate: bool = False

    @property
    def clear(self) -> bool:
        return self.low > 0 or self.high < 0

    @property
    def direction(self) -> str:
        if not self.clear:
            return "no clear change"
        return "a clear rise" if self.difference > 0 else "a clear fall"


def change_between(current: Estimate, previous: Estimate, previous_period: str) -> Change:
    """The change between two releases' estimates, by ``privacy.combine`` (independent noise: the
    variances add), from their unclipped estimates where published."""
    (now, now_variance, now_approximate), (before, before_variance, before_approximate) = (
        current.parts(),
        previous.parts(),
    )
    change: Combination = difference(
        now, now_variance, before, before_variance, approximate=now_approximate or before_approximate
    )
    relative = change.value / before if before > 0 else None
    return Change(previous_period, change.value, change.low, change.high, relative, change.approximate)


@dataclass(frozen=True)
class Headline:
    label: str
    estimate: Estimate
    note: str = ""


def headline(release: IndicatorRelease, unit: Unit) -> Headline | None:
    """The indicator's one figure: its total row if it has one, else the sum of an additive measure."""
    if not release.has_figures:
        return None
    total = next((c for c in release.cells if c.is_total and c.estimate is not None), None)
    if total is not None and total.estimate is not None:
        return Headline(
            "United Kingdom" if total.level == "uk" or "K02000001" in total.keys else "Total", total.estimate
        )
    if not unit.additive:
        return None
    # With a geography hierarchy, the UK level holds the figures to add; without one, every cell.
    hierarchical = any(c.level for c in release.cells)
    estimates = [c.estimate for c in release.cells if c.estimate is not None and (c.level == "uk" or not hierarchical)]
    if not estimates:
        return None
    others = [b for b in release.meta["breakdowns"] if not (hierarchical and _is_geography(b))]
    breakdowns = " and ".join(breakdown_label(b, plural=True) for b in others)
    note = ""
    if int(release.meta.get("max_cells_per_person", 1)) > 1:
        note = (
            f"A person can be counted in up to {release.meta['max_cells_per_person']} cells "
            f"(for example under several needs), so this adds up people once per cell, not a head count."
        )
    label = f"United Kingdom, all {breakdowns} added together" if hierarchical else f"All {breakdowns} added together"
    return Headline(label, combined(estimates), note)


@dataclass(frozen=True)
class Bar:
    label: str
    estimate: Estimate


@dataclass(frozen=True)
class Panel:
    """One chart's worth of bars (a ranking, or one facet of a small-multiple)."""

    title: str
    bars: list[Bar]
    total_bars: int
    ranked: bool


@dataclass(frozen=True)
class Series:
    title: str
    points: list[tuple[str, Estimate]]


def _is_geography(breakdown: str) -> bool:
    return breakdown in GEOGRAPHY_BREAKDOWNS or "geograph" in breakdown or breakdown.endswith("_area")


def _panel(title: str, bars: list[Bar], *, ranked: bool, limit: int) -> Panel:
    ordered = sorted(bars, key=lambda b: -b.estimate.value) if ranked else bars
    return Panel(title, ordered[:limit], len(bars), ranked)


def _grouped(release: IndicatorRelease, by: int) -> list[tuple[str, list[Estimate]]]:
    """Each key of breakdown ``by`` with the estimates of its cells, in publication order."""
    groups: dict[str, list[Estimate]] = {}
    for cell in release.cells:
        if cell.estimate is not None and cell.is_place:
            groups.setdefault(cell.labels[by], []).append(cell.estimate)
    return list(groups.items())


def rankings(release: IndicatorRelease, unit: Unit) -> list[Panel]:
    """Ranked charts by place: every geography level the indicator has, latest quarter."""
    breakdowns = release.meta["breakdowns"]
    places = [i for i, b in enumerate(breakdowns) if _is_geography(b)]
    if not places or not release.has_figures:
        return []
    where = places[0]
    name = breakdown_label(breakdowns[where])
    if len(breakdowns) == 1:
        levels: dict[str, list[Bar]] = {}
        for cell in release.cells:
            if cell.estimate is not None and cell.is_place:
                levels.setdefault(cell.level, []).append(Bar(cell.labels[0], cell.estimate))
        return [
            _panel(f"By {breakdown_label(level) if level else name}", bars, ranked=True, limit=RANKED_BARS)
            for level, bars in levels.items()
        ]
    if not unit.additive:
        return []
    bars = [Bar(label, combined(estimates)) for label, estimates in _grouped(release, where)]
    others = " and ".join(breakdown_label(b, plural=True) for i, b in enumerate(breakdowns) if i != where)
    return [_panel(f"By {name}, all {others} added together", bars, ranked=True, limit=RANKED_BARS)]


def facets(release: IndicatorRelease) -> tuple[str, list[Panel]]:
    """Small multiples for a two-way breakdown: one chart per key of the non-geographic breakdown."""
    breakdowns = release.meta["breakdowns"]
    if len(breakdowns) != 2 or not release.has_figures:
        return "", []
    facet = next((i for i, b in enumerate(breakdowns) if not _is_geography(b)), 0)
    across = 1 - facet
    panels: dict[str, list[Bar]] = {}
    for cell in release.cells:
        if cell.estimate is not None and cell.is_place:
            panels.setdefault(cell.labels[facet], []).append(Bar(cell.labels[across], cell.estimate))
    ranked = _is_geography(breakdowns[across])
    return (
        f"By {breakdown_label(breakdowns[facet])}, then {breakdown_label(breakdowns[across])}",
        [
            _panel(title, bars, ranked=ranked, limit=SMALL_MULTIPLES if ranked else len(bars))
            for title, bars in panels.items()
        ],
    )


@dataclass
class IndicatorView:
    """Everything the site shows about one indicator, over every published quarter."""

    id: str
    meta: dict[str, Any]
    unit: Unit
    releases: list[IndicatorRelease]  # one per period, oldest first (latest revision)
    current_period: str
    headline: Headline | None = None
    change: Change | None = None
    trend: Series | None = None
    group_title: str = ""
    group_trends: list[Series] = field(default_factory=list)
    rankings: list[Panel] = field(default_factory=list)
    facet_title: str = ""
    facets: list[Panel] = field(default_factory=list)

    @property
    def current(self) -> IndicatorRelease | None:
        latest = self.releases[-1] if self.releases else None
        return latest if latest is not None and latest.period == self.current_period else None

    @property
    def has_figures(self) -> bool:
        return self.current is not None and self.current.has_figures

    @property
    def title(self) -> str:
        return str(self.meta.get("title", self.id))


def _group_trends(releases: list[IndicatorRelease], unit: Unit) -> tuple[str, list[Series]]:
    """Each key of a non-geographic breakdown, quarter by quarter: the figure itself for a one-way
    breakdown, the total over the other breakdowns for a count."""
    breakdowns = releases[-1].meta["breakdowns"]
    by = next((i for i, b in enumerate(breakdowns) if not _is_geography(b)), None)
    if by is None or (len(breakdowns) > 1 and not unit.additive):
        return "", []
    series: dict[str, list[tuple[str, Estimate]]] = {}
    for release in releases:
        for label, estimates in _grouped(release, by):
            point = estimates[0] if len(breakdowns) == 1 else combined(estimates)
            series.setdefault(label, []).append((release.period, point))
    if len(series) > SMALL_MULTIPLES:
        return "", []
    return f"Trend by {breakdown_label(breakdowns[by])}", [Series(label, points) for label, points in series.items()]


def build_view(indicator_id: str, releases: list[IndicatorRelease], current_period: str) -> IndicatorView:
    latest_meta = releases[-1].meta
    values = [c.estimate.value for r in releases for c in r.cells if c.estimate is not None]
    unit = unit_of(latest_meta, values)
    view = IndicatorView(indicator_id, latest_meta, unit, releases, current_period)
    headlines = [(r.period, headline(r, unit)) for r in releases]
    points = [(period, h.estimate) for period, h in headlines if h is not None]
    if points:
        view.trend = Series(headlines[-1][1].label if headlines[-1][1] else "", points)
    current = view.current
    if current is not None and current.has_figures:
        view.headline = headline(current, unit)
        earlier = [(period, h) for period, h in headlines[:-1] if h is not None]
        if view.headline is not None and earlier:
            previous_period, previous = earlier[-1]
            view.change = change_between(view.headline.estimate, previous.estimate, previous_period)
        view.rankings = rankings(current, unit)
        view.facet_title, view.facets = facets(current)
    if view.has_figures:
        view.group_title, view.group_trends = _group_trends([r for r in releases if r.has_figures], unit)
    return view


@dataclass
class SiteModel:
    manifests: list[dict[str, Any]]  # every published release, oldest first
    latest_by_period: dict[str, dict[str, Any]]
    current: dict[str, Any] | None
    indicators: list[IndicatorView]

    @property
    def periods(self) -> list[str]:
        return sorted(self.latest_by_period)


def load_site_model(publish_root: Path) -> SiteModel:
    """Every intact published release (a tampered one raises ``ReleaseIntegrityError``)."""
    manifests = published_manifests(publish_root)
    latest_by_period: dict[str, dict[str, Any]] = {}
    for manifest in manifests:
        latest_by_period[manifest["period"]] = manifest  # later revisions replace earlier ones
    periods = sorted(latest_by_period)
    current = latest_by_period[periods[-1]] if periods else None
    order: list[str] = []
    series: dict[str, list[IndicatorRelease]] = {}
    for manifest in reversed([latest_by_period[p] for p in periods]):
        for meta in manifest["indicators"]:
            if meta["id"] not in order:
                order.append(meta["id"])
    for period in periods:
        manifest = latest_by_period[period]
        release_dir = publish_root / "releases" / manifest["release_id"]
        for meta in manifest["indicators"]:
            series.setdefault(meta["id"], []).append(read_indicator(release_dir, manifest, meta))
    views = [build_view(i, series[i], periods[-1]) for i in order] if current else []
    return SiteModel(manifests, latest_by_period, current, views)
