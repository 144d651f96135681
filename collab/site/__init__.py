"""The public site, built from published release packages only (never the warehouse).

``build_site(publish_root)`` renders ``publish/site/`` from every intact release under
``publish/releases/``: an overview with the headline indicators and their change on the previous
quarter, a page per indicator (trend with 95% band, rankings by place, small multiples, the table
behind them, how to read it, caveats, downloads), the methodology and the release history. Pages are
static HTML with inline SVG charts and one bundled stylesheet: no JavaScript, no network.
A tampered release stops the build with ``ReleaseIntegrityError`` and leaves the previous site.

Every page and download depends on every release (trends, time series, the release history), so a build
renders all of them: the pipeline builds once after a run's publications (``site_is_current`` says whether it
must), not once per release.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from collab.publication import SINGLE_CHARITY_STATEMENT, published_release_dirs
from collab.site.areas import area_pages, people_maps, places
from collab.site.charts import PageCharts
from collab.site.downloads import time_series_name, workbook_name, write_downloads, zip_name
from collab.site.maps import HEXMAP_LICENCE
from collab.site.model import SiteModel, load_site_model, quarter_label
from collab.workspace import PublicationSettings
from standards.geography import ATTRIBUTION as GEOGRAPHY_ATTRIBUTION

STATIC = Path(__file__).with_name("static")
# What a site was built from (its releases and settings), kept in the site so that it is replaced with it.
BUILT_FROM = "built-from.json"


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("collab.site", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["quarter"] = quarter_label
    environment.globals.update(
        time_series=time_series_name,
        workbook=workbook_name,
        release_zip=zip_name,
        geography_attribution=GEOGRAPHY_ATTRIBUTION,
    )
    return environment


def _pages(model: SiteModel) -> list[tuple[str, str, dict[str, Any]]]:
    """(path in the site, template, context) of every page."""
    if model.current is None:
        return [("index.html", "index.html.j2", {"page": "home", "maps": None})]
    pages: list[tuple[str, str, dict[str, Any]]] = [
        ("index.html", "index.html.j2", {"page": "home", "maps": people_maps(model, "")})
    ]
    pages += [
        ("indicators/index.html", "indicators.html.j2", {"page": "indicators"}),
        (
            "methodology.html",
            "methodology.html.j2",
            {"page": "methodology", "single_charity_statement": SINGLE_CHARITY_STATEMENT},
        ),
        ("releases.html", "releases.html.j2", {"page": "releases"}),
        (
            "areas/index.html",
            "areas.html.j2",
            {"page": "areas", "maps": people_maps(model, "../"), "areas_by_letter": _by_letter()},
        ),
    ]
    pages += [(area.path, "area.html.j2", {"page": "areas", "area": area}) for area in area_pages(model)]
    pages += [
        (f"indicators/{view.id}.html", "indicator.html.j2", {"page": "indicators", "view": view})
        for view in model.indicators
    ]
    return pages


def _by_letter() -> list[tuple[str, list[Any]]]:
    """Every area under the first letter of its name, for the A to Z index."""
    letters: dict[str, list[Any]] = {}
    for place in sorted(places(), key=lambda p: p.name.lower()):
        letters.setdefault(place.name[0].upper(), []).append(place)
    return sorted(letters.items())


def build_site(publish_root: Path, settings: PublicationSettings | None = None) -> Path:
    """Render ``publish/site/`` from every intact release in ``publish/releases/``; return its index.

    ``settings.max_interval_share`` decides which figures are precise enough to quote as headlines.
    """
    settings = settings or PublicationSettings()
    # Taken before the releases are read: one published meanwhile leaves the site stale, never marked current.
    sources = site_sources(publish_root, settings)
    model = load_site_model(publish_root, settings.max_interval_share)
    environment = _environment()
    site = publish_root / "site"
    partial = site.with_name(".site.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(STATIC, partial / "assets")
    shutil.copy(HEXMAP_LICENCE, partial / "assets" / HEXMAP_LICENCE.name)
    write_downloads(partial, publish_root, model)
    for path, template, context in _pages(model):
        target = partial / path
        target.parent.mkdir(parents=True, exist_ok=True)
        root = "../" * path.count("/")
        html = environment.get_template(template).render(site=model, root=root, charts=PageCharts(), **context)
        target.write_text(html, encoding="utf-8")
    (partial / BUILT_FROM).write_text(json.dumps(sources), encoding="utf-8")
    shutil.rmtree(site, ignore_errors=True)
    partial.replace(site)
    return site / "index.html"


def site_is_current(publish_root: Path, settings: PublicationSettings | None = None) -> bool:
    """Whether ``publish/site/`` was built from exactly the releases published now, with these settings: false
    after a publication whose run stopped before rebuilding the site. Nothing published needs no site."""
    sources = site_sources(publish_root, settings or PublicationSettings())
    try:
        built = json.loads((publish_root / "site" / BUILT_FROM).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return not sources["releases"]
    except (OSError, ValueError):
        return False
    return bool(built == sources)


def site_sources(publish_root: Path, settings: PublicationSettings) -> dict[str, Any]:
    """What a site built now would be built from: the published releases, by name, and the settings it reads."""
    return {
        "releases": [path.name for path in published_release_dirs(publish_root)],
        "max_interval_share": settings.max_interval_share,
    }
