"""The public site, built from published release packages only (never the warehouse)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from pipelines.publication import published_manifests


def _rows(release_dir: Path, relative: str) -> list[dict[str, str]]:
    with (release_dir / relative).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def build_site(publish_root: Path) -> Path:
    """Render ``publish/site/`` from every intact release in ``publish/releases/``."""
    manifests = published_manifests(publish_root)
    latest: dict[str, dict[str, Any]] = {}
    for manifest in manifests:
        latest[manifest["period"]] = manifest  # later revisions replace earlier ones
    current = latest[max(latest)] if latest else None
    tables = []
    if current is not None:
        release_dir = publish_root / "releases" / current["release_id"]
        tables = [(indicator, _rows(release_dir, indicator["path"])) for indicator in current["indicators"]]
    environment = Environment(
        loader=PackageLoader("pipelines", "templates"), autoescape=select_autoescape(default=True)
    )
    site = publish_root / "site"
    partial = site.with_name(".site.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    html = environment.get_template("index.html.j2").render(
        current=current, tables=tables, history=list(reversed(manifests))
    )
    (partial / "index.html").write_text(html, encoding="utf-8")
    shutil.rmtree(site, ignore_errors=True)
    partial.replace(site)
    return site / "index.html"
