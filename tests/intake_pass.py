"""One intake pass over a landing zone without Dagster: each pending file received in turn, as each
partition's run receives its own. Tests of intake itself use it; the pipeline receives files in runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from collab.intake import SubmissionManifest, load_manifest, receive_object
from collab.landing import LandingObject, LandingObjectGone, LandingObjectRefused, LandingZone
from collab.workspace import Workspace


@dataclass
class IntakeResult:
    received: list[SubmissionManifest] = field(default_factory=list)
    duplicates: list[tuple[LandingObject, str]] = field(default_factory=list)
    # Files left in the landing area for the next pass, and why (gone or changed while being taken, or an error).
    skipped: list[tuple[LandingObject, str]] = field(default_factory=list)
    # Entries never read because they are not regular files of the area ("CODE: why"); moved aside, charity told.
    refused: list[tuple[LandingObject, str]] = field(default_factory=list)


def receive_pending(
    workspace: Workspace, landing: LandingZone, charity_ids: list[str], *, min_age_seconds: float = 0.0
) -> IntakeResult:
    """Receive every pending landed file: refused entries are moved aside, files gone or failing stay for
    the next pass."""
    result = IntakeResult()
    taken: set[str] = set()
    for obj in landing.pending(charity_ids, min_age_seconds=min_age_seconds):
        try:
            receipt = receive_object(workspace, landing, obj, is_active=taken.__contains__)
        except LandingObjectGone as gone:
            result.skipped.append((obj, str(gone)))
            continue
        except LandingObjectRefused as refused:
            result.refused.append((obj, str(refused)))
            continue
        except Exception as error:  # one file's failure must not stop the others
            result.skipped.append((obj, f"{type(error).__name__}: {error}"))
            continue
        if receipt.duplicate:
            result.duplicates.append((obj, receipt.submission_id))
        else:
            taken.add(receipt.partition_key)
            result.received.append(load_manifest(workspace, receipt.submission_id))
    return result
