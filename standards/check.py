"""Check an extract against the standard: the one entry point for charities and the pipeline.

``check_extract`` reads the file in batches, maps its columns, normalises and validates every row,
and returns the feedback report. The pipeline passes a
``ContactSink`` to receive the accepted contacts and the rejected rows as they are found; a charity
checking a file before upload passes none, and nothing is kept.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import polars as pl

from standards.extract import DATE_FIELDS
from standards.feedback import FeedbackReport, FileDescription, IssueCollector
from standards.issues import FileRejected, Issue
from standards.mapping import (
    CharityMapping,
    ColumnPlan,
    column_label,
    column_letter,
    find_header,
    header_score,
    mapped_columns_missing,
    plan_columns,
)
from standards.normalise import (
    ISO_FORMATS,
    MONTH_FIRST_FORMATS,
    DateReading,
    choose_date_reading,
    normalise_batch,
)
from standards.personal_data import PersonalDataScreen
from standards.reading import (
    FAILURES,
    ExtractSource,
    ReadLimits,
    SheetCells,
    open_extract,
    refuse_unreadable_used,
)
from standards.validation import BatchOutcome, BatchRows, RowOutcome, validate_batch
from standards.validation import contacts_frame as contacts_frame  # where callers have always found it

# Batches judged at once: three keep both of two cores busy while this thread reads and keeps batches (with two,
# 1M rows took 4.32 to 4.40 s, with three 4.14 to 4.16 s, for 50 MB more), and bound the memory of a file's check.
JUDGED_AT_ONCE = 3
# The most cells a batch holds, however wide the file: 25,000 rows of a file as wide as one may be (500 columns), as
# the pipeline's batches of 25,000 rows once were, and ``CheckOptions.batch_size`` rows of up to 125 columns. 60,000
# rows of 500 columns: 2.9 s and 746 MB at the peak; at 2,000,000 cells, 7.4 s and 393 MB; uncapped (one batch),
# 2.7 s and 722 MB. The standard's file of 1,000,000 rows (15 columns) in batches of 100,000 rows: 2.86 to 2.91 s and
# 620 MB, against 3.52 to 3.68 s and 517 MB in batches of 25,000.
MAX_BATCH_CELLS = 12_500_000


@dataclass(frozen=True)
class CheckOptions:
    max_row_error_share: float = 0.2
    batch_size: int = 100_000
    limits: ReadLimits = field(default_factory=ReadLimits)
    # Whether the charity takes part in record linkage: only then is a person it cannot link worth a warning. Every
    # caller says: the pipeline and the portal from the registry, `collab-check` from its --linkage/--no-linkage
    # (linking by default, as new charities do, ``collab charity add``).
    links_records: bool = False


class ContactSink(Protocol):
    """Receives a file's accepted contacts and rejected rows, batch by batch."""

    def accepted(self, contacts: pl.DataFrame) -> None: ...

    def rejected(self, rows: Sequence[RowOutcome]) -> None: ...


@dataclass
class CheckResult:
    report: FeedbackReport
    # An error of ours (not of the file) that stopped the check, and the reference the report gives for it.
    internal_error: BaseException | None = None
    reference: str | None = None


# Rows of a batch with a note of their own, each note with its rows: a repeated header, a row of totals or one with
# nothing in the columns read (skipped: no contacts), a row repeating an earlier one or hidden in a sheet (read).
RowNotes = list[tuple[Issue, list[int]]]


HEADER_REPEATED = Issue(
    "W_HEADER_REPEATED",
    "This row repeats the header row (two exports joined into one file?); it was skipped, not counted as a contact.",
)


