"""Downloads readers expect, derived at build time from the published releases (never the warehouse).

- a tidy time series per indicator: every quarter's latest release in one CSV, raw values unrounded;
- one Excel workbook per release in the ONS convention for spreadsheets (a cover sheet, a contents
  sheet, a notes sheet, then one table per sheet: a title in A1, no merged cells, no blank rows or
  columns inside a table, each table an Excel table with a header row);
- the release itself as a zip (its Frictionless data package, manifest and CSVs, byte for byte).

The Frictionless package in ``publish/releases/<release>/`` stays the machine-readable source; these
are conveniences built from it.
"""

from __future__ import annotations

import csv
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import xlsxwriter

from collab.site.model import SiteModel, Unit, quarter_label, unit_of
from standards.geography import ATTRIBUTION as GEOGRAPHY_ATTRIBUTION

NOTES = (
    "Figures are estimates protected by differential privacy: random noise of a known size was added to each "
    "one to hide what any one person's records add to it (the methodology page says how strongly). They are not "
    "official statistics.",
    "The 95% interval contains the figure before noise in at least 95 out of 100 draws of the noise; for a mean or "
    "a share, worked out from two noisy measurements, it is approximate (the delta method): about 95 out of 100. It "
    "covers the privacy noise only, not other errors such as which charities take part.",
    "Low reliability (TRUE) means the 95% interval is wider than the figure itself: read such a figure as rough (a "
    "small count as 'few').",
    "Counts of people count a person once per cell; where an indicator lets a person count in several cells "
    "(for example several needs), its cells add up to more than the number of people.",
    "Figures describe people supported by the participating charities, not the whole population.",
    "Figures and intervals are as the release's CSV files publish them (counts in whole people, amounts in pounds "
    "or pence); the website rounds them further for reading, an interval's ends outwards (so wider, never narrower). Estimate and estimate variance are the unrounded "
    "noisy measurements behind them.",
    "[x] marks a value not available: a median has no estimate or estimate variance (its interval comes from ranked "
    "values, not from a variance), and a mean or a share has none where its noisy count of people was below one. "
    "An estimate can lie outside the range its figure can take (a count below zero, a share below 0 or above 1): it "
    "is the noisy measurement as it came, kept so that figures can be added up and compared without bias; the "
    "figure is the better estimate of its own cell.",
)


def time_series_name(indicator_id: str) -> str:
    return f"downloads/{indicator_id}-time-series.csv"


def workbook_name(release_id: str) -> str:
    return f"downloads/{release_id}.xlsx"


def zip_name(release_id: str) -> str:
    return f"downloads/{release_id}.zip"


def write_downloads(site: Path, publish_root: Path, model: SiteModel) -> None:
    """Write every download into the site folder being built (``site`` is not yet live)."""
    (site / "downloads").mkdir(parents=True, exist_ok=True)
    for view in model.indicators:
        _write_time_series(site / time_series_name(view.id), publish_root, model, view.id)
    for manifest in model.manifests:
        release_dir = publish_root / "releases" / manifest["release_id"]
        _write_workbook(site / workbook_name(manifest["release_id"]), release_dir, manifest)
        _write_zip(site / zip_name(manifest["release_id"]), release_dir, manifest)


def _rows(release_dir: Path, meta: dict[str, Any]) -> tuple[list[str], list[dict[str, str]]]:
    with (release_dir / meta["path"]).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _write_time_series(target: Path, publish_root: Path, model: SiteModel, indicator_id: str) -> None:
    """Every published quarter of one indicator (its latest release), oldest first, in one tidy CSV."""
    columns: list[str] = []
    rows: list[dict[str, str]] = []
    for period in model.periods:
        manifest = model.latest_by_period[period]
        meta = next((m for m in manifest["indicators"] if m["id"] == indicator_id), None)
        if meta is None:
            continue
        fields, found = _rows(publish_root / "releases" / manifest["release_id"], meta)
        columns += [f for f in fields if f not in columns]
        rows += found
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _heading(field: str, unit: Unit) -> str:
    """A column name a reader can read, in the figure's unit: ``region_code`` -> ``Region code``, ``ci_low`` ->
    ``95% interval, lower (people)``."""
    in_unit = {
        "count": f" ({unit.noun or 'people'})",
        "percent": " (share, 0 to 1)" if unit.fraction else " (%)",
        "pounds": " (£)",
    }.get(unit.kind, "")
    special = {
        "release_id": "Release",
        "period": "Quarter",
        "value": f"Figure{in_unit}",
        "ci_low": f"95% interval, lower{in_unit}",
        "ci_high": f"95% interval, upper{in_unit}",
        "low_reliability": "Low reliability [note 3]",
        "estimate": "Estimate [note 7]",
        "estimate_variance": "Estimate variance [note 7]",
    }
    return special.get(field, field.replace("_", " ").capitalize())


NUMBERS = {"value", "ci_low", "ci_high", "estimate", "estimate_variance"}


def _value(field: str, text: str) -> object:
    """A CSV field as the workbook holds it: numbers as numbers, so that a spreadsheet adds them up; "[x]" where
    there is none (a median has no estimate), as government statistics mark a value not available."""
    if field in NUMBERS:
        return float(text) if text not in ("", None) else "[x]"
    if field == "low_reliability":
        return text == "true"
    return text


