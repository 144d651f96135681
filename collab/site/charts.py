"""Inline SVG charts, drawn in Python so they need no JavaScript, no network and no fonts.

Every chart is an ``<svg role="img">`` with a title and a description that say what it shows in
words, and every chart sits beside the table behind it. Colours come from the Okabe–Ito palette
(safe for colour-blind readers); a low-reliability figure is also drawn differently (hatched bar,
hollow point), never by colour alone. All text is escaped.
"""

from __future__ import annotations

import math
from itertools import count

from markupsafe import Markup, escape

from collab.site.model import Bar, Estimate, Panel, Series, Unit

BLUE = "#0072B2"  # 5.1:1 on white
SKY = "#56B4E9"
INK = "#1b1b1b"
MUTED = "#4d4d4d"  # 8.5:1 on white
GRID = "#d9d9d9"
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Arial,sans-serif"


def nice_ticks(low: float, high: float, unit: Unit, target: int = 5) -> list[float]:
    """Round tick values covering ``[low, high]`` (whole numbers for counts)."""
    span = max(high - low, 1e-9)
    raw = span / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if unit.kind == "count":
        step = max(1.0, round(step))
    start = math.floor(low / step) * step
    stop = math.ceil(high / step) * step
    return [start + i * step for i in range(round((stop - start) / step) + 1)]


def interval_text(estimate: Estimate, unit: Unit) -> str:
    return unit.interval(estimate)


def describe(label: str, estimate: Estimate, unit: Unit, says_little: bool = False) -> str:
    if says_little:
        return f"{label}: not enough data (95% interval {interval_text(estimate, unit)})"
    reliability = ", low reliability" if estimate.low_reliability else ""
    return f"{label}: {unit.format(estimate.value)} (95% interval {interval_text(estimate, unit)}{reliability})"