HIDDEN_ROW = Issue(
    "W_HIDDEN_ROWS_READ",
    "This row is hidden in the workbook (by hand, by a filter or in a collapsed group); it was read like the others.",
)
UNCALCULATED_ROW = Issue(
    "W_FORMULAS_NOT_CALCULATED",
    "A cell of this row holds a formula saved without its result (the program that saved the workbook did not "
    "calculate it); it was read as blank.",
)
TOTALS_ROW = Issue(
    "W_TOTALS_ROW",
    "This row looks like a row of totals (a cell says 'Total' and it has no contact date); it was skipped, not counted "
    "as a contact.",
)
# What a spreadsheet's row of totals starts one of its cells with: "Total", "Totals:", "Grand total", "Sub-total",
# "Sum", "Count", "Total contacts: 6", "TOTAL (6)"; or ends one with, as hand-kept sheets label a month's: "July total",
# "August Subtotal:" (read as contacts, they were two rows of errors: the volunteer trial).
TOTALS_LABEL = r"(?i)^\s*(?:(?:grand|sub)[\s-]*)?(?:totals?|sum|count)\b|\b(?:sub[\s-]*)?totals?\s*:?\s*$"


TEXT_LINE_ROW = Issue(
    "W_TEXT_LINE_ROW",
    "This row holds only a line of text in one cell and no contact date (a report's footer, such as 'Report "
    "generated ... by ...', or a note); it was skipped, not counted as a contact.",
)
# The fewest words a cell standing alone in an undated row holds to be a line of text: a reference or a name alone
# ("C5", "Jane Smith") is a contact with values missing, and told as one.
TEXT_LINE_WORDS = 3


ROW_REPEATED = Issue(
    "W_ROWS_REPEATED",
    "This row repeats an earlier row of the file in every cell; it was counted as a contact again.",
)
OUTSIDE_COLUMNS_ROW = Issue(
    "W_ROW_OUTSIDE_COLUMNS",
    "This row holds something only in columns that are not read (a note beside the table, say); it was skipped, not "
    "counted as a contact.",
)


@dataclass(frozen=True)
class _Judged:
    """A batch as judged, with all that can be worked out of it alone: what keeping it (in the file's order, on the
    reading thread) takes is done while the next batches are read and judged."""

    rows: int
    contacts: pl.DataFrame  # the accepted rows (``BatchOutcome.contacts``)
    quarters: list[str]
    issues: list[tuple[Issue, list[int]]]  # ``BatchOutcome.issues_at_rows``
    rejected_rows: int
    noted: RowNotes
    counts: dict[str, int | None]  # the personal data screen's
    identified: tuple[pl.Series, pl.Series] | None  # ``identified_references``, for a charity that links records
    # Kept when rows go to a sink or are listed (``on_rows``): a ``RowOutcome`` for each is made as the batch is kept,
    # one batch at a time. Made as batches were judged (three at once, for every check), a file of 250,000 rows with
    # 15 problems each took the check to 1.2 GB.
    outcome: BatchOutcome | None


def rows_outside_columns(batch: pl.DataFrame, used: list[int]) -> list[int]:
    """The rows (``__row``) of ``batch`` with nothing in any of the ``used`` columns (by position): a note beside the
    table, in a column with no header, is no contact (it was three missing values, and tipped a small file into
    rejection). Found among the rows without a reference, which a file of contacts has few of."""
    blank = [_blank(f"c{position}") for position in used]
    candidates = batch.filter(blank[0])
    if not candidates.height:
        return []
    return candidates.filter(pl.all_horizontal(blank)).get_column("__row").to_list()


def totals_rows(batch: pl.DataFrame, date_column: str | None) -> list[int]:
    """The rows (``__row``) of ``batch`` that are a spreadsheet's totals, not contacts: no contact date (in
    ``date_column``, the cells of the contact date), and a cell that says "Total" (``TOTALS_LABEL``). Only the rows
    without a date are searched: a file of contacts has few."""
    if date_column is None:
        return []
    undated = batch.filter(_blank(date_column))
    if not undated.height:
        return []
    says_total = pl.any_horizontal(pl.col(name).cast(pl.String).str.contains(TOTALS_LABEL) for name in _cells(undated))
    return undated.filter(says_total.fill_null(False)).get_column("__row").to_list()


