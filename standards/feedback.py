"""The feedback report a charity receives for every file: JSON for machines, HTML for people.

Issues are grouped by code, errors first, most frequent first, each with a count, the share of rows
it touched, the first examples (row numbers as the charity's spreadsheet shows them, columns as the
charity named them) and one sentence saying how to fix it. All text is escaped in HTML, and example
values are shortened, so a cell like ``=HYPERLINK(...)`` or ``<script>`` is only ever shown as text.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel

from standards import STANDARD_VERSION
from standards.codelists import load_codelist
from standards.extract import CODELIST_FIELDS
from standards.issues import Issue, issue_type

if TYPE_CHECKING:
    from standards.rows import AffectedRow

EXAMPLES_PER_ISSUE = 5
VALUES_SHOWN = 10
ROWS_PER_VALUE = 5
MAX_TRACKED_VALUES = 200
ROWS_PER_PAGE = 500
Status = Literal["accepted", "accepted_with_warnings", "rejected"]


class IssueExample(BaseModel):
    row: int | None = None
    column: str | None = None
    value: str | None = None
    message: str


class ValueCount(BaseModel):
    """One distinct value behind an issue: how often it occurs and its first rows."""

    column: str
    value: str
    count: int
    rows: list[int]


class IssueGroup(BaseModel):
    code: str
    severity: Literal["error", "warning"]
    scope: str
    title: str
    fix: str
    count: int
    share_of_rows: float | None
    examples: list[IssueExample]
    values: list[ValueCount] = []
    allowed_codes: list[str] = []


class FileDescription(BaseModel):
    format: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    header_row: int | None = None
    header_rows: int = 1  # 2 for a header written over two rows, ``header_row`` the lower
    columns_used: dict[str, str] = {}
    columns_not_used: list[str] = []
    # Of the columns not used, those that look like a field, each with why it was not read from.
    columns_not_used_because: dict[str, str] = {}

    @property
    def header_rows_shown(self) -> str:
        """Where the header is, as the charity's spreadsheet numbers rows: "row 3", or "rows 2 and 3"."""
        if self.header_rows == 2 and self.header_row is not None:
            return f"rows {self.header_row - 1} and {self.header_row}"
        return f"row {self.header_row}"


