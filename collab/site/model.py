"""What the site shows, read from published release packages only (never the warehouse).

Everything here is post-processing of published DP figures: totals, changes and their intervals
are computed by ``privacy.combine`` from each cell's published unclipped estimate and its variance,
so they are unbiased, spend no budget and say when they are approximate.
The site is generic over the manifest: any number of indicators, any breakdowns, counts or
decimal measures, and an indicator with no rows in a quarter is shown as "no figures".
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

from collab.publication import APPROXIMATE_MEASURES, published_manifests
from privacy.combine import Combination, combine, difference

Z95 = NormalDist().inv_cdf(0.975)
# Codes that stand for "everyone" in a breakdown: a row with only these is an indicator's total.
TOTAL_CODES = {"K02000001", "all", "total", "_all", "uk"}
GEOGRAPHY_BREAKDOWNS = ("local_authority", "region", "nation", "area", "geography")
RANKED_BARS = 25
SMALL_MULTIPLES = 12


def _half_up(value: float) -> int:
    """Rounding as readers expect (25 -> 30), not Python's round-half-to-even (25 -> 20)."""
    return math.floor(value + 0.5)


def significant(value: float, digits: int = 3) -> float:
    """``value`` rounded to ``digits`` significant figures."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    return float(round(value, digits - 1 - math.floor(math.log10(abs(value)))))


def quarter_label(period: str) -> str:
    """``2026Q3`` -> ``Jul–Sep 2026``; any other period is shown as it is."""
    if len(period) == 6 and period[4] == "Q" and period[5] in "1234" and period[:4].isdigit():
        months = ("Jan–Mar", "Apr–Jun", "Jul–Sep", "Oct–Dec")[int(period[5]) - 1]
        return f"{months} {period[:4]}"
    return period


def place_name(name: str) -> str:
    """``North West`` -> ``the North West``, ``Wales`` -> ``Wales``: how a place reads inside a sentence."""
    return f"the {name}" if name.split(" ")[0] in {"North", "South", "East", "West"} else name


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

    def parts(self) -> tuple[float, float]:
        """(estimate, variance) to combine: the published unclipped estimate and its variance, or, for a release
        without them, the figure with the variance its interval implies. Whatever they are, what they combine into
        has an approximate interval (``combined``, ``change_between``)."""
        if self.unclipped is not None and self.variance is not None:
            return self.unclipped, self.variance
        return self.value, (self.half_width / Z95) ** 2


@dataclass(frozen=True)
class Unit:
    """How an indicator's figures read: a count of people, a percentage, pounds or a plain number."""

    kind: str  # count | percent | pounds | number
    noun: str = ""
    fraction: bool = False  # percentages stored as 0-1

    @property
    def additive(self) -> bool:
        return self.kind == "count"

    def interval(self, estimate: Estimate) -> str:
        """``low to high``, in the terms of the figure; rounded outwards, so that rounding never narrows
        an interval (a count of 11,986 (11,960 to 12,010) reads 11,900 to 12,100, not 12,000 to 12,000)."""
        low = self.format(estimate.low, estimate.value, outward=-1)
        return f"{low} to {self.format(estimate.high, estimate.value, outward=1)}"

    def format(self, value: float, like: float | None = None, outward: int = 0) -> str:
        """Rounded as a reader needs it (the downloads keep every digit): people exactly below 100, to the
        nearest 10 below 1,000 and to 3 significant figures above; money to 3 significant figures (£31.0m,
        £7,580); percentages to whole numbers. ``like``: the figure an interval end belongs to, so that both
        are in the same terms (£1.20m (£0.91m to £1.49m))."""
        if self.kind == "count":
            # Below 100 as published: rounded to 10, 18 (9 to 26) read 20 (0 to 30), beside 16 (7 to 24) flagged as
            # unreliable reading 20 (0 to 30) too. Below 1,000 to 10; above, to 3 significant figures of the figure
            # itself (an interval's ends at the same step as their figure, so 11,986 (11,960 to 12,010) reads
            # 12,000 (11,900 to 12,100)).
            reference = abs(like) if like is not None else abs(value)
            step = 1 if reference < 100 else 10 if reference < 1000 else 10 ** (math.floor(math.log10(reference)) - 2)
            if outward:
                steps = math.floor(value / step) if outward < 0 else math.ceil(value / step)
            else:
                steps = _half_up(value / step)
            return f"{steps * step:,}"
        if self.kind == "percent":
            return f"{value * 100 if self.fraction else value:.0f}%"
        if self.kind == "pounds":
            scale = abs(like) if like is not None and abs(like) >= 1e6 else abs(value)
            if scale >= 1e6:
                return f"£{value / 1e6:,.{max(0, 2 - math.floor(math.log10(scale / 1e6)))}f}m"
            rounded = significant(value)
            return f"£{rounded:,.0f}" if abs(rounded) >= 100 or rounded.is_integer() else f"£{rounded:,.3g}"
        rounded = significant(value)
        return f"{rounded:,.0f}" if rounded.is_integer() else f"{rounded:,.3g}"

    def format_tick(self, value: float) -> str:
        """A round value on an axis or in a map key, shown exactly."""
        if self.kind == "percent":
            return f"{value * 100 if self.fraction else value:.0f}%"
        if self.kind == "pounds":
            return f"£{value / 1e6:g}m" if abs(value) >= 1e6 else f"£{value:,.0f}"
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"

    def format_change(self, value: float, outward: int = 0) -> str:
        """A change: counts exactly below 100 (a rounded change could hide which side of zero it is on);
        ``outward`` -1 / +1 for the low / high end of its interval, which rounding never narrows."""
        sign = "+" if value > 0 else "−" if value < 0 else ""
        if self.kind == "count" and abs(value) < 100:
            text = f"{round(abs(value))}"
        else:
            text = self.format(value, outward=outward).lstrip("-")
        return f"{sign}{text}{' points' if self.kind == 'percent' else ''}"

    def change_interval(self, change: Change) -> str:
        return f"{self.format_change(change.low, outward=-1)} to {self.format_change(change.high, outward=1)}"

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
    approximate = str(meta.get("measure", "")) in APPROXIMATE_MEASURES
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
    # Approximate in any case: the interval takes the summed noise as normal (measured to cover 94.8%).
    total = combine([p[0] for p in parts], [p[1] for p in parts], approximate=True, floor=0.0)
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
    (now, now_variance), (before, before_variance) = current.parts(), previous.parts()
    # Approximate in any case: the interval takes the difference of the two noises as normal.
    change: Combination = difference(now, now_variance, before, before_variance, approximate=True)
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
    others = [b for b in release.meta["breakdowns"] if not (hierarchical and is_geography(b))]
    breakdowns = " and ".join(breakdown_label(b, plural=True) for b in others)
    note = ""
    if int(release.meta.get("max_cells_per_person", 1)) > 1:
        # An analyst's trial (session 31): a count of contacts was said to add up people.
        counted = "people once per cell" if unit.noun == "people" else f"{unit.noun}, each person's in up to that many"
        note = (
            f"A person can be counted in up to {release.meta['max_cells_per_person']} cells "
            f"(for example under several needs), so this adds up {counted}, not a head count."
        )
    label = f"United Kingdom, all {breakdowns} added together" if hierarchical else f"All {breakdowns} added together"
    if note:
        label += " (not a count of people)"
    return Headline(label, combined(estimates), note)