def text_line_rows(batch: pl.DataFrame, date_column: str | None) -> list[int]:
    """The rows (``__row``) of ``batch`` that are a line of text, not a contact: no contact date, and one cell only,
    of ``TEXT_LINE_WORDS`` words or more. A CRM's report ends with such lines ("Report generated 02/11/2026 09:14 by
    Jane Smith", "Filter: All clients"): read as contacts, they were rows of errors that rejected a small file."""
    if date_column is None:
        return []
    cells = _cells(batch)
    undated = batch.filter(_blank(date_column))
    if not undated.height:
        return []
    alone = pl.sum_horizontal(~_blank(name) for name in cells) == 1
    undated = undated.filter(alone)
    if not undated.height:
        return []
    text = pl.concat_str([pl.col(name).cast(pl.String).fill_null("") for name in cells]).str.strip_chars()
    wordy = text.str.count_matches(r"\S+") >= TEXT_LINE_WORDS
    return undated.filter(wordy).get_column("__row").to_list()


def _blank(column: str) -> pl.Expr:
    """Whether a cell of ``column`` holds nothing but spaces."""
    return pl.col(column).cast(pl.String).str.strip_chars().fill_null("") == ""


def _cells(batch: pl.DataFrame) -> list[str]:
    """The columns of ``batch`` holding the file's cells (``c0``...), not the row's number and count of cells."""
    return [name for name in batch.columns if name[0] == "c" and name[1:].isdigit()]


def new_reference() -> str:
    """A reference for an internal error: shown to the charity, and naming the analyst's record of it."""
    return f"ref-{uuid.uuid4().hex[:12]}"


def internal_error_issue(reference: str) -> Issue:
    return Issue(
        "E_INTERNAL",
        f"The check of this file stopped on an error in our software (reference {reference}), not because of "
        "anything in the file that we know of. Nothing from it has been used.",
    )


