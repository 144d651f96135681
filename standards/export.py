"""Artefacts generated from ``ContactRecord``: the JSON Schema and the CSV template."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from standards.extract import FIELDS, ContactRecord


def json_schema() -> dict[str, object]:
    return ContactRecord.model_json_schema()


def example_row() -> dict[str, object]:
    return {name: (field.examples or [""])[0] for name, field in ContactRecord.model_fields.items()}


def export_standard(directory: Path) -> list[Path]:
    """Write the JSON Schema, an empty CSV template and a one-row example into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    schema = directory / "contact-extract-v1.schema.json"
    schema.write_text(json.dumps(json_schema(), indent=2), encoding="utf-8")
    template = directory / "contact-extract-v1-template.csv"
    with template.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerow(FIELDS)
    example = directory / "contact-extract-v1-example.csv"
    with example.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        row = example_row()
        row["postcode"] = ""  # one area field is enough
        writer.writerow(row)
    return [schema, template, example]
