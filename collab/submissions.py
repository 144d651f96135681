"""A submission's feedback, and what happens when our own code fails on one.

An error of ours while a submission is processed (not a problem of the file) must never reach the
charity as a traceback, and must never stop another file. It becomes an ``E_INTERNAL`` report with a
reference; the analyst's record of it (the traceback) and a copy of the raw file are kept in the
submission's quarantine folder, where ``collab incident REFERENCE`` finds them.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from collab.intake import REPORT_FILE, SubmissionManifest, submission_dir
from collab.landing import LandingZone
from collab.states import REFERENCE_PATTERN
from collab.workspace import IntakeSettings, Workspace
from standards.check import CheckOptions, internal_error_issue
from standards.feedback import FeedbackReport, IssueCollector
from standards.issues import Issue
from standards.reading import ReadLimits

if TYPE_CHECKING:  # not imported to run: it loads Splink, and `collab check` uses this module
    from collab.warehouse import QuarterReplaced

INCIDENT_PREFIX = "internal-error-"
# Where the records of errors in checks made in the portal are kept, beside the submissions' in quarantine.
PORTAL_CHECKS = "portal-checks"


def check_options(settings: IntakeSettings, *, links_records: bool) -> CheckOptions:
    """How a charity's file is checked under ``settings``: the same for the pipeline and the portal, so that a
    file the portal passes is not refused once sent. Only a charity that ``links_records`` is warned of
    surnames it cannot link."""
    return CheckOptions(
        max_row_error_share=settings.max_row_error_share,
        batch_size=settings.batch_rows,
        limits=ReadLimits(max_columns=settings.max_columns, max_rows=settings.max_rows),
        links_records=links_records,
    )


def feedback_name(original_name: str, submission_id: str) -> str:
    """The stem of a submission's feedback files: readable, safe on every file system and S3."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", original_name.rsplit(".", 1)[0]).strip("-")[:60] or "file"
    return f"{stem}--{submission_id}.feedback"


def load_report(workspace: Workspace, submission_id: str) -> FeedbackReport | None:
    """The submission's feedback report, or None if none was written (yet)."""
    path = submission_dir(workspace, submission_id) / REPORT_FILE
    if not path.exists():
        return None
    return FeedbackReport.model_validate_json(path.read_text(encoding="utf-8"))


def save_report(workspace: Workspace, submission_id: str, report: FeedbackReport) -> None:
    """Write the report atomically: a reader sees the old report or the new one, never half of one."""
    path = submission_dir(workspace, submission_id) / REPORT_FILE
    partial = path.with_name(f".{REPORT_FILE}.partial")
    partial.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    partial.replace(path)


def send_feedback(landing: LandingZone, manifest: SubmissionManifest, report: FeedbackReport) -> tuple[str, str]:
    """Write the report to the charity's feedback area as JSON and HTML; return where each went."""
    name = feedback_name(manifest.original_name, manifest.submission_id)
    json_at = landing.write_feedback(
        manifest.charity_id, f"{name}.json", report.model_dump_json(indent=2).encode(), "application/json"
    )
    html_at = landing.write_feedback(
        manifest.charity_id, f"{name}.html", report.to_html().encode(), "text/html; charset=utf-8"
    )
    return json_at, html_at


def describe_error(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


def record_incident(workspace: Workspace, manifest: SubmissionManifest, reference: str, detail: str) -> Path:
    """Keep the analyst's record of an internal error and a copy of the raw file in quarantine; return the record."""
    quarantine = workspace.quarantine / manifest.submission_id
    quarantine.mkdir(parents=True, exist_ok=True)
    source = submission_dir(workspace, manifest.submission_id) / manifest.source_file
    kept = quarantine / manifest.source_file
    if source.exists() and not kept.exists():
        shutil.copyfile(source, kept)
    about = {"submission": manifest.submission_id, "charity": manifest.charity_id, "file": manifest.original_name}
    return _write_incident(quarantine, reference, about, detail)


def record_check_incident(workspace: Workspace, charity_id: str, file_name: str, reference: str, detail: str) -> Path:
    """Keep the analyst's record of an internal error in a charity's check in the portal; return the record. The
    file itself, checked but not sent, stays out of the workspace: the charity can send it, or the analyst ask."""
    about = {"portal check by": charity_id, "file": file_name}
    return _write_incident(workspace.quarantine / PORTAL_CHECKS, reference, about, detail)


def _write_incident(directory: Path, reference: str, about: dict[str, str], detail: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    record = directory / f"{INCIDENT_PREFIX}{reference}.txt"
    recorded_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    lines = [f"reference: {reference}", *(f"{key}: {value}" for key, value in about.items())]
    record.write_text("\n".join([*lines, f"recorded_at: {recorded_at}", "", detail]), encoding="utf-8")
    return record


def internal_error_report(manifest: SubmissionManifest, reference: str) -> FeedbackReport:
    """The report a charity gets when our code failed on its file: the reference, never the error itself."""
    collector = IssueCollector()
    collector.add(internal_error_issue(reference))
    return FeedbackReport(
        submission_id=manifest.submission_id,
        charity_id=manifest.charity_id,
        file_name=manifest.original_name,
        checked_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
        status="rejected",
        rows_received=0,
        rows_accepted=0,
        rows_rejected=0,
        issues=collector.groups(0),
    )


def warn_of_quarters_mostly_replaced(report: FeedbackReport, quarters: list[QuarterReplaced]) -> None:
    """Add to a loaded file's report a warning for each quarter it covers with fewer than a tenth of the rows it
    replaced there: whole quarters are replaced, so one date typed in the wrong year can replace a quarter sent
    before, and the charity is told while the earlier file is at hand (sent again, it is loaded again)."""
    collector = IssueCollector()
    for replaced in quarters:
        if replaced.rows_now * 10 < replaced.rows_before:
            message = (
                f"This file has {replaced.rows_now:,} contact(s) in {replaced.quarter}, and they replaced the "
                f"{replaced.rows_before:,} you sent for {replaced.quarter} before."
            )
            collector.add(Issue("W_QUARTER_MOSTLY_REPLACED", message))
    _add_load_warnings(report, collector)


def warn_of_quarters_in_later_files(report: FeedbackReport, quarters: list[str]) -> None:
    """Add to a loaded file's report a warning for each quarter it covers that a file its charity sent after it
    already holds (``collab.warehouse.load_submission``): its rows of that quarter were not loaded."""
    collector = IssueCollector()
    for quarter in quarters:
        message = (
            f"This file's contacts in {quarter} were not loaded: a file you sent after this one covers {quarter}, "
            "and it keeps that quarter."
        )
        collector.add(Issue("W_QUARTER_IN_A_LATER_FILE", message))
    _add_load_warnings(report, collector)


def _add_load_warnings(report: FeedbackReport, collector: IssueCollector) -> None:
    """Add what the load found to a loaded file's report: an accepted file with a warning is accepted with warnings."""
    if not collector.counts:
        return
    report.issues = [*report.issues, *collector.groups(report.rows_received)]
    if report.status == "accepted":
        report.status = "accepted_with_warnings"


def find_incident(workspace: Workspace, reference: str) -> Path | None:
    """The analyst's record of the internal error with this reference, if there is one."""
    if not REFERENCE_PATTERN.fullmatch(reference):
        return None
    return next(iter(sorted(workspace.quarantine.glob(f"*/{INCIDENT_PREFIX}{reference}.txt"))), None)