class FeedbackReport(BaseModel):
    standard_version: str = STANDARD_VERSION
    submission_id: str | None = None
    charity_id: str | None = None
    file_name: str
    checked_at: dt.datetime
    status: Status
    rows_received: int
    rows_accepted: int
    rows_rejected: int
    quarters: list[str] = []
    max_row_error_share: float = 0.2
    file: FileDescription = FileDescription()
    issues: list[IssueGroup] = []
    # For a file sent to the collaborative: False while its accepted rows are being loaded, True once they are
    # stored. None for a check on the charity's own computer, where nothing is loaded.
    loaded: bool | None = None
    # Of the accepted rows, how many were stored once loaded: fewer when a file the charity sent later already
    # holds some of the quarters this one covers (that file keeps them). None until loaded.
    rows_stored: int | None = None

    @property
    def accepted(self) -> bool:
        return self.status != "rejected"

    def codes(self) -> list[str]:
        return [group.code for group in self.issues]

    def headline(self) -> str:
        """One plain-English sentence about the outcome."""
        if self.status == "rejected":
            reason = next(
                (
                    g.examples[0].message
                    for g in self.issues
                    if g.severity == "error" and g.scope == "file" and g.examples
                ),
                "see the issues below.",
            )
            kept = "" if "Nothing from this file" in reason else " Nothing from this file can be used as it is."
            return f"Not accepted: {reason}{kept}"
        verb = "Accepted" if self.status == "accepted" else "Accepted with warnings"
        rejected = f"; {self.rows_rejected:,} row(s) were not accepted" if self.rows_rejected else ""
        loading = (
            " They are being loaded; this report will be updated when they are stored." if self.loaded is False else ""
        )
        if self.rows_stored is not None and self.rows_stored < self.rows_accepted:
            loading = (
                " None of them were stored: files you sent later cover every quarter this one does, and keep them."
                if self.rows_stored == 0
                else f" {self.rows_stored:,} of them were stored: files you sent later keep the other quarters."
            )
        sheet = f" from the sheet '{self.file.sheet}'" if "W_OTHER_SHEETS_IGNORED" in self.codes() else ""
        return f"{verb}: {self.rows_accepted:,} of {self.rows_received:,} row(s){sheet} accepted{rejected}.{loading}"

    def next_step(self) -> str:
        """What the charity should do now, in one sentence (true both before and after sending)."""
        if self.status == "rejected":
            return (
                "Fix the errors marked below, starting with the first, check the file again, and send the whole "
                "file: nothing from the file as it is can be kept."
            )
        if "W_OTHER_SHEETS_IGNORED" in self.codes():
            # A file replaces whole quarters: sent as it is, a workbook of a tab per month keeps one month of them.
            return (
                "Only one sheet was read, and a file replaces earlier files for the quarters it covers: put all the "
                "contacts on one sheet, or send one file per sheet."
            )
        if self.rows_rejected:
            return (
                "The file can be used as it is. To include the rows that are not accepted, fix them and send the "
                "whole file again: it replaces earlier files for the same quarters."
            )
        if self.issues:
            return "The file can be used as it is; please look at the warnings before your next extract."
        return "Nothing to fix: thank you."

    def to_markdown(self) -> str:
        """A summary for analysts (Dagster metadata): counts and codes only, never a charity's values."""
        lines = [f"**{self.headline()}**", "", "| code | count | share of rows |", "|---|---:|---:|"]
        lines += [
            f"| `{g.code}` | {g.count:,} | {'' if g.share_of_rows is None else share_of_rows(g.share_of_rows)} |"
            for g in self.issues
        ]
        return "\n".join(lines)

    def to_html(self, affected_rows: Iterable[AffectedRow] | None = None) -> str:
        """The report as a web page; with ``affected_rows``, every affected row too, in pages of
        ``ROWS_PER_PAGE`` (``collab check --html``)."""
        if affected_rows is None:
            return _templates().get_template("feedback.html.j2").render(report=self)
        template = _templates().get_template("feedback_rows.html.j2")
        return template.render(report=self, rows=affected_rows, rows_per_page=ROWS_PER_PAGE)


def share_of_rows(share: float) -> str:
    """A share of rows as a reader should see it: "0.1%"; "under 0.1%" for one row in a million, never "0%", and
    "over 99.9%" for all but one, never "100%"."""
    if 0 < share < 0.0005:
        return "under 0.1%"
    if 0.9995 <= share < 1:
        return "over 99.9%"
    return f"{share:.1%}"


# What the feedback templates need of any environment that renders them (here, and the charity portal's).
FEEDBACK_FILTERS = {"share_of_rows": share_of_rows}


