"""Staging files of one submission: accepted contacts (Parquet) and rejected rows (quarantine CSV).

Rejected rows go back only to analysts, but they are opened in spreadsheets: every cell that a
spreadsheet would run as a formula is neutralised with a leading apostrophe.

A contact's linkage basis (normalised surname, date of birth and postcode district) never reaches
the staged Parquet: for a charity that links records it becomes a keyed ``linkage_token``, the same
for every contact of one person_ref; otherwise it is dropped.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import polars as pl
import pyarrow.parquet as pq

from collab.faults import crash_point
from privacy.pseudonymise import linkage_tokens, one_token_per_person
from standards.extract import STANDARD_CONTACT_SCHEMA
from standards.rows import spreadsheet_safe
from standards.validation import RowOutcome

CONTACTS_FILE = "contacts.parquet"
STAGED_CONTACT_SCHEMA: dict[str, pl.DataType] = {
    **{name: dtype for name, dtype in STANDARD_CONTACT_SCHEMA.items() if name != "linkage_basis"},
    "linkage_token": pl.String(),
}
REJECTED_FILE = "rejected_rows.csv"


class StagingSink:
    """Receives a submission's accepted contacts and rejected rows while it is checked."""

    def __init__(self, staging_dir: Path, quarantine_dir: Path, linkage_key: bytes | None = None) -> None:
        staging_dir.mkdir(parents=True, exist_ok=True)
        self._linkage_key = linkage_key
        self.contacts_path = staging_dir / CONTACTS_FILE
        self.rejected_path = quarantine_dir / REJECTED_FILE
        self._quarantine_dir = quarantine_dir
        self._writer: pq.ParquetWriter | None = None
        self._rejected: csv.writer | None = None  # type: ignore[valid-type]
        self._rejected_handle = None
        self.rows_accepted = 0
        self.rows_rejected = 0

    def accepted(self, contacts: pl.DataFrame) -> None:
        bases = contacts.get_column("linkage_basis")
        tokens = (
            linkage_tokens(self._linkage_key, bases)
            if self._linkage_key
            else pl.Series("linkage_token", [None] * len(bases), pl.String)
        )
        table = contacts.drop("linkage_basis").with_columns(tokens).to_arrow()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.contacts_path, table.schema)
        self._writer.write_table(table)
        self.rows_accepted += contacts.height
        crash_point("mid-check")

    def rejected(self, rows: Sequence[RowOutcome]) -> None:
        if self._rejected is None:
            self._quarantine_dir.mkdir(parents=True, exist_ok=True)
            self._rejected_handle = self.rejected_path.open("w", newline="", encoding="utf-8")
            self._rejected = csv.writer(self._rejected_handle)
            self._rejected.writerow(["row", "issue_codes", "messages", *rows[0].raw])
        for row in rows:
            self._rejected.writerow(
                [
                    row.row,
                    " ".join(i.code for i in row.issues),
                    spreadsheet_safe(" | ".join(i.message for i in row.issues)),
                    *(spreadsheet_safe(value) for value in row.raw.values()),
                ]
            )
        self.rows_rejected += len(rows)

    def __enter__(self) -> StagingSink:
        self.contacts_path.unlink(missing_ok=True)
        self.rejected_path.unlink(missing_ok=True)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._writer is not None:
            self._writer.close()
            if self._linkage_key:
                resolved = self.contacts_path.with_suffix(".resolving")
                one_token_per_person(pl.scan_parquet(self.contacts_path)).sink_parquet(resolved)
                resolved.replace(self.contacts_path)
        if self._rejected_handle is not None:
            self._rejected_handle.close()
