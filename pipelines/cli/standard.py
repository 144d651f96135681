"""``collab check`` and ``collab standard ...``: what a charity runs before uploading."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from pipelines.cli.app import JsonOption, app, console, emit_json, fail
from standards.check import check_extract
from standards.export import export_standard
from standards.mapping import CharityMapping

standard_app = typer.Typer(help="The Charity Service-User Extract standard.", no_args_is_help=True)
app.add_typer(standard_app, name="standard")


@app.command()
def check(
    file: Path = typer.Argument(..., help="The extract to check."),
    mapping: Path | None = typer.Option(None, "--mapping", help="Your mapping file (YAML)."),
    as_json: bool = JsonOption,
) -> None:
    """Check a file against the standard locally: no server, nothing stored.

    Exit code 0 if the file would be accepted (with or without warnings), 1 if rejected, 2 on a usage error.
    """
    if not file.is_file():
        fail(f"{file} is not a file", code=2)
    try:
        parsed = CharityMapping.load(mapping) if mapping else None
    except (OSError, ValidationError, ValueError) as error:
        fail(f"the mapping file could not be used: {error}", code=2)
    report = check_extract(file, mapping=parsed).report
    if as_json:
        emit_json(report.model_dump(mode="json"))
    else:
        colour = {"accepted": "green", "accepted_with_warnings": "yellow", "rejected": "red"}[report.status]
        console.print(f"[bold {colour}]{report.headline()}[/]")
        if report.issues:
            table = Table("", "code", "count", "what to do", "first example", show_lines=True)
            for group in report.issues:
                first = group.examples[0] if group.examples else None
                where = f"row {first.row}: " if first and first.row else ""
                table.add_row(
                    "✗" if group.severity == "error" else "!",
                    group.code,
                    f"{group.count:,}",
                    group.fix,
                    escape(where + (first.message if first else "")),
                )
            console.print(table)
    raise typer.Exit(0 if report.accepted else 1)


@standard_app.command("export")
def export(directory: Path = typer.Argument(..., help="Where to write the schema and templates.")) -> None:
    """Write the standard's JSON Schema and CSV template (generated from the pydantic model)."""
    for path in export_standard(directory):
        console.print(f"Wrote {path}")