@dataclass(frozen=True)
class Bar:
    label: str
    estimate: Estimate
    says_little: bool = False  # its interval is too wide to quote: drawn as an interval only, ranked last


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


def is_geography(breakdown: str) -> bool:
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
    places = [i for i, b in enumerate(breakdowns) if is_geography(b)]
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
    facet = next((i for i, b in enumerate(breakdowns) if not is_geography(b)), 0)
    across = 1 - facet
    panels: dict[str, list[Bar]] = {}
    for cell in release.cells:
        if cell.estimate is not None and cell.is_place:
            panels.setdefault(cell.labels[facet], []).append(Bar(cell.labels[across], cell.estimate))
    ranked = is_geography(breakdowns[across])
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
    max_interval_share: float = math.inf  # the analyst's setting: see PublicationSettings.max_interval_share

    @property
    def approximate_intervals(self) -> bool:
        """Whether the indicator's published intervals are approximate (a mean's or a share's: the delta method)."""
        return str(self.meta.get("measure", "")) in APPROXIMATE_MEASURES

    @property
    def value_range(self) -> tuple[float, float] | None:
        """The range a figure can take when the measure bounds it (a share, a capped mean or median)."""
        if self.unit.kind == "percent":
            return (0.0, 1.0 if self.unit.fraction else 100.0)
        clamp = self.meta.get("clamp")
        measure = str(self.meta.get("measure", ""))
        if clamp and any(word in measure for word in ("mean", "median")):
            return (float(clamp["lower"]), float(clamp["upper"]))
        return None

    def interval_share(self, estimate: Estimate) -> float:
        """The interval's width as a share of the figure's range, or of the figure itself when unbounded."""
        width = estimate.high - estimate.low
        bounds = self.value_range
        if bounds is not None:
            return width / (bounds[1] - bounds[0])
        return width / estimate.value if estimate.value > 0 else math.inf

    def says_something(self, estimate: Estimate) -> bool:
        """Whether a figure is precise enough to quote as a headline (the setting ``max_interval_share``)."""
        return self.interval_share(estimate) <= self.max_interval_share

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
    by = next((i for i, b in enumerate(breakdowns) if not is_geography(b)), None)
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


