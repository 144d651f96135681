"""Artefacts generated from ``ContactRecord``: the field reference, JSON Schema and templates.

Everything here is derived from the pydantic model, the codelists, the header aliases and the issue
codes, so the published standard cannot drift from what the checks enforce. The output is
byte-for-byte reproducible; ``docs/standard/`` holds the committed copy and a test keeps it current.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.utility import xl_col_to_name

from standards import STANDARD_VERSION
from standards.codelists import load_codelist
from standards.extract import (
    AREA_FIELDS,
    CODELIST_FIELDS,
    EARLIEST_CONTACT_DATE,
    FIELDS,
    MAX_AGE_YEARS,
    MAX_TEXT_CHARS,
    REQUIRED_FIELDS,
    ContactRecord,
)
from standards.geography import load_geography
from standards.issues import ISSUE_TYPES
from standards.mapping import FIELD_ALIASES
from standards.normalise import BLANK_SPELLINGS, REFUSAL_SPELLINGS

TITLE = f"Charity Service-User Extract standard v{STANDARD_VERSION}"
STEM = "contact-extract-v1"
# Fixed, so that the workbook's bytes depend only on the standard.
TEMPLATE_CREATED = dt.datetime(2026, 1, 1)
TEMPLATE_ROWS = 100_000


@dataclass(frozen=True)
class FieldSpec:
    """One field of the standard as the reference and the templates describe it."""

    name: str
    kind: str
    requirement: str
    description: str
    why: str
    example: str
    codelist: str | None
    aliases: tuple[str, ...]


def _branch(schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional field's schema."""
    options = [option for option in schema.get("anyOf", [schema]) if option.get("type") != "null"]
    return options[0]


def _kind(name: str, schema: dict[str, Any]) -> str:
    branch = _branch(schema)
    if "enum" in branch:
        return f"Code from the {CODELIST_FIELDS[name]} codelist"
    if branch.get("format") == "date":
        return "Date"
    if branch["type"] == "integer":
        return f"Whole number, {branch['minimum']} to {branch['maximum']}"
    if branch["type"] == "number":
        return f"Amount in pounds, £{branch['minimum']:,} to £{branch['maximum']:,}"
    if name == "person_ref":
        return f"Text, 1 to {MAX_TEXT_CHARS} characters"
    return "Text"


def _requirement(name: str) -> str:
    if name in REQUIRED_FIELDS:
        return "Required"
    if name in AREA_FIELDS:
        other = next(f for f in AREA_FIELDS if f != name)
        return f"Required if there is no {other}"
    return "Optional"