def _write_workbook(target: Path, release_dir: Path, manifest: dict[str, Any]) -> None:
    release, period = manifest["release_id"], quarter_label(manifest["period"])
    workbook = xlsxwriter.Workbook(str(target), {"strings_to_numbers": False, "strings_to_formulas": False})
    workbook.set_properties({"title": f"Poverty Insight Collaborative, release {release} ({period})"})
    title = workbook.add_format({"bold": True, "font_size": 15})
    bold = workbook.add_format({"bold": True})
    wrap = workbook.add_format({"text_wrap": True, "valign": "top"})
    link = workbook.add_format({"font_color": "#005a8e", "underline": 1})
    tables = [(f"Table_{i}", meta) for i, meta in enumerate(manifest["indicators"], start=1)]

    cover = workbook.add_worksheet("Cover")
    cover.set_column(0, 0, 110)
    lines: list[tuple[str, Any]] = [
        (f"Poverty indicators from UK charities, {period} (release {release})", title),
        ("Cross-charity indicators of the people UK poverty charities support, protected by differential privacy.", wrap),
        ("Published", bold),
        (manifest["created_at"][:10], None),
        ("Coverage", bold),
        (f"People supported in {period} by the charities taking part ({manifest['contributors']} had sent files "
         "when this release was made).", wrap),
        ("Source", bold),
        ("Poverty Insight Collaborative: records of participating charities, pooled and protected inside the collaborative.", wrap),
        ("Licence", bold),
        ("Open Government Licence v3.0.", wrap),
        ("Areas", bold),
        (GEOGRAPHY_ATTRIBUTION, wrap),
        ("Revisions", bold),
        ("A revision replaces an earlier release of the same quarter; earlier releases stay published.", wrap),
        ("This workbook", bold),
        (f"A contents sheet, a notes sheet and {len(tables)} tables, one per sheet. Machine-readable data: the "
         "release's Frictionless data package (datapackage.json).", wrap),
    ]  # fmt: skip
    for row, (text, style) in enumerate(lines):
        cover.write_string(row, 0, text, style)

    contents = workbook.add_worksheet("Contents")
    contents.write_string(0, 0, "Contents", title)
    contents.write_string(1, 0, "This worksheet contains one table.")
    contents.set_column(0, 0, 14)
    contents.set_column(1, 1, 70)
    contents.set_column(2, 2, 40)
    contents.add_table(
        2, 0, 2 + len(tables), 2,
        {
            "name": "contents",
            "style": "Table Style Light 1",
            "columns": [{"header": "Sheet"}, {"header": "Table title"}, {"header": "Broken down by"}],
        },
    )  # fmt: skip
    for row, (sheet, meta) in enumerate(tables, start=3):
        contents.write_url(row, 0, f"internal:'{sheet}'!A1", link, sheet)
        contents.write_string(row, 1, meta["title"])
        contents.write_string(row, 2, ", ".join(b.replace("_", " ") for b in meta["breakdowns"]))

    notes = workbook.add_worksheet("Notes")
    notes.write_string(0, 0, "Notes", title)
    notes.write_string(1, 0, "This worksheet contains one table.")
    notes.set_column(0, 0, 12)
    notes.set_column(1, 1, 110)
    notes.add_table(
        2, 0, 2 + len(NOTES), 1,
        {"name": "notes", "style": "Table Style Light 1", "columns": [{"header": "Note number"}, {"header": "Note text"}]},
    )  # fmt: skip
    for row, text in enumerate(NOTES, start=3):
        notes.write_string(row, 0, f"note {row - 2}")
        notes.write_string(row, 1, text, wrap)

    for sheet, meta in tables:
        fields, rows = _rows(release_dir, meta)
        unit = unit_of(meta, [float(r["value"]) for r in rows if r.get("value") not in ("", None)])
        notes_read = "[note 1] [note 2]" + (" [note 4]" if unit.kind == "count" else "") + " [note 5] [note 6]"
        worksheet = workbook.add_worksheet(sheet)
        worksheet.write_string(0, 0, f"{sheet.replace('_', ' ')}: {meta['title']}, {period} {notes_read}", title)
        worksheet.write_string(1, 0, "This worksheet contains one table. Some cells refer to notes on the Notes sheet.")
        worksheet.write_string(2, 0, meta.get("description", ""))
        worksheet.write_string(3, 0, f"Source: Poverty Insight Collaborative, release {release}.")
        top = 4
        worksheet.add_table(
            top, 0, top + max(1, len(rows)), len(fields) - 1,
            {
                "name": sheet.lower(),
                "style": "Table Style Light 1",
                "columns": [{"header": _heading(f, unit)} for f in fields],
            },
        )  # fmt: skip
        for r, record in enumerate(rows, start=top + 1):
            for c, field in enumerate(fields):
                value = _value(field, record.get(field, ""))
                if isinstance(value, bool):
                    worksheet.write_boolean(r, c, value)
                elif isinstance(value, float):
                    worksheet.write_number(r, c, value)
                else:
                    worksheet.write_string(r, c, str(value))
        for c, field in enumerate(fields):
            worksheet.set_column(c, c, 30 if field.endswith("_name") else 16)
    workbook.close()


def _write_zip(target: Path, release_dir: Path, manifest: dict[str, Any]) -> None:
    """The release's files byte for byte, dated at publication so that the zip is the same at every build."""
    stamp = datetime.fromisoformat(manifest["created_at"]).timetuple()[:6]
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in release_dir.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(f"{manifest['release_id']}/{path.relative_to(release_dir).as_posix()}", stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16  # public files: unzipped, readable by all (writestr's default is 0600)
            archive.writestr(info, path.read_bytes())
