"""Hex maps of the UK as inline SVG, drawn at build time: no JavaScript, no tiles, no network.

One equal-sized hexagon per local authority (the House of Commons Library / ONS convention, so that
London's boroughs do not vanish), from Open Innovations' HexJSON (MIT; see ``geography/README.md``).
The region map draws the same hexagons filled with their region's figure, with region borders.
Colours are a five-class sequential ColorBrewer scale (YlGnBu, safe for colour-blind readers); a
low-reliability figure is also hatched, never told by colour alone. The map holds no text: its
legend and its text alternative (the table of every figure) are HTML beside it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from markupsafe import Markup, escape

from collab.site.model import Estimate, Unit
from standards.geography import SUCCESSOR_CODES

HEXJSON = Path(__file__).with_name("geography") / "uk-local-authority-districts-2023.hexjson"
# Shipped with every site that draws the layout, as its MIT licence asks.
HEXMAP_LICENCE = HEXJSON.with_name("HEXMAP-LICENSE.txt")
# ColorBrewer YlGnBu, 5 classes: sequential and colour-blind safe; light = fewer, dark = more.
SCALE = ("#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494")
NO_FIGURE = "#bdbdbd"
BORDER = "#1b1b1b"
RADIUS = 10.0  # hexagon radius in SVG units


@dataclass(frozen=True)
class Hex:
    code: str  # the LAD25 code
    name: str
    region_code: str
    q: int
    r: int


@cache
def hexes() -> tuple[Hex, ...]:
    """Every local authority's hexagon, under its current code."""
    data = json.loads(HEXJSON.read_text(encoding="utf-8"))
    return tuple(
        Hex(SUCCESSOR_CODES.get(code, code), cell["n"], cell["region"], int(cell["q"]), int(cell["r"]))
        for code, cell in data["hexes"].items()
    )


@dataclass(frozen=True)
class Shade:
    """One class of the colour scale: figures from ``low`` up to (not including) ``high``."""

    colour: str
    low: float
    high: float | None  # None: no upper end