def _quieten(panel: Panel, view: IndicatorView) -> Panel:
    """Mark the bars whose figure says too little to quote and, in a ranking, put them after the rest:
    the top of a ranking is never a figure that could be anything (picking the largest of noisy
    estimates favours the noisiest)."""
    bars = [Bar(b.label, b.estimate, not view.says_something(b.estimate)) for b in panel.bars]
    if panel.ranked:
        bars = sorted(bars, key=lambda b: b.says_little)
    return Panel(panel.title, bars, panel.total_bars, panel.ranked)


def build_view(
    indicator_id: str, releases: list[IndicatorRelease], current_period: str, max_interval_share: float
) -> IndicatorView:
    latest_meta = releases[-1].meta
    values = [c.estimate.value for r in releases for c in r.cells if c.estimate is not None]
    unit = unit_of(latest_meta, values)
    view = IndicatorView(
        indicator_id, latest_meta, unit, releases, current_period, max_interval_share=max_interval_share
    )
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
        view.rankings = [_quieten(panel, view) for panel in rankings(current, unit)]
        view.facet_title, view.facets = facets(current)
        view.facets = [_quieten(panel, view) for panel in view.facets]
    if view.has_figures:
        view.group_title, view.group_trends = _group_trends([r for r in releases if r.has_figures], unit)
    return view


@dataclass(frozen=True)
class PeopleTotal:
    """The one UK count of people supported in the quarter: each person once, whatever their needs."""

    view: IndicatorView
    estimate: Estimate
    change: Change | None
    most_cells_in_breakdowns: int  # the most cells a person can count in on other indicators (e.g. needs)


def people_total(views: list[IndicatorView]) -> PeopleTotal | None:
    """The de-duplicated UK total: an indicator of people (everyone) counting each person in one cell,
    whose UK figure is a published total row (not a sum of cells)."""
    candidates = [
        view
        for view in views
        if view.unit.kind == "count"
        and view.unit.noun == "people"
        and view.meta.get("population", "everyone") == "everyone"
        and int(view.meta.get("max_cells_per_person", 1)) == 1
        and view.headline is not None
        and view.headline.label == "United Kingdom"
    ]
    if not candidates:
        return None
    view = max(candidates, key=lambda v: int(v.meta.get("cells", 0)))
    assert view.headline is not None
    most_cells = max(
        (int(v.meta.get("max_cells_per_person", 1)) for v in views if v.unit.kind == "count" and v.has_figures),
        default=1,
    )
    return PeopleTotal(view, view.headline.estimate, view.change, most_cells)


@dataclass(frozen=True)
class Movement:
    """A change between the last two quarters for one need or one place, with its interval."""

    subject: str  # "need" | "place"
    label: str
    current: Estimate
    change: Change

    def sentence(self, unit: Unit) -> str:
        """One plain sentence, like a bulletin's main point; only ever written for a clear change."""
        more = self.change.difference > 0
        figure = unit.format(self.current.value)
        change = f"{'up' if more else 'down'} {unit.format_change(abs(self.change.difference)).lstrip('+')}"
        interval = unit.change_interval(self.change)
        when = f"on {quarter_label(self.change.previous_period)} (approximate 95% interval of the change {interval})"
        if self.subject == "need":
            return f"{'More' if more else 'Fewer'} people came for help with {self.label.lower()}: {figure}, {change} {when}."
        return f"{'More' if more else 'Fewer'} people were supported in {place_name(self.label)}: {figure}, {change} {when}."

    @property
    def strength(self) -> float:
        """How far the change is from zero in units of its own half-width (above 1 means clear)."""
        half = (self.change.high - self.change.low) / 2
        return abs(self.change.difference) / half if half else math.inf

    @property
    def p_value(self) -> float:
        """The chance of a change at least this far from zero from the privacy noise alone (two-sided, the
        interval's normal approximation)."""
        return math.erfc(self.strength * Z95 / math.sqrt(2))