def _example(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def field_specs() -> list[FieldSpec]:
    properties = ContactRecord.model_json_schema()["properties"]
    return [
        FieldSpec(
            name=name,
            kind=_kind(name, properties[name]),
            requirement=_requirement(name),
            description=properties[name]["description"],
            why=properties[name]["why"],
            example=_example(properties[name]["examples"][0]),
            codelist=CODELIST_FIELDS.get(name),
            aliases=FIELD_ALIASES.get(name, ()),
        )
        for name in FIELDS
    ]


def json_schema() -> dict[str, object]:
    return ContactRecord.model_json_schema()


def example_row() -> dict[str, object]:
    return {spec.name: spec.example for spec in field_specs()}


# --- the human-readable reference ------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference_markdown() -> str:
    """The field-by-field reference a charity reads: what to send, in what form, and why."""
    specs = field_specs()
    lines = [
        f"# {TITLE}",
        "",
        "<!-- Generated from standards/extract.py by `collab standard export`; do not edit by hand. -->",
        "",
        "One row per **support contact**: each time your charity helped a person. A person seen three times "
        "is three rows with the same `person_ref`. Send each quarter's contacts as a CSV (UTF-8) or Excel "
        "(.xlsx) file; the [Excel template](contact-extract-v1-template.xlsx) has every column, drop-down "
        "lists for the coded columns and these instructions. Your own column names and wording can be used: "
        "see *Your own headers and wording* below.",
        "",
        "## Fields at a glance",
        "",
        "| column | what it holds | required? | example |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{s.name}` | {_cell(s.kind)} | {s.requirement} | `{s.example}` |" for s in specs]
    lines += ["", "## Fields", ""]
    for spec in specs:
        lines += [
            f"### `{spec.name}`",
            "",
            spec.description,
            "",
            f"- **{spec.requirement}**",
            f"- **Type:** {spec.kind}",
            f"- **Example:** `{spec.example}`",
            f"- **Why we ask:** {spec.why}",
        ]
        if spec.aliases:
            lines.append("- **Also recognised as the header:** " + ", ".join(f'"{a}"' for a in spec.aliases))
        if spec.codelist:
            lines += ["", "| code | label | meaning | also accepted |", "|---|---|---|---|"]
            lines += [
                f"| `{c.code}` | {_cell(c.label)} | {_cell(c.description)} | {_cell(', '.join(c.synonyms))} |"
                for c in load_codelist(spec.codelist).codes
            ]
        lines.append("")
    lines += [
        "## Rules across fields",
        "",
        "- Every row needs either `local_authority_code` or `postcode` (either may be blank if the other is filled).",
        "- A `date_of_birth` after the `contact_date` or after today, or one that would make the person over "
        f"{MAX_AGE_YEARS} at the contact (01/01/1900 is what many systems write for a date of birth not known), is "
        "left out with a warning and the contact kept; an `age_band` is used as given.",
        f"- A `contact_date` must be between {EARLIEST_CONTACT_DATE:%d/%m/%Y} and today.",
        "- A file is accepted when no more than 20% of its rows have errors (your collaborative may set another "
        "share). Rows with errors are left out and listed in your feedback report; the rest are kept.",
        "- Each file is the complete extract for every quarter it covers: it replaces what you sent before for "
        "those quarters.",
        "",
        "## How values are read",
        "",
        "- **Dates:** `31/01/2026`, `31/1/26`, `31-01-2026`, `31.01.26`, `31 Jan 2026`, `31 January 26`, "
        "`31-Jan-26`, `2026-01-31` and Excel date cells; a short name with a full stop or as `Sept` (`3 Sept. 2026`); "
        "a month's name before the day (`January 31, 2026`, "
        "`Jan 31 2026`), read whatever the order of the column's other dates; an ordinal (`31st January 2026`, "
        "`January 31st, 2026`), a weekday before the date "
        "(`Saturday 31 January 2026`, `Saturday, January 31, 2026`) and a time after it (`31/01/2026 14:30`) are "
        "ignored, and a time with a zone "
        "(`2026-01-31T23:30:00Z`) gives the date in the UK at that moment. A `contact_date` may be a month alone "
        "(`01/2026`, `Jan-26`, `January 2026`, `2026-01`), since only its month is kept; it is read as the month's "
        "first day. A `date_of_birth` needs its day. "
        "Day/month order is assumed; month/day is used only when at least a fifth of a column's dates make sense "
        "only as month/day (`09/25/2026`) and more of them than only as day/month, and the feedback always says "
        "so. Otherwise a date that makes sense only as month/day is not read, and reported on its row. You can fix "
        "the format with `date_format` in a mapping file.",
        "- **Amounts:** `1250`, `1250.00`, `£1,250.00` and `(1,250.00)` (negative; left out with a warning). A comma "
        "only between thousands: `1250,00` or `1.250,00` (a decimal comma) is not read as an amount, and left out "
        "with a warning.",
        "- **Codes:** the code, the label or any of the words listed under *also accepted*, ignoring capitals, "
        "spaces and punctuation: `Fuel`, `FUEL & ENERGY` and `fuel_energy` are the same. An `age_band` may "
        "also be an age in years (`34`).",
        "- **Local authority:** the ONS code (`E08000025`), the authority's name (`Birmingham`), its council's name "
        "(`Leeds City Council`, `London Borough of Hackney`) or a short name that means one authority only (`Hull`, "
        "`Glasgow`, `Stoke`); a name that could mean two (`Newcastle`, `Kingston`) is never guessed, and the feedback "
        "names the authorities it could be.",
        "- **Postcode:** full (`B15 2TT`) or district (`B15`); if a cell holds an address, only its postcode is used.",
        "- **Blank:** an empty cell, or " + ", ".join(f'"{s}"' for s in BLANK_SPELLINGS) + " (in any capitals).",
        "- **Not answered:** "
        + ", ".join(f'"{s}"' for s in REFUSAL_SPELLINGS)
        + " are blank too: a person's choice not to answer is no answer, and needs no code. In `disability`, "
        "whose codes include it, they are `prefer_not_to_say`.",
        "",
        "## Your own headers and wording",
        "",
        "Your column names are matched to the standard's fields ignoring capitals, spaces, punctuation and "
        'anything in brackets ("Date of Birth (dd/mm/yyyy)" is `date_of_birth`), using the names listed under '
        "each field. A name that gives an amount another period or meaning than the field's, in brackets or not, is "
        'not matched by its name: "Household income (per year)", "Annual income" or "Weekly outgoings" is not read '
        'as a monthly amount, nor "Debt (monthly repayment)" as the total owed; the feedback lists such a column as '
        "not used and says why. Nothing is converted: send the field's own amount, or name the column in a mapping "
        "file if its amounts are in fact what the field holds. A field comes from one column only: when two of "
        'your columns look like one field ("Client ID" and "Case ID", "Date of visit" and "Referral date", "Age" and '
        '"Age band"), name the one to use in a mapping file, and the others are not read (the feedback lists them). '
        "A column with no header is named in a mapping file by its place, as the feedback and suggest-mapping write "
        'it: "(column 3 has no header)" for the third. '
        "Where that is not enough, a mapping file (YAML) says which of your columns holds which "
        "field and what your own wording means. `collab-standard suggest-mapping your-file.csv` writes one "
        "for you to check:",
        "",
        "```yaml",
        "columns:            # your header: standard field",
        "  Ref: person_ref",
        "  When: contact_date",
        "values:             # standard field: {your wording: standard code}",
        "  need:",
        "    UC problem: benefits_income",
        "date_format: '%d/%m/%Y'   # only if your dates are ambiguous",
        "sheet: Contacts           # only for a workbook with several sheets",
        "```",
        "",
        "## Privacy: what is never stored",
        "",
        "- `person_ref` is replaced by a keyed code; `postcode` by its local authority; `date_of_birth` by an "
        "age band; `contact_date` by its month.",
        "- Columns the standard does not use are never stored. Columns holding names, email addresses, phone "
        "numbers, National Insurance or NHS numbers, addresses or notes are removed and named in your feedback "
        "so you can leave them out next time.",
        "- A `person_ref` must be your own code: a file whose references are National Insurance or NHS "
        "numbers, email addresses, phone numbers or names is not accepted.",
        "",
        "## Feedback codes",
        "",
        "Every problem is reported with a stable code. Codes starting `E_` are errors (the row, or for a "
        "file-level code the whole file, is not accepted); `W_` codes are warnings (the data are accepted, "
        "something was changed or left out).",
        "",
        "| code | applies to | what it means | how to fix it |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{t.code}` | {t.scope.value} | {_cell(t.title)} | {_cell(t.fix)} |"
        for t in sorted(ISSUE_TYPES.values(), key=lambda t: (not t.is_error, t.code))
    ]
    return "\n".join(lines) + "\n"


# --- the Excel template -----------------------------------------------------------------------------


def write_excel_template(path: Path) -> Path:
    """The standard as a workbook: a Contacts sheet with one column per field and drop-down lists,
    instructions, the codelists and the local authorities."""
    specs = field_specs()
    workbook = xlsxwriter.Workbook(str(path))
    workbook.set_properties({"title": TITLE, "created": TEMPLATE_CREATED, "author": "Poverty Insight Collaborative"})
    bold = workbook.add_format({"bold": True})
    wrap = workbook.add_format({"text_wrap": True, "valign": "top"})
    heading = workbook.add_format({"bold": True, "font_size": 14})
    required = workbook.add_format({"bold": True, "bg_color": "#1B4F72", "font_color": "#FFFFFF", "border": 1})
    optional = workbook.add_format({"bold": True, "bg_color": "#D6EAF8", "border": 1})
    formats = {
        "Date": workbook.add_format({"num_format": "dd/mm/yyyy"}),
        "Amount": workbook.add_format({"num_format": "£#,##0.00"}),
        "Text": workbook.add_format({"num_format": "@"}),
    }

    instructions = workbook.add_worksheet("Instructions")
    contacts = workbook.add_worksheet("Contacts")
    codes = workbook.add_worksheet("Codes")
    areas = workbook.add_worksheet("Local authorities")

    ranges = _write_codes(codes, bold, wrap)
    authorities = _write_local_authorities(areas, bold)
    _write_instructions(instructions, specs, heading, bold, wrap)

    last = TEMPLATE_ROWS
    contacts.freeze_panes(1, 0)
    for column, spec in enumerate(specs):
        fmt = next((f for prefix, f in formats.items() if spec.kind.startswith(prefix)), None)
        contacts.set_column(column, column, max(14, len(spec.name) + 2), fmt)
        contacts.write(0, column, spec.name, required if spec.requirement == "Required" else optional)
        contacts.write_comment(0, column, f"{spec.requirement}. {spec.description}", {"x_scale": 2, "y_scale": 1.5})
        validation = _validation(spec, ranges, authorities)
        if validation:
            prompt = f"{spec.requirement}. {spec.description}"
            validation |= {"input_title": spec.name[:32], "input_message": prompt[:255]}
            contacts.data_validation(1, column, last, column, validation)
    instructions.activate()
    workbook.close()
    return path


def _validation(spec: FieldSpec, ranges: dict[str, str], authorities: str) -> dict[str, Any] | None:
    warning = {"error_type": "warning", "error_title": "Not what the standard expects"}
    if spec.codelist:
        message = "Choose a code from the list (see the Codes sheet); your own wording needs a mapping file."
        return {"validate": "list", "source": ranges[spec.codelist], "error_message": message} | warning
    if spec.name == "local_authority_code":
        message = "Use an ONS code from the Local authorities sheet, or leave blank and give a postcode."
        return {"validate": "list", "source": authorities, "error_message": message} | warning
    if spec.kind == "Date":
        earliest = EARLIEST_CONTACT_DATE if spec.name == "contact_date" else dt.date(1900, 1, 1)
        limits = {"criteria": "between", "minimum": earliest, "maximum": "=TODAY()"}
        message = f"Enter a date between {earliest:%d/%m/%Y} and today, such as 31/01/2026."
        return {"validate": "date", "error_message": message} | limits | warning
    if spec.kind.startswith(("Amount", "Whole number")):
        schema = _branch(ContactRecord.model_json_schema()["properties"][spec.name])
        kind = "decimal" if spec.kind.startswith("Amount") else "integer"
        limits = {"criteria": "between", "minimum": schema["minimum"], "maximum": schema["maximum"]}
        message = f"Enter a number from {schema['minimum']:,} to {schema['maximum']:,}, without words."
        return {"validate": kind, "error_message": message} | limits | warning
    if spec.name == "person_ref":
        message = f"A reference of 1 to {MAX_TEXT_CHARS} characters: your own code, never a name or NI number."
        limits = {"criteria": "between", "minimum": 1, "maximum": MAX_TEXT_CHARS}
        return {"validate": "length", "error_message": message} | limits | warning
    return None


def _write_codes(sheet: Any, bold: Any, wrap: Any) -> dict[str, str]:
    """Each codelist as a block of three columns; returns the range of each list's codes."""
    ranges: dict[str, str] = {}
    sheet.write(0, 0, "The codes of each coded column. Use the code (first column of each block).", bold)
    for block, name in enumerate(sorted(set(CODELIST_FIELDS.values()))):
        first = block * 4
        codelist = load_codelist(name)
        sheet.write(2, first, name, bold)
        sheet.write_row(3, first, ["code", "label", "meaning"], bold)
        for row, code in enumerate(codelist.codes, start=4):
            sheet.write_row(row, first, [code.code, code.label, code.description])
        sheet.set_column(first, first, 26)
        sheet.set_column(first + 1, first + 1, 24)
        sheet.set_column(first + 2, first + 2, 40, wrap)
        column = xl_col_to_name(first)
        ranges[name] = f"=Codes!${column}$5:${column}${4 + len(codelist.codes)}"
    return ranges


def _write_local_authorities(sheet: Any, bold: Any) -> str:
    authorities = sorted(load_geography().local_authorities.values(), key=lambda la: (la.nation_name, la.name))
    sheet.write_row(0, 0, ["local_authority_code", "name", "region", "nation"], bold)
    for row, la in enumerate(authorities, start=1):
        sheet.write_row(row, 0, [la.code, la.name, la.region_name, la.nation_name])
    sheet.set_column(0, 0, 22)
    sheet.set_column(1, 3, 30)
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, len(authorities), 3)
    return f"='Local authorities'!$A$2:$A${len(authorities) + 1}"