@dataclass
class IssueCollector:
    """Counts issues by code, and by distinct value within a code, in bounded memory.

    Examples show different values first: 33 unknown needs made of three wordings are shown as
    those three wordings, each with its count, not as the first five rows of the commonest one.
    """

    counts: Counter[str] = field(default_factory=Counter)
    first: dict[str, list[Issue]] = field(default_factory=dict)
    by_value: dict[str, dict[tuple[str, str], tuple[Issue, list[int]]]] = field(default_factory=dict)
    value_counts: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)
    # Rows with each code, where a row can have it more than once (a blank date and a blank need are two
    # E_MISSING_VALUE in one row): the share of rows is of rows, not of times.
    rows_with: Counter[str] = field(default_factory=Counter)

    def add_rows_with(self, code: str, rows: int) -> None:
        """Count ``rows`` more rows with ``code`` (each once, however many times it has it)."""
        self.rows_with[code] += rows

    def add(self, issue: Issue) -> None:
        self.counts[issue.code] += 1
        kept = self.first.setdefault(issue.code, [])
        if len(kept) < EXAMPLES_PER_ISSUE:
            kept.append(issue)
        if issue.value is None or issue.column is None:
            return
        key = (issue.column, issue.value)
        seen = self.by_value.setdefault(issue.code, {})
        if key not in seen and len(seen) >= MAX_TRACKED_VALUES:
            return
        _, rows = seen.setdefault(key, (issue, []))
        if issue.row is not None and len(rows) < ROWS_PER_VALUE:
            rows.append(issue.row)
        self.value_counts.setdefault(issue.code, Counter())[key] += 1

    def add_alike(self, issue: Issue, rows: Sequence[int]) -> None:
        """``add`` of ``issue`` at each of ``rows`` (ascending), at once: what adding them one by one in row order,
        among the rows before and after, keeps. Groups of rows alike are added in the order of their first rows,
        so a value is first met at the row it would have been; within a code the examples, and within a value the
        rows, are the first of the file, whichever group they came in."""
        code = issue.code
        self.counts[code] += len(rows)
        at = [replace(issue, row=row) for row in rows[:EXAMPLES_PER_ISSUE]]
        kept = self.first.setdefault(code, [])
        kept.extend(at)
        kept.sort(key=lambda i: (i.row is None, i.row or 0))
        del kept[EXAMPLES_PER_ISSUE:]
        if issue.value is None or issue.column is None:
            return
        key = (issue.column, issue.value)
        seen = self.by_value.setdefault(code, {})
        if key not in seen and len(seen) >= MAX_TRACKED_VALUES:
            return
        example, earlier = seen.get(key, (at[0], []))
        seen[key] = (
            min(example, at[0], key=lambda i: i.row or 0),
            sorted([*earlier, *rows[:ROWS_PER_VALUE]])[:ROWS_PER_VALUE],
        )
        self.value_counts.setdefault(code, Counter())[key] += len(rows)

    def _examples(self, code: str) -> list[Issue]:
        distinct = [first for first, _ in self.by_value.get(code, {}).values()][:EXAMPLES_PER_ISSUE]
        extra = [i for i in self.first[code] if i not in distinct][: EXAMPLES_PER_ISSUE - len(distinct)]
        return sorted(distinct + extra, key=lambda i: (i.row is None, i.row or 0))

    def groups(self, rows_received: int) -> list[IssueGroup]:
        groups = []
        for code, count in self.counts.items():
            kind = issue_type(code)
            rows = self.rows_with.get(code, count)
            share = None if kind.scope == "file" or not rows_received else min(1.0, rows / rows_received)
            tallies = self.value_counts.get(code, Counter())
            values = [
                ValueCount(column=column, value=value, count=n, rows=self.by_value[code][(column, value)][1])
                for (column, value), n in tallies.most_common(VALUES_SHOWN)
            ]
            fields = {i.field for i in self.first[code]}
            allowed: list[str] = []
            if code.endswith("_UNKNOWN_CODE") and len(fields) == 1 and (only := fields.pop()) in CODELIST_FIELDS:
                allowed = list(load_codelist(CODELIST_FIELDS[only]).values)
            groups.append(
                IssueGroup(
                    code=code,
                    severity="error" if kind.is_error else "warning",
                    scope=kind.scope.value,
                    title=kind.title,
                    fix=kind.fix,
                    count=count,
                    share_of_rows=share,
                    examples=[
                        IssueExample(row=i.row, column=i.column, value=i.value, message=i.message)
                        for i in self._examples(code)
                    ],
                    # Counting by value helps when values repeat; otherwise each example's own message says more.
                    values=values if any(v.count > 1 for v in values) else [],
                    allowed_codes=allowed,
                )
            )
        return sorted(groups, key=lambda g: (g.severity != "error", g.scope != "file", -g.count, g.code))


@functools.cache
def _templates() -> Environment:
    # One environment per process: it compiles each template once, not at every report (twice per submission).
    environment = Environment(
        loader=PackageLoader("standards", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        keep_trailing_newline=True,
    )
    environment.filters.update(FEEDBACK_FILTERS)
    return environment