def classes(values: list[float], unit: Unit) -> list[Shade]:
    """Up to five classes with round breaks at the quintiles of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return []
    breaks: list[float] = []
    for share in (0.2, 0.4, 0.6, 0.8):
        value = _round_break(ordered[min(len(ordered) - 1, int(share * len(ordered)))], unit)
        if value > (breaks[-1] if breaks else ordered[0]):
            breaks.append(value)
    lows = [min(0.0, ordered[0]), *breaks]
    colours = SCALE[len(SCALE) - len(lows) :] if len(lows) < len(SCALE) else SCALE
    return [Shade(colours[i], low, lows[i + 1] if i + 1 < len(lows) else None) for i, low in enumerate(lows)]


def _round_break(value: float, unit: Unit) -> float:
    """Two significant figures; whole numbers for counts."""
    if value <= 0:
        return 0.0
    magnitude = 10 ** (math.floor(math.log10(value)) - 1)
    rounded = round(value / magnitude) * magnitude
    return float(max(1, round(rounded))) if unit.kind == "count" else rounded


def shade_of(value: float, shades: list[Shade]) -> str:
    colour = shades[0].colour
    for shade in shades:
        if value >= shade.low:
            colour = shade.colour
    return colour


@dataclass(frozen=True)
class MapArea:
    code: str
    name: str
    href: str
    estimate: Estimate | None


def _centre(cell: Hex, top_row: int, left_column: int) -> tuple[float, float]:
    width = math.sqrt(3) * RADIUS
    x = (cell.q - left_column) * width + (width / 2 if cell.r % 2 else 0) + width / 2
    y = (top_row - cell.r) * 1.5 * RADIUS + RADIUS
    return x, y


def _hexagon(x: float, y: float) -> str:
    corners = [
        (x + RADIUS * math.cos(math.radians(60 * i - 30)), y + RADIUS * math.sin(math.radians(60 * i - 30)))
        for i in range(6)
    ]
    return "M" + "L".join(f"{cx:.1f},{cy:.1f}" for cx, cy in corners) + "Z"


def _neighbours(cell: Hex) -> list[tuple[int, int]]:
    """The six neighbours of a hexagon in an odd-r layout (odd rows shifted right)."""
    shift = 1 if cell.r % 2 else 0
    q, r = cell.q, cell.r
    return [(q - 1, r), (q + 1, r)] + [(q - 1 + shift + dq, r + dr) for dr in (-1, 1) for dq in (0, 1)]


def hex_map(
    map_id: str,
    title: str,
    description: str,
    area_of: Callable[[Hex], MapArea | None],
    shades: list[Shade],
    unit: Unit,
    *,
    group_of: Callable[[Hex], str] | None = None,
) -> Markup:
    """A hexagon per local authority, filled by the figure of ``area_of(hex)`` and linking to its page.

    With ``group_of`` (e.g. a hex's region), borders are drawn where neighbouring hexes belong to
    different groups.
    """
    cells = hexes()
    top_row, left_column = max(c.r for c in cells), min(c.q for c in cells)
    centres = {c.code: _centre(c, top_row, left_column) for c in cells}
    width = max(x for x, _ in centres.values()) + math.sqrt(3) * RADIUS / 2 + 2
    height = max(y for _, y in centres.values()) + RADIUS + 2
    body = [
        f'<defs><pattern id="{map_id}-hatch" width="5" height="5" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="5" stroke="#ffffff" stroke-width="1.6"/>'
        '<line x1="2.5" y1="0" x2="2.5" y2="5" stroke="#1b1b1b" stroke-width="1.2"/></pattern></defs>'
    ]
    for cell in cells:
        area = area_of(cell)
        if area is None:
            continue
        x, y = centres[cell.code]
        path = _hexagon(x, y)
        estimate = area.estimate
        fill = NO_FIGURE if estimate is None else shade_of(estimate.value, shades)
        if estimate is None:
            words = "no figure"
        else:
            words = f"{unit.format(estimate.value)} (95% interval {unit.interval(estimate)})"
            words += ", low reliability" if estimate.low_reliability else ""
        label = f"{area.name}: {words}"
        hatch = (
            f'<path d="{path}" fill="url(#{map_id}-hatch)" pointer-events="none"/>'
            if estimate is not None and estimate.low_reliability
            else ""
        )
        body.append(
            f'<a href="{escape(area.href)}" aria-label="{escape(label)}"><title>{escape(label)}</title>'
            f'<path class="hex" d="{path}" fill="{fill}" stroke="#ffffff" stroke-width="0.8"/>{hatch}</a>'
        )
    if group_of is not None:
        where = {(c.q, c.r): c for c in cells}
        edges = []
        for cell in cells:
            x1, y1 = centres[cell.code]
            for position in _neighbours(cell):
                other = where.get(position)
                if other is None or group_of(other) == group_of(cell) or other.code < cell.code:
                    continue
                x2, y2 = centres[other.code]
                mx, my, dx, dy = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
                length = math.hypot(dx, dy)
                px, py = -dy / length * RADIUS / 2, dx / length * RADIUS / 2
                edges.append(f"M{mx - px:.1f},{my - py:.1f}L{mx + px:.1f},{my + py:.1f}")
        body.append(
            f'<path d="{"".join(edges)}" stroke="{BORDER}" stroke-width="1.6" fill="none" pointer-events="none"/>'
        )
    return Markup(
        f'<svg class="map" id="{map_id}" viewBox="0 0 {width:.0f} {height:.0f}" role="group" '
        f'aria-labelledby="{map_id}-t {map_id}-d" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{map_id}-t">{escape(title)}</title><desc id="{map_id}-d">{escape(description)}</desc>'
        + "".join(body)
        + "</svg>"
    )
