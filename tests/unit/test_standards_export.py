"""The published standard: reference, JSON Schema and templates, all generated from the model."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import jsonschema
import pytest

from standards import STANDARD_VERSION
from standards.check import check_extract
from standards.codelists import load_codelist
from standards.export import STEM, example_row, export_standard, field_specs, reference_markdown
from standards.extract import CODELIST_FIELDS, FIELDS, REQUIRED_FIELDS
from standards.issues import ISSUE_TYPES

PUBLISHED = Path(__file__).parents[2] / "docs" / "standard"


def test_the_committed_standard_is_what_the_model_generates(tmp_path: Path) -> None:
    """docs/standard/ is what charities download; it must never drift from the checks."""
    written = export_standard(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in PUBLISHED.iterdir())
    for path in written:
        assert path.read_bytes() == (PUBLISHED / path.name).read_bytes(), (
            f"{path.name} is out of date: run `collab standard export docs/standard`"
        )


def test_the_reference_describes_every_field_code_and_issue() -> None:
    reference = reference_markdown()
    for spec in field_specs():
        section = reference.split(f"### `{spec.name}`", 1)[1].split("\n### ", 1)[0]
        for part in (spec.kind, spec.requirement, spec.example, spec.why, spec.description):
            assert part in section, (spec.name, part)
        if spec.codelist:
            for code in load_codelist(spec.codelist).codes:
                assert f"| `{code.code}` | {code.label} |" in section
    for code in ISSUE_TYPES:
        assert f"| `{code}` |" in reference
    assert [s.name for s in field_specs() if s.requirement == "Required"] == list(REQUIRED_FIELDS)


def test_the_json_schema_accepts_the_example_and_enforces_codelists() -> None:
    schema = json.loads((PUBLISHED / f"{STEM}.schema.json").read_text())
    row = {name: value for name, value in example_row().items() if name != "postcode"}
    row |= {"monthly_income_gbp": 1150.0, "monthly_essential_costs_gbp": 1320.0, "total_debt_gbp": 4200.0}
    row["children_in_household"] = 2
    jsonschema.validate(row, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(row | {"need": "Fod parcel"}, schema)


def _sheet(workbook: Path, name: str) -> str:
    with zipfile.ZipFile(workbook) as archive:
        sheets = re.findall(
            r'<sheet name="([^"]+)" sheetId="\d+" r:id="rId(\d+)"', archive.read("xl/workbook.xml").decode()
        )
        number = dict(sheets)[name]
        return archive.read(f"xl/worksheets/sheet{number}.xml").decode()


def test_the_excel_template_has_drop_downs_and_instructions() -> None:
    workbook = PUBLISHED / f"{STEM}-template.xlsx"
    with zipfile.ZipFile(workbook) as archive:
        names = re.findall(r'<sheet name="([^"]+)"', archive.read("xl/workbook.xml").decode())
        strings = archive.read("xl/sharedStrings.xml").decode()
    assert names == ["Instructions", "Contacts", "Codes", "Local authorities"]
    assert "How to fill in this template" in strings
    contacts = _sheet(workbook, "Contacts")
    lists = re.findall(r'<dataValidation type="list"[^>]*sqref="([A-Z]+)2:[A-Z]+100001"><formula1>([^<]+)<', contacts)
    columns = {chr(ord("A") + i): name for i, name in enumerate(FIELDS)}
    listed = {columns[column]: source for column, source in lists}
    assert set(listed) == {*CODELIST_FIELDS, "local_authority_code"}
    codes = _sheet(workbook, "Codes")
    for name, source in listed.items():
        if name in CODELIST_FIELDS:  # the range named by the drop-down holds exactly that codelist's codes
            column, first, last = re.fullmatch(r"Codes!\$([A-Z]+)\$(\d+):\$[A-Z]+\$(\d+)", source).groups()  # type: ignore[union-attr]
            assert int(last) - int(first) + 1 == len(load_codelist(CODELIST_FIELDS[name]).codes)
            assert f'r="{column}{first}"' in codes


def _fill(template: Path, rows: list[list[str | int]], target: Path) -> Path:
    """The template as a charity returns it: rows typed into the Contacts sheet, other sheets untouched."""
    cells = []
    for number, row in enumerate(rows, start=2):
        values = []
        for index, value in enumerate(row):
            ref = f"{chr(ord('A') + index)}{number}"
            if isinstance(value, int):
                values.append(f'<c r="{ref}"><v>{value}</v></c>')
            elif value:
                values.append(f'<c r="{ref}" t="inlineStr"><is><t>{escape(value)}</t></is></c>')
        cells.append(f'<row r="{number}">{"".join(values)}</row>')
    with zipfile.ZipFile(template) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet2.xml":
                text = data.decode().replace("</sheetData>", "".join(cells) + "</sheetData>")
                data = text.replace('<dimension ref="A1:P1"/>', f'<dimension ref="A1:P{len(rows) + 1}"/>').encode()
            out.writestr(item, data)
    return target


def test_a_filled_in_template_is_accepted_as_it_is(tmp_path: Path) -> None:
    rows: list[list[str | int]] = [
        ["NFB-1", 46035, "food", "E08000025", "", "25_34", "", "single_parent", 2, "social_rented",
         "employed_part_time", "no", 1150, 1320, 0, "food_parcel"],
        ["NFB-2", 46036, "debt", "", "LS1 4AP", "", 31251, "single_adult", 0, "private_rented",
         "unemployed", "yes", 640, 700, 4200, "advice"],
    ]  # fmt: skip
    report = check_extract(_fill(PUBLISHED / f"{STEM}-template.xlsx", rows, tmp_path / "ours.xlsx")).report
    assert report.status == "accepted", report.issues
    assert report.file.sheet == "Contacts" and report.rows_accepted == 2
    assert set(report.file.columns_used.values()) == set(FIELDS)
    empty = check_extract(PUBLISHED / f"{STEM}-template.xlsx").report
    assert empty.codes() == ["E_NO_DATA_ROWS"] and empty.file.sheet == "Contacts"


def test_the_csv_template_and_example_are_the_standard() -> None:
    assert (PUBLISHED / f"{STEM}-template.csv").read_text().strip() == ",".join(FIELDS)
    report = check_extract(PUBLISHED / f"{STEM}-example.csv").report
    assert report.status == "accepted" and report.rows_accepted == 1


def test_the_schema_names_the_standards_whole_version() -> None:
    # A trial's engineer found "v1" alone in the schema while the reference said 1.1, which added a field.
    schema = json.loads((PUBLISHED / f"{STEM}.schema.json").read_text(encoding="utf-8"))
    assert schema["title"].endswith(f"v{STANDARD_VERSION}")
