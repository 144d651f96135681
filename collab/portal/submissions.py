"""What a charity has sent and where each file stands, from files alone (never the warehouse, which
one process at a time may open): the files still waiting in its landing area, then each submission's
manifest, state (``collab.states``) and feedback report in staging. ``charity_submissions`` is the one
place that knows this.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from collab.intake import MANIFEST, SubmissionManifest
from collab.landing import LandingZone, shown_name
from collab.states import SubmissionState, read_state
from collab.workspace import Workspace
from standards.feedback import FeedbackReport

REPORT_FILE = "report.json"  # written by the pipeline's submission_quality asset
SUBMISSION_ID = re.compile(r"^[a-z0-9-]{3,40}-[0-9a-f]{12}$")
STATUS_WORDS = {
    "waiting": "Sent, waiting to be picked up",
    "refused": "Will not be read: see the notice about it",
    "received": "Received, being checked",
    "accepted": "Accepted",
    "accepted_with_warnings": "Accepted with warnings",
    "loading": "Accepted, being loaded",
    "loaded": "Accepted and loaded",
    "rejected": "Not accepted",
    "failed": "Not processed: we are looking into it",
}


@dataclass(frozen=True)
class Submission:
    file_name: str
    when: dt.datetime
    status: str
    submission_id: str | None = None
    report: FeedbackReport | None = None
    state: SubmissionState | None = None

    @property
    def status_words(self) -> str:
        words = STATUS_WORDS[self.status]
        if self.status in {"loading", "loaded"} and self.report and self.report.status == "accepted_with_warnings":
            words = words.replace("Accepted", "Accepted with warnings", 1)
        if self.status == "failed" and self.state and self.state.reference:
            words += f" (reference {self.state.reference})"
        return words


def _status(state: SubmissionState | None, report: FeedbackReport | None) -> str:
    """Where a submission stands: its pipeline state first (loaded only once its rows are stored), then
    its report; a submission from before states were kept is described by its report alone."""
    if state is not None and state.state == "failed":
        return "failed"
    if report is None:
        return "received"
    if state is None or not report.accepted:
        return report.status
    return "loaded" if state.state == "loaded" else "loading"


def charity_submissions(workspace: Workspace, landing: LandingZone, charity_id: str) -> list[Submission]:
    """The charity's own files, newest first: those waiting in its landing area, and its submissions."""
    waiting = [
        Submission(file_name=shown_name(obj.name), when=obj.modified, status="refused" if obj.refusal else "waiting")
        for obj in landing.pending([charity_id])
    ]
    return sorted(waiting + _staged(workspace, charity_id), key=lambda s: s.when, reverse=True)


def _staged(workspace: Workspace, charity_id: str) -> list[Submission]:
    found = []
    for path in workspace.staging.glob(f"{charity_id}-*/{MANIFEST}"):
        manifest = SubmissionManifest.model_validate_json(path.read_text(encoding="utf-8"))
        # "food-bank-3f..." also matches the glob of a charity called "food": the manifest decides.
        if manifest.charity_id != charity_id:
            continue
        report_path = path.parent / REPORT_FILE
        report = (
            FeedbackReport.model_validate_json(report_path.read_text(encoding="utf-8"))
            if report_path.exists()
            else None
        )
        state = read_state(workspace, manifest.submission_id)
        found.append(
            Submission(
                file_name=manifest.original_name,
                when=manifest.received_at,
                status=_status(state, report),
                submission_id=manifest.submission_id,
                report=report,
                state=state,
            )
        )
    return found


def charity_submission(workspace: Workspace, charity_id: str, submission_id: str) -> Submission | None:
    """One of the charity's submissions by id, or None (also for another charity's id)."""
    if not SUBMISSION_ID.match(submission_id) or not submission_id.startswith(f"{charity_id}-"):
        return None
    return next((s for s in _staged(workspace, charity_id) if s.submission_id == submission_id), None)


def compared_with_last(submissions: list[Submission], current: Submission) -> str | None:
    """'Your file vs your last file': rows, quarters and warnings per 100 rows, for an accepted report."""
    report = current.report
    if report is None or not report.accepted:
        return None
    earlier = [
        s
        for s in submissions
        if s.report is not None and s.report.accepted and s.when < current.when and s is not current
    ]
    if not earlier:
        return "This is your first accepted file."
    last = max(earlier, key=lambda s: s.when).report
    assert last is not None

    def warnings_per_100(r: FeedbackReport) -> float:
        warned = sum(g.count for g in r.issues if g.severity == "warning" and g.scope != "file")
        return 100 * warned / r.rows_received if r.rows_received else 0.0

    return (
        f"Compared with your last accepted file: {report.rows_accepted:,} rows accepted (last time "
        f"{last.rows_accepted:,}); quarters {', '.join(report.quarters) or 'none'} (last time "
        f"{', '.join(last.quarters) or 'none'}); {warnings_per_100(report):.1f} warnings per 100 rows "
        f"(last time {warnings_per_100(last):.1f})."
    )
