"""The charity's checker, ``collab-check FILE`` (also ``collab check``), and ``collab-standard`` (also
``collab standard``): propose a mapping, export the standard.

This is what a charity installs (``pip install`` with no extras) and runs on its own machine: it
imports the standard and nothing of the analyst's stack (no Dagster, DuckDB, S3 or Great
Expectations), so it starts in well under a second and runs on Windows, macOS and Linux.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console, ConsoleOptions, ConsoleRenderable, RenderHook, RenderResult
from rich.markup import escape
from rich.segment import Segment
from rich.table import Table

if TYPE_CHECKING:
    from standards.feedback import FeedbackReport
    from standards.mapping import CharityMapping

# Characters a terminal acts on instead of showing: C0 and C1 controls but tab and line feed (a column named with an
# escape sequence set the analyst's terminal title and cleared the screen), and the bidirectional formatting
# characters, which reorder what follows them (a name ending "\u202excsl.exe" shows as "exe.lscx").
_ACTED_ON = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def shown_in_terminal(text: str) -> str:
    """``text`` with each character a terminal would act on (``_ACTED_ON``) shown as the replacement character."""
    return _ACTED_ON.sub("\ufffd", text)


class _ShownInTerminal:
    """A renderable as rendered, with ``shown_in_terminal`` applied to its text (not to the console's own styles)."""

    def __init__(self, renderable: ConsoleRenderable) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for segment in console.render(self.renderable, options):
            yield segment if segment.control else Segment(shown_in_terminal(segment.text), segment.style)


class _OnlyShownText(RenderHook):
    """Everything the console prints goes through ``shown_in_terminal``: file names, column names and values come
    from charities' files, and reach a table, a message or a report from many places."""

    def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
        return [_ShownInTerminal(renderable) for renderable in renderables]


def _console(*, stderr: bool = False) -> Console:
    # No highlighting: its regular expressions backtrack over text from charities' files (a header of digits and
    # dashes, in "Columns found", took 30 s; 60 headers of "<", 130 s).
    made = Console(stderr=stderr, highlight=False)
    made.push_render_hook(_OnlyShownText())
    return made


console = _console()
errors = _console(stderr=True)

_json_asked = False


def _ask_for_json(asked: bool) -> bool:
    global _json_asked
    _json_asked = asked
    return asked


JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON instead of text.", callback=_ask_for_json)


def emit_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


def fail(message: str, code: int = 1, *, as_json: dict[str, Any] | None = None) -> NoReturn:
    """Say why the command stops, on standard error, and exit with ``code``; with --json, as JSON on standard output
    too (``as_json``, or ``{"error": ..., "exit_code": ...}``): an analyst's trial found some commands' refusals
    JSON, others text."""
    errors.print(f"[bold red]Error:[/] {escape(message)}", highlight=False)
    if _json_asked:
        emit_json(as_json or {"error": message, "exit_code": code})
    raise typer.Exit(code)


# The standard's modules (polars, pydantic models, codelists) are imported by the command that needs
# them, not at start-up, so `--help` and a usage error answer at once.


def _load_mapping(path: Path | None) -> CharityMapping | None:
    from standards.mapping import CharityMapping

    if path is None:
        return None
    try:
        return CharityMapping.load(path)
    except (OSError, ValueError) as error:
        fail(f"the mapping file {path} could not be used: {error}", code=2)


def check(
    file: Path = typer.Argument(..., help="The extract to check (CSV, Excel .xlsx or Parquet)."),
    mapping: Path | None = typer.Option(None, "--mapping", help="Your mapping file (YAML)."),
    html: Path | None = typer.Option(
        None, "--html", help="Also write the full feedback report, with every row that has a problem, as a web page."
    ),
    rejected_rows: Path | None = typer.Option(
        None,
        "--rejected-rows",
        help="Also write every rejected row with its reasons (CSV, safe to open in a spreadsheet).",
    ),
    linkage: bool = typer.Option(
        True,
        "--linkage/--no-linkage",
        help="Your charity takes part in record linkage (the default for a new charity), so surnames that cannot be "
        "linked are pointed out; --no-linkage if it does not.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Check a file against the standard locally: no server, nothing stored.

    Exit code 0 if the file would be accepted (with or without warnings), 1 if rejected, 2 on a usage error.
    """
    if not file.is_file():
        fail(f"{file} is not a file", code=2)
    for option, target in (("--html", html), ("--rejected-rows", rejected_rows)):
        if target is not None:
            _refuse_unwritable(option, target)
    command = "collab-check" if Path(sys.argv[0]).name.startswith("collab-check") else "collab check"
    from standards.check import CheckOptions, check_extract
    from standards.rows import RowFiles, read_affected

    with tempfile.TemporaryDirectory(prefix="collab-check-") as scratch:
        affected = Path(scratch) / "affected.jsonl" if html is not None else None
        with RowFiles(rejected=rejected_rows, affected=affected) as rows:
            options = CheckOptions(links_records=linkage)
            listing = rows if rows.wanted else None
            report = check_extract(file, mapping=_load_mapping(mapping), options=options, on_rows=listing).report
        try:
            if rejected_rows is not None and not rejected_rows.exists():
                rejected_rows.write_text("row,issue_codes,messages\n", encoding="utf-8")  # none rejected: headers only
            if html is not None and affected is not None:
                html.write_text(report.to_html(read_affected(affected)), encoding="utf-8")
        except OSError as error:
            fail(f"{error.filename} could not be written ({error.strerror}).", code=2)
    if as_json:
        emit_json(report.model_dump(mode="json"))
    else:
        _print_report(report)
        if rejected_rows is not None:
            console.print(f"Rejected rows, with their reasons: {escape(str(rejected_rows))}")
        if html is not None:
            console.print(f"Full report: {escape(str(html))}")
        elif report.issues:
            again = f"{command} {file}" + (f" --mapping {mapping}" if mapping else "") + " --html report.html"
            console.print(escape(f"For the full report with every example: {again}"))
    raise typer.Exit(0 if report.accepted else 1)


def _refuse_unwritable(option: str, target: Path) -> None:
    """A usage error, before the file is checked, if ``target`` cannot be written: given a folder, or a file in a
    folder that does not exist or cannot be written to, the check ran to the end and then ended in a traceback."""
    if target.is_dir():
        problem = "is a folder"
    elif not target.parent.is_dir():
        problem = "is in a folder that does not exist"
    elif not os.access(target.parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        problem = "cannot be written to"
    else:
        return
    fail(f"{option} {target} {problem}; give the name of a file to write, in a folder that exists.", code=2)


def _print_report(report: FeedbackReport) -> None:
    from standards.feedback import share_of_rows

    colour = {"accepted": "green", "accepted_with_warnings": "yellow", "rejected": "red"}[report.status]
    console.print(f"[bold {colour}]{escape(report.headline())}[/]")
    console.print(escape(report.next_step()))
    described = report.file
    if described.columns_used:
        where = f"sheet '{described.sheet}', " if described.sheet else ""
        console.print(
            escape(
                f"Read as {(described.format or '').upper()} ({where}header on {described.header_rows_shown}); "
                f"{len(described.columns_used)} column(s) used, {len(described.columns_not_used)} not used."
            )
        )
    for group in report.issues:
        console.print()
        mark = "[red]✗[/]" if group.severity == "error" else "[yellow]![/]"
        times = "" if group.scope == "file" else f" — {group.count:,} time(s)"
        share = f", {share_of_rows(group.share_of_rows)} of rows" if group.share_of_rows else ""
        console.print(f"{mark} [bold]{escape(group.title)}[/] ({group.code}){times}{share}")
        if group.values:
            for value in group.values[:5]:
                rows = ", ".join(str(r) for r in value.rows[:3])
                console.print(escape(f"    '{value.column}': {value.value!r} × {value.count:,} (rows {rows}…)"))
        else:
            for example in group.examples[:3]:  # rows as the spreadsheet shows them
                where = f"row {example.row}: " if example.row else ""
                console.print(escape(f"    {where}{example.message}"))
        if group.allowed_codes:
            console.print(escape(f"    The codes are: {', '.join(group.allowed_codes)}."))
        console.print(escape(f"    What to do: {group.fix}"), style="dim" if group.severity == "warning" else None)


def export(directory: Path = typer.Argument(..., help="Where to write the reference, schema and templates.")) -> None:
    """Write the standard's reference (Markdown), JSON Schema, CSV and Excel templates and an example,
    all generated from the pydantic model."""
    from standards.export import export_standard

    for path in export_standard(directory):
        console.print(f"Wrote {escape(str(path))}")


def suggest_mapping_file(
    file: Path = typer.Argument(..., help="A sample extract in your own format."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Where to write the mapping file [default: FILE's name + .mapping.yaml]."
    ),
    sheet: str | None = typer.Option(None, "--sheet", help="The Excel sheet holding the contacts."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing mapping file."),
    as_json: bool = JsonOption,
) -> None:
    """Propose a mapping file from a sample extract: which columns hold which field, and what your wording means."""
    if not file.is_file():
        fail(f"{file} is not a file", code=2)
    target = output or file.with_name(f"{file.stem}.mapping.yaml")
    if target.exists() and not force:
        fail(f"{target} exists; choose another --output or add --force", code=2)
    from standards.issues import FileRejected
    from standards.suggest import suggest_mapping

    try:
        suggestion = suggest_mapping(file, sheet=sheet)
    except FileRejected as rejection:
        fail(f"{rejection.message} ({rejection.code})")
    target.write_text(suggestion.text, encoding="utf-8")
    if as_json:
        emit_json(
            {
                "mapping_file": str(target),
                "mapping": suggestion.mapping.model_dump(exclude_defaults=True),
                "columns": [vars(column) for column in suggestion.columns],
                "missing": suggestion.missing,
                "values_to_choose": suggestion.values_to_choose,
            }
        )
        return
    table = Table("your column", "standard field", "how", title="Proposed mapping")
    for column in suggestion.columns:
        how = column.how + (f"; holds {', '.join(column.personal_data)}" if column.personal_data else "")
        table.add_row(escape(column.header), column.field or "—", escape(how))
    console.print(table)
    if suggestion.missing:
        console.print(f"[red]Missing:[/] no column holds {', '.join(suggestion.missing)}.")
    for name, wording in suggestion.values_to_choose.items():
        console.print(f"[yellow]Choose codes[/] for {name}: {escape(', '.join(wording))}")
    console.print(
        f"Wrote {escape(str(target))}. Check it, then: collab-check {escape(str(file))} --mapping {escape(str(target))}"
    )


checker = typer.Typer(
    name="collab-check",
    help="Check an extract against the Charity Service-User Extract standard, on your own computer.",
    add_completion=False,
    pretty_exceptions_enable=False,
)
checker.command()(check)

standard_app = typer.Typer(
    name="collab-standard",
    help="The Charity Service-User Extract standard: propose a mapping for your own format, or export the standard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
standard_app.command("suggest-mapping")(suggest_mapping_file)
standard_app.command("export")(export)


def main() -> None:
    # Stopped (a terminal closed, a job killed), the checker ends as on an error of its own, so that what it was
    # writing is removed: a large sheet is read through files of its text (``standards.sheet_process``).
    signal.signal(signal.SIGTERM, _end)
    checker()


def _end(signal_number: int, frame: object) -> None:
    raise SystemExit(128 + signal_number)


def standard_main() -> None:
    standard_app()
