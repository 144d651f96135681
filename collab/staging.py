"""Staging files of one submission: accepted contacts (Parquet) and rejected rows (quarantine CSV).

Rejected rows go back only to analysts, but they are opened in spreadsheets: every cell that a
spreadsheet would run as a formula is neutralised with a leading apostrophe.

A contact's linkage basis (normalised surname, date of birth and postcode district) never reaches a
staged file. For a charity that links records it is keyed, component by component, into one linkage
record per person_ref (``linkage_units.parquet``: the identity most of the reference's contacts
carry, ``privacy.linkage``), and each contact is marked ``linked`` if its reference has one; for any
other charity it is dropped.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import polars as pl
import pyarrow as pa

from collab.faults import crash_point
from privacy.linkage import identity_counts, merge_counts, reference_components
from standards.extract import STANDARD_CONTACT_SCHEMA
from standards.rows import spreadsheet_safe
from standards.validation import RowOutcome

CONTACTS_FILE = "contacts.parquet"
STAGED_CONTACT_SCHEMA: dict[str, pl.DataType] = {
    **{name: dtype for name, dtype in STANDARD_CONTACT_SCHEMA.items() if name != "linkage_basis"},
    "linked": pl.Boolean(),
}
LINKAGE_UNITS_FILE = "linkage_units.parquet"
# While a file is checked: its contacts so far (a linking charity's not yet marked ``linked``), as Arrow IPC,
# written and read back at the cost of a copy; Parquet once, at the end, when the file is complete.
_UNMARKED_FILE = "contacts.unmarked.arrow"
# Rows of identity counts held before they are merged: what each batch adds is merged into the total
# once this many rows wait, so memory follows the distinct references and identities, not the rows.
_COUNTS_MERGE_ROWS = 1_000_000
REJECTED_FILE = "rejected_rows.csv"
# zstd at its fastest level: files within 1% of the default level's size for half its time.
_COMPRESSION = {"compression": "zstd", "compression_level": 1}


class StagingSink:
    """Receives a submission's accepted contacts and rejected rows while it is checked."""

    def __init__(self, staging_dir: Path, quarantine_dir: Path, linkage_key: bytes | None = None) -> None:
        staging_dir.mkdir(parents=True, exist_ok=True)
        self._linkage_key = linkage_key
        self.contacts_path = staging_dir / CONTACTS_FILE
        self.units_path = staging_dir / LINKAGE_UNITS_FILE
        # Which identity each reference keeps is chosen at the end, from counts held in memory (an
        # identity never reaches a file unkeyed); its contacts are marked ``linked`` then. Contacts are
        # written here first and take their name only once complete.
        self._unmarked_path = staging_dir / _UNMARKED_FILE
        self._counts: list[pl.DataFrame] = []
        self.rejected_path = quarantine_dir / REJECTED_FILE
        self._quarantine_dir = quarantine_dir
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._rejected: csv.writer | None = None  # type: ignore[valid-type]
        self._rejected_handle = None
        self.rows_accepted = 0
        self.rows_rejected = 0

    def accepted(self, contacts: pl.DataFrame) -> None:
        if self._linkage_key:
            self._counts.append(identity_counts(contacts))
            if len(self._counts) > 1 and sum(c.height for c in self._counts) > _COUNTS_MERGE_ROWS:
                self._counts = [merge_counts(self._counts)]
            table = contacts.drop("linkage_basis").to_arrow()
        else:
            table = contacts.drop("linkage_basis").with_columns(pl.lit(False).alias("linked")).to_arrow()
        if self._writer is None:
            self._writer = pa.ipc.new_file(str(self._unmarked_path), table.schema)
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
        for path in (self.contacts_path, self.units_path, self.rejected_path, self._unmarked_path):
            path.unlink(missing_ok=True)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._writer is not None:
            self._writer.close()
            if self._linkage_key:
                self._resolve_linkage(self._linkage_key)
            else:
                pl.scan_ipc(self._unmarked_path).sink_parquet(self.contacts_path, **_COMPRESSION)
        self._unmarked_path.unlink(missing_ok=True)
        if self._rejected_handle is not None:
            self._rejected_handle.close()

    def _resolve_linkage(self, key: bytes) -> None:
        """Write each reference's linkage record and mark its contacts ``linked``.

        A reference has a record exactly when one of its contacts carries an identity, so the contacts are
        marked (by Polars, without the GIL) while the records are keyed (in Python), at once.
        """
        counts = merge_counts(self._counts) if self._counts else None
        self._counts = []
        linked = (
            pl.lit(False) if counts is None else pl.col("person_ref").is_in(counts.get_column("person_ref").implode())
        )
        marked = pl.scan_ipc(self._unmarked_path).with_columns(linked.alias("linked")).select(*STAGED_CONTACT_SCHEMA)
        with ThreadPoolExecutor(max_workers=1) as marking:
            contacts = marking.submit(marked.sink_parquet, self.contacts_path, **_COMPRESSION)
            if counts is not None:
                reference_components(key, counts).write_parquet(self.units_path, **_COMPRESSION)
            contacts.result()


def staged_batches(path: Path, rows_per_batch: int) -> Iterator[pl.DataFrame]:
    """The contacts staged at ``path``, ``rows_per_batch`` at a time (none if no row was accepted). Polars
    decodes only the row groups of each batch, on every core, for a fraction of pyarrow's batch reader's time."""
    if not path.exists():
        return
    rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    for offset in range(0, rows, rows_per_batch):
        yield pl.scan_parquet(path).slice(offset, rows_per_batch).collect()
