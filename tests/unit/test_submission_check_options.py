"""The pipeline and the portal check a file with the collaborative's settings, not the standard's defaults."""

from __future__ import annotations

from pathlib import Path

from collab.submissions import check_options
from collab.workspace import IntakeSettings
from standards.check import check_extract


def test_a_file_is_checked_within_the_collaboratives_own_limits(tmp_path: Path) -> None:
    wide = tmp_path / "wide.csv"
    header = ["contact_date", "postcode", "need", *(f"extra_{i}" for i in range(20))]
    wide.write_text(",".join(header) + "\n" + ",".join(["2026-01-05", "BS1 4DJ", "food", *[""] * 20]) + "\n")

    within_defaults = check_extract(wide, options=check_options(IntakeSettings(), links_records=True)).report
    narrow = check_options(IntakeSettings(max_columns=10, max_rows=5), links_records=False)
    refused = check_extract(wide, options=narrow).report

    assert "E_TOO_MANY_COLUMNS" not in {group.code for group in within_defaults.issues}
    assert refused.status == "rejected"
    assert "E_TOO_MANY_COLUMNS" in {group.code for group in refused.issues}
    assert narrow.limits.max_rows == 5 and not narrow.links_records
