"""The feedback report a charity receives for every file: JSON for machines, HTML for people.

Issues are grouped by code, errors first, most frequent first, each with a count, the share of rows
it touched, the first examples (row numbers as the charity's spreadsheet shows them, columns as the
charity named them) and one sentence saying how to fix it. All text is escaped in HTML, and example
values are shortened, so a cell like ``=HYPERLINK(...)`` or ``<script>`` is only ever shown as text.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel

from standards import STANDARD_VERSION
from standards.issues import Issue, issue_type

EXAMPLES_PER_ISSUE = 5
Status = Literal["accepted", "accepted_with_warnings", "rejected"]


class IssueExample(BaseModel):
    row: int | None = None
    column: str | None = None
    value: str | None = None
    message: str


class IssueGroup(BaseModel):
    code: str
    severity: Literal["error", "warning"]
    scope: str
    title: str
    fix: str
    count: int
    share_of_rows: float | None
    examples: list[IssueExample]


class ExpectationOutcome(BaseModel):
    """One rule of the standard as checked by the Great Expectations suite."""

    expectation: str
    column: str | None
    rule: str
    success: bool
    element_count: int
    unexpected_count: int
    unexpected_percent: float


class FileDescription(BaseModel):
    format: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    header_row: int | None = None
    columns_used: dict[str, str] = {}
    columns_not_used: list[str] = []


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
    expectations: list[ExpectationOutcome] = []

    @property
    def accepted(self) -> bool:
        return self.status != "rejected"

    def codes(self) -> list[str]:
        return [group.code for group in self.issues]

    def headline(self) -> str:
        """One plain-English sentence about the outcome."""
        if self.status == "rejected":
            reasons = "; ".join(g.title.lower() for g in self.issues if g.severity == "error" and g.scope == "file")
            return f"Not accepted: {reasons or 'see the issues below'}. Nothing from this file was stored."
        verb = "Accepted" if self.status == "accepted" else "Accepted with warnings"
        rejected = f"; {self.rows_rejected:,} row(s) were not accepted" if self.rows_rejected else ""
        return f"{verb}: {self.rows_accepted:,} of {self.rows_received:,} row(s) accepted{rejected}."

    def next_step(self) -> str:
        """What the charity should do now, in one sentence (true both before and after sending)."""
        if self.status == "rejected":
            return (
                "Fix the errors marked below, starting with the first, check the file again, and send the whole "
                "file: nothing from the file as it is can be kept."
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
            f"| `{g.code}` | {g.count:,} | {'' if g.share_of_rows is None else f'{g.share_of_rows:.1%}'} |"
            for g in self.issues
        ]
        failed = [e for e in self.expectations if not e.success]
        lines += [
            "",
            f"Great Expectations: {len(self.expectations) - len(failed)} of {len(self.expectations)} rules passed.",
        ]
        return "\n".join(lines)

    def to_html(self) -> str:
        return _templates().get_template("feedback.html.j2").render(report=self)


@dataclass
class IssueCollector:
    """Counts issues by code and keeps the first few examples of each, in bounded memory."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[Issue]] = field(default_factory=dict)

    def add(self, issue: Issue) -> None:
        self.counts[issue.code] += 1
        kept = self.examples.setdefault(issue.code, [])
        if len(kept) < EXAMPLES_PER_ISSUE:
            kept.append(issue)

    def groups(self, rows_received: int) -> list[IssueGroup]:
        groups = []
        for code, count in self.counts.items():
            kind = issue_type(code)
            share = None if kind.scope == "file" or not rows_received else min(1.0, count / rows_received)
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
                        for i in self.examples[code]
                    ],
                )
            )
        return sorted(groups, key=lambda g: (g.severity != "error", g.scope != "file", -g.count, g.code))


def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("standards", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        keep_trailing_newline=True,
    )