def _svg(chart_id: str, width: int, height: int, title: str, description: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" xmlns="http://www.w3.org/2000/svg" style="{FONT}">'
        f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(description)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def _hatch(chart_id: str) -> str:
    return (
        f'<defs><pattern id="{chart_id}-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="{BLUE}" stroke-width="3"/></pattern></defs>'
    )


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def bar_chart(chart_id: str, panel: Panel, unit: Unit, *, compact: bool = False) -> Markup:
    """Horizontal bars with 95% interval whiskers; hatched bars are low-reliability figures."""
    bars: list[Bar] = panel.bars
    label_chars = 22 if compact else 36
    char_width = 7.8 if compact else 7.4  # generous for 13px system sans
    label_width = round(min(char_width * label_chars, max(90, char_width * max(len(b.label) for b in bars))))
    value_width = 0 if compact else 170
    width = 360 if compact else 900
    row = 22 if compact else 26
    top, plot_left = 24, label_width + 8
    plot_width = width - plot_left - value_width - 12
    height = top + row * len(bars) + 8
    ticks = nice_ticks(min(0.0, *(b.estimate.low for b in bars)), max(1e-9, *(b.estimate.high for b in bars)), unit, 4)
    lo, hi = ticks[0], ticks[-1]

    def x(value: float) -> float:
        return plot_left + (value - lo) / (hi - lo) * plot_width

    body = [_hatch(chart_id)]
    for tick in ticks:
        body.append(
            f'<line x1="{x(tick):.1f}" y1="{top - 4}" x2="{x(tick):.1f}" y2="{height - 8}" stroke="{GRID}"/>'
            f'<text x="{x(tick):.1f}" y="{top - 8}" font-size="{13 if compact else 12}" fill="{MUTED}" '
            f'text-anchor="middle">{escape(unit.format_tick(tick))}</text>'
        )
    for i, bar in enumerate(bars):
        e = bar.estimate
        y = top + i * row
        bar_height = row - 8
        fill = f"url(#{chart_id}-hatch)" if e.low_reliability else BLUE
        mid = y + bar_height / 2 + 4
        rect = (
            ""
            if bar.says_little
            else f'<rect x="{x(min(0.0, e.value)):.1f}" y="{y + 4}" width="{abs(x(e.value) - x(0.0)):.1f}" '
            f'height="{bar_height}" fill="{fill}" stroke="{BLUE}" stroke-width="1"/>'
        )
        body.append(
            f"<g><title>{escape(describe(bar.label, e, unit, bar.says_little))}</title>"
            f'<text x="{label_width}" y="{mid + 4:.1f}" font-size="13" fill="{INK}" '
            f'text-anchor="end">{escape(_shorten(bar.label, label_chars))}</text>{rect}'
            f'<line x1="{x(e.low):.1f}" y1="{mid:.1f}" x2="{x(e.high):.1f}" y2="{mid:.1f}" stroke="{INK}" stroke-width="1.5"/>'
            f'<line x1="{x(e.low):.1f}" y1="{mid - 5:.1f}" x2="{x(e.low):.1f}" y2="{mid + 5:.1f}" stroke="{INK}" stroke-width="1.5"/>'
            f'<line x1="{x(e.high):.1f}" y1="{mid - 5:.1f}" x2="{x(e.high):.1f}" y2="{mid + 5:.1f}" stroke="{INK}" stroke-width="1.5"/>'
        )
        if value_width:
            flag = " *" if e.low_reliability else ""
            figure = "not enough data" if bar.says_little else f"{unit.format(e.value)}{flag}"
            body.append(
                f'<text x="{width - 4}" y="{mid + 4:.1f}" font-size="12" fill="{INK}" text-anchor="end">'
                f"{escape(figure)} "
                f'<tspan fill="{MUTED}">({escape(interval_text(e, unit))})</tspan></text>'
            )
        body.append("</g>")
    return _svg(chart_id, width, height, panel.title, _bar_description(panel, unit), body)


def _bar_description(panel: Panel, unit: Unit) -> str:
    bars = panel.bars
    shown = f"the {len(bars)} highest of {panel.total_bars}" if panel.total_bars > len(bars) else f"{len(bars)} bars"
    top_bars = "; ".join(describe(b.label, b.estimate, unit, b.says_little) for b in bars[:3])
    # The first three only, saying that more follow: a description is heard whole, and a long one hides the point.
    rest = f"; and {len(bars) - 3} more" if len(bars) > 3 else ""
    return (
        f"Bar chart of {shown}{', ranked from highest' if panel.ranked else ''}, each with its 95% interval. "
        f"{top_bars}{rest}."
    )


NARROW_WIDTH = 340  # drawn for a phone's 350 px column: text keeps its size instead of shrinking


def narrow_bar_chart(chart_id: str, panel: Panel, unit: Unit) -> Markup:
    """The bar chart redrawn for a phone: each place's name and figure on a line of their own, the bar
    and its interval below, the full width of the screen."""
    bars: list[Bar] = panel.bars
    width, top, row = NARROW_WIDTH, 22, 44
    left, right = 4, 10
    height = top + row * len(bars) + 4
    ticks = nice_ticks(min(0.0, *(b.estimate.low for b in bars)), max(1e-9, *(b.estimate.high for b in bars)), unit, 3)
    lo, hi = ticks[0], ticks[-1]

    def x(value: float) -> float:
        return left + (value - lo) / (hi - lo) * (width - left - right)

    body = [_hatch(chart_id)]
    for i, tick in enumerate(ticks):
        anchor = "start" if i == 0 else "end" if i == len(ticks) - 1 else "middle"
        body.append(
            f'<line x1="{x(tick):.1f}" y1="{top - 2}" x2="{x(tick):.1f}" y2="{height - 4}" stroke="{GRID}"/>'
            f'<text x="{x(tick):.1f}" y="{top - 8}" font-size="12" fill="{MUTED}" text-anchor="{anchor}">'
            f"{escape(unit.format_tick(tick))}</text>"
        )
    for i, bar in enumerate(bars):
        e = bar.estimate
        y = top + i * row
        flag = " *" if e.low_reliability else ""
        fill = f"url(#{chart_id}-hatch)" if e.low_reliability else BLUE
        mid = y + 31
        figure = "not enough data" if bar.says_little else f"{unit.format(e.value)}{flag}"
        rect = (
            ""
            if bar.says_little
            else f'<rect x="{x(min(0.0, e.value)):.1f}" y="{y + 23}" width="{abs(x(e.value) - x(0.0)):.1f}" '
            f'height="16" fill="{fill}" stroke="{BLUE}" stroke-width="1"/>'
        )
        body.append(
            f"<g><title>{escape(describe(bar.label, e, unit, bar.says_little))}</title>"
            f'<text x="{left}" y="{y + 16}" font-size="13" fill="{INK}">{escape(_shorten(bar.label, 26))}</text>'
            f'<text x="{width - 2}" y="{y + 16}" font-size="13" fill="{INK}" text-anchor="end" font-weight="600">'
            f"{escape(figure)}</text>{rect}"
            f'<line x1="{x(e.low):.1f}" y1="{mid:.1f}" x2="{x(e.high):.1f}" y2="{mid:.1f}" stroke="{INK}" stroke-width="1.5"/>'
            f'<line x1="{x(e.low):.1f}" y1="{mid - 6:.1f}" x2="{x(e.low):.1f}" y2="{mid + 6:.1f}" stroke="{INK}" stroke-width="1.5"/>'
            f'<line x1="{x(e.high):.1f}" y1="{mid - 6:.1f}" x2="{x(e.high):.1f}" y2="{mid + 6:.1f}" stroke="{INK}" stroke-width="1.5"/>'
            "</g>"
        )
    return _svg(chart_id, width, height, panel.title, _bar_description(panel, unit), body)


def trend_chart(chart_id: str, series: Series, unit: Unit, *, compact: bool = False, narrow: bool = False) -> Markup:
    """A line through each quarter's figure, inside a shaded 95% interval band; hollow points are low reliability.

    ``compact`` is a small multiple (axis reduced to its top value); ``narrow`` is the full chart
    redrawn for a phone, with its text at the same size as on a desktop.
    """
    points = series.points
    if compact:
        width, height, (left, right, top, bottom) = 300, 130, (8, 10, 18, 24)
    elif narrow:
        width, height, (left, right, top, bottom) = NARROW_WIDTH, 230, (58, 26, 14, 30)
    else:
        width, height, (left, right, top, bottom) = 900, 300, (72, 24, 16, 40)
    ticks = nice_ticks(min(0.0, *(e.low for _, e in points)), max(1e-9, *(e.high for _, e in points)), unit, 4)
    lo, hi = ticks[0], ticks[-1]
    plot_width, plot_height = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (plot_width / 2 if len(points) == 1 else i * plot_width / (len(points) - 1))

    def y(value: float) -> float:
        return top + plot_height - (value - lo) / (hi - lo) * plot_height

    body = []
    if not compact:
        for tick in ticks:
            body.append(
                f'<line x1="{left}" y1="{y(tick):.1f}" x2="{width - right}" y2="{y(tick):.1f}" stroke="{GRID}"/>'
                f'<text x="{left - 8}" y="{y(tick) + 4:.1f}" font-size="12" fill="{MUTED}" text-anchor="end">'
                f"{escape(unit.format(tick))}</text>"
            )
    else:
        body.append(
            f'<line x1="{left}" y1="{y(lo):.1f}" x2="{width - right}" y2="{y(lo):.1f}" stroke="{GRID}"/>'
            f'<line x1="{left}" y1="{y(hi):.1f}" x2="{width - right}" y2="{y(hi):.1f}" stroke="{GRID}" stroke-dasharray="2 3"/>'
            f'<text x="{width - right}" y="{y(hi) - 3:.1f}" font-size="12" fill="{MUTED}" text-anchor="end">'
            f"{escape(unit.format_tick(hi))}</text>"
        )
    if len(points) > 1:
        upper = " ".join(f"{x(i):.1f},{y(e.high):.1f}" for i, (_, e) in enumerate(points))
        lower = " ".join(f"{x(i):.1f},{y(e.low):.1f}" for i, (_, e) in reversed(list(enumerate(points))))
        line = " ".join(f"{x(i):.1f},{y(e.value):.1f}" for i, (_, e) in enumerate(points))
        body.append(f'<polygon points="{upper} {lower}" fill="{SKY}" fill-opacity="0.35" stroke="none"/>')
        body.append(f'<polyline points="{line}" fill="none" stroke="{BLUE}" stroke-width="2.5"/>')
    for i, (period, e) in enumerate(points):
        cx = x(i)
        body.append(
            f"<g><title>{escape(describe(period, e, unit))}</title>"
            f'<line x1="{cx:.1f}" y1="{y(e.low):.1f}" x2="{cx:.1f}" y2="{y(e.high):.1f}" stroke="{BLUE}" stroke-width="1.5"/>'
            f'<circle cx="{cx:.1f}" cy="{y(e.value):.1f}" r="{3.5 if compact else 5}" '
            f'fill="{"#ffffff" if e.low_reliability else BLUE}" stroke="{BLUE}" stroke-width="2"/></g>'
        )
        few = not compact and (not narrow or len(points) <= 5)
        if few or i in (0, len(points) - 1):
            edge = "start" if i == 0 and len(points) > 1 else "end" if i else "middle"
            anchor = "middle" if not compact else edge
            body.append(
                f'<text x="{cx:.1f}" y="{height - (6 if compact else 12)}" font-size="12" '
                f'fill="{MUTED}" text-anchor="{anchor}">{escape(period)}</text>'
            )
    first, last = points[0], points[-1]
    description = (
        f"Line chart of {len(points)} quarter(s) with a shaded 95% interval band. "
        f"{describe(first[0], first[1], unit)}" + (f"; {describe(last[0], last[1], unit)}." if len(points) > 1 else ".")
    )
    return _svg(chart_id, width, height, series.title, description, body)


class PageCharts:
    """The charts of one page, numbered so that element ids are unique in the page and stable across builds."""

    def __init__(self) -> None:
        self._ids = count(1)

    def bars(self, panel: Panel, unit: Unit, compact: bool = False) -> Markup:
        """A small multiple fits a phone as it is; a full chart comes as a wide and a narrow drawing,
        and the stylesheet shows the one that fits the screen."""
        if compact:
            return bar_chart(f"chart-{next(self._ids)}", panel, unit, compact=True)
        wide = bar_chart(f"chart-{next(self._ids)}", panel, unit)
        return _pair(wide, narrow_bar_chart(f"chart-{next(self._ids)}", panel, unit))

    def trend(self, series: Series, unit: Unit, compact: bool = False) -> Markup:
        if compact:
            return trend_chart(f"chart-{next(self._ids)}", series, unit, compact=True)
        wide = trend_chart(f"chart-{next(self._ids)}", series, unit)
        return _pair(wide, trend_chart(f"chart-{next(self._ids)}", series, unit, narrow=True))


def _pair(wide: Markup, narrow: Markup) -> Markup:
    return Markup(f'<div class="for-wide">{wide}</div><div class="for-narrow">{narrow}</div>')