INSTRUCTIONS = (
    "Put one row on the Contacts sheet for each time you helped someone (a contact). Someone helped "
    "three times is three rows with the same person_ref.",
    "Fill in the dark blue columns on every row: person_ref, contact_date and need. Give either "
    "local_authority_code or postcode as well. The light blue columns are optional but valuable: fill "
    "in what your records hold and leave the rest blank.",
    "person_ref is your own reference for the person (a client or case number), the same every time. "
    "Never use a name, National Insurance or NHS number, email address or phone number.",
    "For coded columns, pick from the drop-down list. The Codes sheet explains each code.",
    "Write dates as 31/01/2026 and amounts as plain numbers of pounds (1250.00).",
    "Do not add columns for names, addresses, phone numbers, emails or notes: we never need them, "
    "and they are removed before anything is stored.",
    "Save the workbook as Excel (.xlsx). If you prefer CSV, save the Contacts sheet as 'CSV UTF-8'.",
    "Before you upload, check the file: run `collab-check your-file.xlsx`, or ask your collaborative "
    "contact to. The feedback lists anything to fix, row by row.",
)


def _write_instructions(sheet: Any, specs: list[FieldSpec], heading: Any, bold: Any, wrap: Any) -> None:
    sheet.set_column(0, 0, 30)
    sheet.set_column(1, 1, 26)
    sheet.set_column(2, 2, 60, wrap)
    sheet.set_column(3, 3, 16)
    sheet.set_column(4, 4, 50, wrap)
    sheet.write(0, 0, TITLE, heading)
    sheet.write(1, 0, "How to fill in this template", bold)
    row = 2
    for number, step in enumerate(INSTRUCTIONS, start=1):
        sheet.write(row, 0, f"{number}.")
        sheet.merge_range(row, 1, row, 4, step, wrap)
        sheet.set_row(row, 32)
        row += 1
    row += 1
    sheet.write_row(row, 0, ["Column", "Required?", "What to enter", "Example", "Why we ask"], bold)
    for spec in specs:
        row += 1
        sheet.write_row(
            row, 0, [spec.name, spec.requirement, f"{spec.kind}. {spec.description}", spec.example, spec.why], wrap
        )


# --- everything at once --------------------------------------------------------------------------


def export_standard(directory: Path) -> list[Path]:
    """Write the reference, JSON Schema, CSV template, a one-row example and the Excel template."""
    directory.mkdir(parents=True, exist_ok=True)
    reference = directory / f"{STEM}-reference.md"
    reference.write_text(reference_markdown(), encoding="utf-8")
    schema = directory / f"{STEM}.schema.json"
    schema.write_text(json.dumps(json_schema(), indent=2) + "\n", encoding="utf-8")
    template = directory / f"{STEM}-template.csv"
    with template.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerow(FIELDS)
    example = directory / f"{STEM}-example.csv"
    with example.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        row = example_row()
        row["postcode"] = ""  # one area field is enough
        writer.writerow(row)
    workbook = write_excel_template(directory / f"{STEM}-template.xlsx")
    return [reference, schema, template, example, workbook]
