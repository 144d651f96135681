"""One page per area (the UK, each nation, region and local authority) and the maps that lead to them.

An area's page gathers every published indicator that has a figure for that area, quarter by
quarter, from the published releases (never the warehouse). The list of areas is the standard's
public geography, so an area with no figures still has a page that says so.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from collab.site.maps import Hex, MapArea, Shade, classes, hex_map
from collab.site.model import Cell, Estimate, IndicatorView, Series, SiteModel, is_geography, quarter_label
from standards.geography import load_geography

LEVEL_NAMES = {"uk": "country", "nation": "nation", "region": "region", "local_authority": "local authority"}


@dataclass(frozen=True)
class Place:
    code: str
    name: str
    level: str  # uk | nation | region | local_authority; a nation that is also a region is a nation

    @property
    def href(self) -> str:
        return f"areas/{self.code}.html"

    @property
    def level_name(self) -> str:
        return LEVEL_NAMES[self.level]


@dataclass(frozen=True)
class AreaRow:
    """One figure of an indicator for an area in the latest quarter (``label`` names the other breakdown)."""

    label: str
    estimate: Estimate | None


@dataclass(frozen=True)
class AreaFigure:
    """One indicator for one area: its figures this quarter and, when it has one figure, its trend."""

    view: IndicatorView
    rows: list[AreaRow]
    trend: Series | None


@dataclass
class AreaPage:
    place: Place
    parents: list[Place]  # from the UK down
    children: list[Place]
    figures: list[AreaFigure] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.place.href


def places() -> list[Place]:
    """Every area of the standard's geography once, top down; a nation that is also a region stays a nation."""
    seen: dict[str, Place] = {}
    for area in load_geography().areas():
        seen.setdefault(area.code, Place(area.code, area.name, area.level))
    return list(seen.values())


def _parents() -> dict[str, str]:
    """Area code -> the code of the area above it (local authority -> region -> nation -> UK)."""
    parent: dict[str, str] = {}
    for area in load_geography().areas():
        if area.parent_code is not None and area.parent_code != area.code:
            parent.setdefault(area.code, area.parent_code)
    return parent


def _area_cells(view: IndicatorView) -> dict[str, dict[str, list[Cell]]]:
    """Area code -> period -> the cells of that area (one cell per key of the other breakdown)."""
    breakdowns = view.meta["breakdowns"]
    where = next((i for i, b in enumerate(breakdowns) if is_geography(b)), None)
    found: dict[str, dict[str, list[Cell]]] = defaultdict(lambda: defaultdict(list))
    if where is None:
        return found
    for release in view.releases:
        for cell in release.cells:
            bucket = found[cell.keys[where]][release.period]
            # A nation that is also a region carries the same figure twice: keep one per key.
            if not any(c.keys == cell.keys for c in bucket):
                bucket.append(cell)
    return found


def area_pages(site: SiteModel) -> list[AreaPage]:
    everything = places()
    by_code = {p.code: p for p in everything}
    parent = _parents()
    children: dict[str, list[Place]] = defaultdict(list)
    for place in everything:
        if place.code in parent:
            children[parent[place.code]].append(place)
    # The area's count of people supported leads its page, as the UK total leads the home page.
    lead = site.people_total.view.id if site.people_total else None
    views = sorted((v for v in site.indicators if v.has_figures), key=lambda v: v.id != lead)
    indexes = [(view, _area_cells(view)) for view in views]
    pages = []
    for place in everything:
        chain, code = [], place.code
        while code in parent:
            code = parent[code]
            chain.append(by_code[code])
        page = AreaPage(place, list(reversed(chain)), sorted(children[place.code], key=lambda p: p.name))
        for view, index in indexes:
            quarters = index.get(place.code)
            if not quarters or view.current_period not in quarters:
                continue
            other = [i for i, b in enumerate(view.meta["breakdowns"]) if not is_geography(b)]
            rows = [
                AreaRow(" · ".join(cell.labels[i] for i in other), cell.estimate)
                for cell in quarters[view.current_period]
            ]
            trend = None
            if len(rows) == 1:
                points = [
                    (period, cells[0].estimate)
                    for period, cells in sorted(quarters.items())
                    if len(cells) == 1 and cells[0].estimate is not None
                ]
                trend = Series(f"{view.title}: {place.name}", points) if points else None
            page.figures.append(AreaFigure(view, rows, trend))
        pages.append(page)
    return pages


@dataclass(frozen=True)
class AreaMap:
    """A hex map and the table behind it (its text alternative)."""

    svg: object
    shades: list[Shade]
    areas: list[MapArea]


def people_maps(site: SiteModel, root: str) -> tuple[AreaMap, AreaMap] | None:
    """The local authority map and the region map of the UK count of people supported, latest quarter."""
    total = site.people_total
    if total is None or total.view.current is None:
        return None
    view, period = total.view, total.view.current_period
    geography = load_geography()
    figures = {(c.level, c.keys[0]): c.estimate for c in total.view.current.cells}
    las = {
        code: MapArea(code, la.name, f"{root}areas/{code}.html", figures.get(("local_authority", code)))
        for code, la in geography.local_authorities.items()
    }
    regions = {
        code: MapArea(code, name, f"{root}areas/{code}.html", figures.get(("region", code)))
        for code, name in geography.regions().items()
    }
    if not any(a.estimate for a in las.values()) and not any(a.estimate for a in regions.values()):
        return None
    unit = view.unit
    when = quarter_label(period)

    def local(cell: Hex) -> MapArea | None:
        return las.get(cell.code)

    def regional(cell: Hex) -> MapArea | None:
        return regions.get(cell.region_code)

    la_shades = classes([a.estimate.value for a in las.values() if a.estimate], unit)
    region_shades = classes([a.estimate.value for a in regions.values() if a.estimate], unit)
    la_map = hex_map(
        "map-la",
        f"People supported by local authority, {when}",
        "Hex map: one hexagon per local authority, darker for more people; hatched hexagons are low "
        "reliability. Each hexagon links to its area's page. The table below the map lists every figure.",
        local,
        la_shades,
        unit,
    )
    region_map = hex_map(
        "map-region",
        f"People supported by region, {when}",
        "Hex map of the regions of England and the nations of Scotland, Wales and Northern Ireland, darker for "
        "more people, with region borders. Each hexagon links to its region's page.",
        regional,
        region_shades,
        unit,
        group_of=lambda cell: cell.region_code,
    )
    return (
        AreaMap(la_map, la_shades, sorted(las.values(), key=lambda a: a.name)),
        AreaMap(region_map, region_shades, sorted(regions.values(), key=lambda a: a.name)),
    )