def _need_movements(views: list[IndicatorView]) -> list[Movement]:
    """Each need's UK count of people, current against previous quarter, from the people indicator that
    gives that need the narrowest interval (summing its other breakdown)."""
    best: dict[str, Movement] = {}
    for view in views:
        if view.unit.noun != "people" or view.current is None or len(view.releases) < 2:
            continue
        breakdowns = view.meta["breakdowns"]
        if "need" not in breakdowns:
            continue
        by = breakdowns.index("need")
        previous_release = view.releases[-2]
        previous = dict(_need_totals(previous_release, by))
        for label, estimate in _need_totals(view.current, by):
            if label not in previous:
                continue
            movement = Movement(
                "need", label, estimate, change_between(estimate, previous[label], previous_release.period)
            )
            if (
                label not in best
                or movement.change.high - movement.change.low < best[label].change.high - best[label].change.low
            ):
                best[label] = movement
    return list(best.values())


def _need_totals(release: IndicatorRelease, by: int) -> list[tuple[str, Estimate]]:
    if len(release.meta["breakdowns"]) == 1:
        return [(label, estimates[0]) for label, estimates in _grouped(release, by)]
    return [(label, combined(estimates)) for label, estimates in _grouped(release, by)]


def _place_movements(total: PeopleTotal) -> list[Movement]:
    """Each nation's and region's count of people, current against previous quarter."""
    view = total.view
    if view.current is None or len(view.releases) < 2:
        return []
    previous_release = view.releases[-2]
    previous = {c.keys: c.estimate for c in previous_release.cells if c.level in {"nation", "region"}}
    movements: list[Movement] = []
    for cell in view.current.cells:
        earlier = previous.get(cell.keys)
        # A nation that is also its own region (Scotland, Wales, Northern Ireland) is reported once.
        if any(m.label == cell.labels[0] for m in movements):
            continue
        if cell.level in {"nation", "region"} and cell.estimate is not None and earlier is not None:
            change = change_between(cell.estimate, earlier, previous_release.period)
            movements.append(Movement("place", cell.labels[0], cell.estimate, change))
    return movements


# The chance, at most, that any of a quarter's main points is a change made by the noise alone.
MAIN_POINTS_ERROR = 0.05


def movements(views: list[IndicatorView], total: PeopleTotal | None) -> list[Movement]:
    """Every change on the previous quarter by need and by place: what the main points are chosen from."""
    return _need_movements(views) + (_place_movements(total) if total is not None else [])


def main_points(compared: list[Movement], limit: int = 4) -> list[Movement]:
    """The clearest of the ``compared`` changes, strongest first, at most ``limit``: those that stay clear once all
    of them are allowed for (Holm's method, so that the chance that any one reported is noise alone is at most
    ``MAIN_POINTS_ERROR``). About 22 changes are compared a quarter: taken one by one at 95%, a quarter in which
    nothing changed would report at least one change two times in three, 1 - 0.95^22 (an analyst's trial)."""
    reported: list[Movement] = []
    for rank, movement in enumerate(sorted(compared, key=lambda m: -m.strength)):
        if movement.p_value > MAIN_POINTS_ERROR / (len(compared) - rank):
            break
        reported.append(movement)
    return reported[:limit]


@dataclass
class SiteModel:
    manifests: list[dict[str, Any]]  # every published release, oldest first
    latest_by_period: dict[str, dict[str, Any]]
    current: dict[str, Any] | None
    indicators: list[IndicatorView]
    people_total: PeopleTotal | None = None
    main_points: list[Movement] = field(default_factory=list)
    changes_compared: int = 0  # by need and by place, which the main points are chosen from

    @property
    def periods(self) -> list[str]:
        return sorted(self.latest_by_period)

    @property
    def previous_period(self) -> str | None:
        return self.periods[-2] if len(self.periods) > 1 else None

    @property
    def made_last(self) -> dict[str, Any] | None:
        """The published release made last, whatever its quarter: its record of what a person has been exposed to
        over every release so far is the whole of it. The latest quarter's release says less once an earlier
        quarter has been revised after it (a hostile trial found the site claiming epsilon 8.39 against 16.00)."""
        made = [(m.get("created_at", ""), m["period"], m["revision"], index) for index, m in enumerate(self.manifests)]
        return self.manifests[max(made)[-1]] if made else None


def load_site_model(publish_root: Path, max_interval_share: float) -> SiteModel:
    """Every intact published release (a tampered one raises ``ReleaseIntegrityError``); headlines
    quote only figures whose interval is at most ``max_interval_share`` of their range."""
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
    views = [build_view(i, series[i], periods[-1], max_interval_share) for i in order] if current else []
    total = people_total(views)
    compared = movements(views, total)
    return SiteModel(manifests, latest_by_period, current, views, total, main_points(compared), len(compared))