def check_extract(
    path: Path,
    *,
    mapping: CharityMapping | None = None,
    file_name: str | None = None,
    submission_id: str | None = None,
    charity_id: str | None = None,
    options: CheckOptions = CheckOptions(),
    sink: ContactSink | None = None,
    on_rows: Callable[[BatchRows], None] | None = None,
) -> CheckResult:
    """Check one file and return its feedback report (never raises for a bad file).

    ``on_rows`` receives every batch's rows (``BatchRows``), in the file's order: what lists every affected row (the
    report itself keeps only examples, so its size never grows with the file).
    """
    mapping = mapping or CharityMapping()
    report = FeedbackReport(
        submission_id=submission_id,
        charity_id=charity_id,
        file_name=file_name or path.name,
        checked_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
        status="rejected",
        rows_received=0,
        rows_accepted=0,
        rows_rejected=0,
        max_row_error_share=options.max_row_error_share,
    )
    collector = IssueCollector()
    internal_error: BaseException | None = None
    reference: str | None = None
    quarters: set[str] = set()
    source: ExtractSource | None = None
    screen: PersonalDataScreen | None = None
    references: IdentifiedReferences | None = None
    try:
        source = open_extract(
            path,
            sheet=mapping.sheet,
            header_score=lambda row: header_score(row, mapping),
            names_contacts=lambda row: _names_contacts(row, mapping),
            limits=options.limits,
        )
        for note in source.notes:
            collector.add(note)
        if skipped := [name for name, holds_contacts in source.other_sheets.items() if holds_contacts]:
            names = ", ".join(repr(name) for name in skipped)
            message = (
                f"Only the sheet {source.sheet!r} was read; {names} also {'looks' if len(skipped) == 1 else 'look'} "
                f"like contacts and {'was' if len(skipped) == 1 else 'were'} not read."
            )
            collector.add(Issue("W_OTHER_SHEETS_IGNORED", message))
        source.use_header(*(find_header(source.preview, mapping) if source.format != "parquet" else (1, None)))
        for name, field_name in mapped_columns_missing(source.header, mapping).items():
            message = (
                f"Your mapping file names a column '{name}' (for {field_name}) that this file does not have, so "
                f"{field_name} was not read from it."
            )
            collector.add(Issue("W_MAPPED_COLUMN_MISSING", message, column=name))
        plan = plan_columns(source.header, mapping)
        report.file = FileDescription(
            format=source.format,
            encoding=source.encoding,
            delimiter=source.delimiter,
            sheet=source.sheet,
            header_row=source.header_row,
            header_rows=source.header_rows,
            columns_used={column_label(plan.header, p): name for name, p in plan.fields.items()},
            columns_not_used=[column_label(plan.header, p) for p in plan.unused],
            columns_not_used_because={column_label(plan.header, p): why for p, why in plan.unused_because.items()},
        )
        for note in _hidden_columns_read(plan, (source.sheet_cells or SheetCells()).hidden_columns):
            collector.add(note)
        screen = PersonalDataScreen(plan)
        references = IdentifiedReferences()
        dates: dict[str, DateReading] = {}

        # Compared as they are, not stripped or lower-cased: a joined export repeats its header exactly, and exact
        # comparison costs a batch of 100,000 rows a few milliseconds.
        repeats_header = pl.all_horizontal(
            pl.col(f"c{position}") == plan.header[position] for position in plan.fields.values()
        ).fill_null(False)

        date_column = f"c{plan.fields['contact_date']}" if "contact_date" in plan.fields else None
        # The reference's column first: the rows without one are the only ones searched further.
        used = sorted(plan.fields.values(), key=lambda position: position != plan.fields.get("person_ref"))
        cells = source.sheet_cells or SheetCells()
        hidden_rows = pl.Series(cells.hidden, dtype=pl.Int64).implode()
        uncalculated_rows = pl.Series(cells.uncalculated, dtype=pl.Int64).implode()

        def judge(batch: pl.DataFrame) -> _Judged:
            # Two exports joined into one file repeat the header, and a spreadsheet's export can end with a row of
            # totals: such a row is no contact, and no error either.
            repeated = batch.get_column("__row").filter(batch.select(repeats_header).to_series()).to_list()
            copies: list[int] = []
            if repeated:
                batch = batch.filter(~repeats_header)
                # Joined exports may be the same export twice: its rows, counted again, are pointed out (not dropped:
                # two contacts can be alike in every cell). Only here, where a header repeats: finding them in every
                # batch would cost every file, and within a batch is where a charity's joined exports are.
                first = batch.select(pl.struct(_cells(batch)).is_first_distinct()).to_series()
                copies = batch.get_column("__row").filter(~first).to_list()
            totals = totals_rows(batch, date_column)
            outside = rows_outside_columns(batch, used)
            if totals or outside:
                batch = batch.filter(~pl.col("__row").is_in([*totals, *outside]))
            text_lines = text_line_rows(batch, date_column)
            if text_lines:
                batch = batch.filter(~pl.col("__row").is_in(text_lines))
            normalised = normalise_batch(batch, plan, mapping, dates)
            counts = screen.count(batch, normalised)
            judged = validate_batch(normalised, plan, links_records=options.links_records)
            hidden = batch.get_column("__row").filter(batch.get_column("__row").is_in(hidden_rows)).to_list()
            uncalculated = (
                batch.get_column("__row").filter(batch.get_column("__row").is_in(uncalculated_rows)).to_list()
            )
            noted = [
                (i, rows)
                for i, rows in (
                    (HEADER_REPEATED, repeated),
                    (ROW_REPEATED, copies),
                    (TOTALS_ROW, totals),
                    (OUTSIDE_COLUMNS_ROW, outside),
                    (TEXT_LINE_ROW, text_lines),
                    (HIDDEN_ROW, hidden),
                    (UNCALCULATED_ROW, uncalculated),
                )
                if rows
            ]
            return _Judged(
                rows=judged.rows,
                contacts=judged.contacts,
                quarters=judged.contacts.get_column("quarter").unique().to_list(),
                issues=list(judged.issues_at_rows()),
                rejected_rows=judged.rejected_rows,
                noted=noted,
                counts=counts,
                identified=identified_references(judged.contacts) if options.links_records else None,
                outcome=judged if sink is not None or on_rows is not None else None,
            )

        def take(judged: _Judged) -> None:
            """What is kept of a judged batch, in the file's order."""
            for issue, rows in judged.noted:
                collector.add_alike(issue, rows)
            if judged.identified is not None:
                references.add(judged.identified)
            screen.add(judged.counts)
            touched: dict[str, set[int]] = {}
            for issue, rows in judged.issues:
                collector.add_alike(issue, rows)
                touched.setdefault(issue.code, set()).update(rows)
            for code, rows_with_code in touched.items():
                collector.add_rows_with(code, len(rows_with_code))
            quarters.update(judged.quarters)
            report.rows_received += judged.rows
            report.rows_rejected += judged.rejected_rows
            if on_rows is not None and judged.outcome is not None:
                on_rows(judged.outcome.listed())
            if sink is not None and judged.outcome is not None:
                sink.accepted(judged.contacts)
                for rejected in judged.outcome.rejected_in_parts():
                    sink.rejected(rejected)

        rows_per_batch = max(1, min(options.batch_size, MAX_BATCH_CELLS // max(len(plan.header), 1)))
        # Batches are judged JUDGED_AT_ONCE at a time while the next is read and the last is kept: Polars
        # releases the GIL, so both cores work.
        with ThreadPoolExecutor(max_workers=JUDGED_AT_ONCE) as pool:
            judging: deque[Future[_Judged]] = deque()
            try:
                for batch in source.batches(rows_per_batch):
                    refuse_unreadable_used(source, plan.fields.values())
                    if not dates:
                        dates = _date_readings(batch, plan.fields, plan.header, mapping)
                        plan.month_first_dates = frozenset(name for name, read in dates.items() if read.month_first)
                        for reading in dates.values():
                            if reading.note:
                                collector.add(reading.note)
                    judging.append(pool.submit(judge, batch))
                    if len(judging) == JUDGED_AT_ONCE:
                        take(judging.popleft().result())
                while judging:
                    take(judging.popleft().result())
            except FileRejected:
                # The rows read before the file stopped count, as when batches were judged one by one.
                while judging:
                    take(judging.popleft().result())
                raise
            finally:
                for unfinished in judging:  # after an error of ours: nothing more is kept
                    unfinished.cancel()
        report.rows_accepted = report.rows_received - report.rows_rejected
        if (problem := screen.reference_problem()) is not None:
            raise problem
        if report.rows_received == 0:
            raise FileRejected("E_NO_DATA_ROWS", "The file has a header row but no rows of contacts below it.")
        share = report.rows_rejected / report.rows_received
        if share > options.max_row_error_share:
            raise FileRejected(
                "E_TOO_MANY_ROW_ERRORS",
                f"{report.rows_rejected:,} of {report.rows_received:,} rows ({share:.0%}) have errors, more than the "
                f"{options.max_row_error_share:.0%} allowed, so none of the file's rows can be kept.",
            )
    except FileRejected as rejection:
        collector.add(rejection.issue())
        report.rows_accepted = 0
        report.rows_rejected = report.rows_received
    except FAILURES as error:  # any error of ours becomes this file's E_INTERNAL, never a crash
        internal_error, reference = error, new_reference()
        collector.add(internal_error_issue(reference))
        report.rows_accepted = 0
        report.rows_rejected = report.rows_received
    if screen is not None:
        for note in screen.issues(kept=report.rows_accepted > 0):
            collector.add(note)
    # Told once the file's fate is known: a rejected file's contacts are not kept (a charity's trial was told they
    # were).
    if references is not None and (unlinkable := references.not_identified(kept=report.rows_accepted > 0)):
        collector.add(unlinkable)
    report.issues = collector.groups(report.rows_received)
    report.quarters = sorted(quarters) if report.rows_accepted else []
    if any(g.severity == "error" and g.scope == "file" for g in report.issues):
        report.status = "rejected"
    else:
        report.status = "accepted_with_warnings" if report.issues else "accepted"
    return CheckResult(report=report, internal_error=internal_error, reference=reference)


def identified_references(contacts: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
    """The references of a batch's accepted contacts, and those of them with a contact that carries an identity
    (``linkage_basis``: surname, date of birth and postcode together), each once, as 64-bit hashes: as text, 4,000,000
    references of 64 characters took the check to 1.96 GB. Two of 10,000,000 references share a hash once in some
    300,000 files, and only the count of people the warning gives would then be one short."""
    reference = pl.col("person_ref").hash()
    seen = contacts.select(reference.unique()).to_series()
    identified = contacts.filter(pl.col("linkage_basis").is_not_null()).select(reference.unique()).to_series()
    return seen, identified


class IdentifiedReferences:
    """Whether each reference of a file carries an identity in any of its contacts, batch by batch; memory follows
    the distinct references. At a charity that links records, a reference with none cannot be linked, and releases
    leave its contacts out (``privacy.bounding.hold_period``): the charity is told, or its figures vanish unsaid.
    Kept as two sets of hashes (``identified_references``), merged now and then: a table of each reference and
    whether it was identified, grouped, took three times the memory (452 MB against 143 for 3,000,000 references)."""

    def __init__(self) -> None:
        self._seen: list[pl.Series] = []
        self._identified: list[pl.Series] = []

    def add(self, references: tuple[pl.Series, pl.Series]) -> None:
        seen, identified = references
        self._seen.append(seen)
        self._identified.append(identified)
        if len(self._seen) > 8:  # merged now and then: each batch's references mostly recur
            self._seen, self._identified = [_each_once(self._seen)], [_each_once(self._identified)]

    def not_identified(self, *, kept: bool) -> Issue | None:
        """The warning for the file, if any of its references carries no identity; ``kept``: whether the file's
        contacts are (it is not rejected)."""
        if not self._seen:
            return None
        people = _each_once(self._seen).len()
        missing = people - _each_once(self._identified).len()
        if not missing:
            return None
        return Issue(
            "W_PEOPLE_NOT_LINKABLE",
            f"{missing:,} of the {people:,} people in this file (by person reference) have no contact with a "
            "surname, a date of birth and a postcode together. Your charity takes part in record linkage, which "
            "recognises a person helped by several charities by those three; a person it cannot recognise is not "
            "counted in the collaborative's published figures (counted apart at each charity, they would get less "
            "privacy protection than is promised). "
            + (
                "Their contacts are kept, and count once the details are sent."
                if kept
                else "Once the file is accepted, their contacts are kept, and count once the details are sent."
            ),
        )


def _each_once(parts: list[pl.Series]) -> pl.Series:
    return pl.concat(parts).unique()


def _hidden_columns_read(plan: ColumnPlan, hidden_columns: pl.Series) -> list[Issue]:
    """A warning for each column read for a field that the workbook hides (the charity never sees what was sent from
    it: a charity trial's hidden column was read without a word). A hidden column not read is not pointed out: the
    feedback lists it among the columns not used, as any other, and nothing of it is kept."""
    hidden = set(hidden_columns.to_list())
    notes = []
    for name, position in plan.fields.items():
        if position in hidden:
            label = column_label(plan.header, position)
            message = (
                f"Column {column_letter(position)} ('{label}') is hidden in the workbook; it was read like the others, "
                f"as {name}."
            )
            notes.append(Issue("W_HIDDEN_COLUMNS_READ", message, column=label))
    return notes


def _names_contacts(header: list[str], mapping: CharityMapping) -> bool:
    """Whether a header row names every required field, each once."""
    try:
        plan_columns(header, mapping)
    except FileRejected:
        return False
    return True


def _date_readings(
    batch: pl.DataFrame, planned: dict[str, int], header: list[str], mapping: CharityMapping
) -> dict[str, DateReading]:
    """How each date column is read. One export writes every date of a file in one order: a column whose every date
    could be day/month or month/day is read month/day when another column shows the file's dates to be (a US
    export's dates of birth were read day/month beside its contact dates read month/day: the outside users' trial)."""
    readings = {
        name: choose_date_reading(
            header[planned[name]], batch.get_column(f"c{planned[name]}").head(5_000), mapping.date_format
        )
        for name in DATE_FIELDS
        if name in planned
    }
    shown_by = [header[planned[name]] for name, reading in readings.items() if _noted(reading, "W_DATE_ORDER_US")]
    for name, reading in readings.items():
        if shown_by and _noted(reading, "W_DATE_ORDER_ASSUMED"):
            column = header[planned[name]]
            message = (
                f"No date in '{column}' makes sense only as day/month/year; they were read as month/day/year, as "
                f"'{shown_by[0]}' shows this file's dates to be."
            )
            readings[name] = DateReading(
                ISO_FORMATS + MONTH_FIRST_FORMATS, Issue("W_DATE_ORDER_US", message, column=column), month_first=True
            )
    return readings


def _noted(reading: DateReading, code: str) -> bool:
    return reading.note is not None and reading.note.code == code
