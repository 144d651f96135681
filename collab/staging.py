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
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import polars as pl
import pyarrow.parquet as pq

from collab.faults import crash_point
from privacy.linkage import TOKEN, keyed_identities, reference_components
from standards.extract import STANDARD_CONTACT_SCHEMA
from standards.rows import spreadsheet_safe
from standards.validation import RowOutcome

CONTACTS_FILE = "contacts.parquet"
STAGED_CONTACT_SCHEMA: dict[str, pl.DataType] = {
    **{name: dtype for name, dtype in STANDARD_CONTACT_SCHEMA.items() if name != "linkage_basis"},
    "linked": pl.Boolean(),
}
LINKAGE_UNITS_FILE = "linkage_units.parquet"
# While a file is checked: each distinct keyed identity of each batch, and each contact's token.
_IDENTITIES_FILE = "linkage_identities.parquet"
_TOKENS_FILE = "contacts.tokens.parquet"
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
        self._identities_path = staging_dir / _IDENTITIES_FILE
        self._identities: pq.ParquetWriter | None = None
        self.rejected_path = quarantine_dir / REJECTED_FILE
        self._quarantine_dir = quarantine_dir
        self._writer: pq.ParquetWriter | None = None
        self._rejected: csv.writer | None = None  # type: ignore[valid-type]
        self._rejected_handle = None
        self.rows_accepted = 0
        self.rows_rejected = 0

    def accepted(self, contacts: pl.DataFrame) -> None:
        bases = contacts.get_column("linkage_basis")
        if self._linkage_key:
            # Keyed now, one batch at a time; which identity each reference keeps is chosen at the end.
            distinct = bases.drop_nulls().unique(maintain_order=True)
            keyed = keyed_identities(self._linkage_key, distinct)
            tokens = bases.replace_strict(distinct, keyed.get_column(TOKEN), default=None).alias(TOKEN)
            identities = keyed.to_arrow()
            if self._identities is None:
                self._identities = pq.ParquetWriter(self._identities_path, identities.schema, **_COMPRESSION)
            self._identities.write_table(identities)
        else:
            tokens = pl.Series(TOKEN, [None] * len(bases), pl.String)
        table = contacts.drop("linkage_basis").with_columns(tokens).to_arrow()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.contacts_path.with_name(_TOKENS_FILE), table.schema, **_COMPRESSION)
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
        for path in (self.contacts_path, self.units_path, self.rejected_path, self._identities_path):
            path.unlink(missing_ok=True)
        self.contacts_path.with_name(_TOKENS_FILE).unlink(missing_ok=True)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._writer is not None:
            self._writer.close()
            self._resolve_linkage()
        if self._identities is not None:
            self._identities.close()
        self._identities_path.unlink(missing_ok=True)
        if self._rejected_handle is not None:
            self._rejected_handle.close()

    def _resolve_linkage(self) -> None:
        """Write each reference's linkage record and mark its contacts ``linked``; drop the tokens."""
        with_tokens = self.contacts_path.with_name(_TOKENS_FILE)
        contacts = pl.scan_parquet(with_tokens)
        linked = pl.lit(False)
        if self._identities is not None:
            self._identities.close()
            self._identities = None
            # One record per reference, so it fits in memory; there the plan runs in a quarter of the
            # streaming engine's time (which handles the joined list column slowly).
            units = reference_components(contacts, pl.scan_parquet(self._identities_path)).collect(engine="in-memory")
            units.write_parquet(self.units_path, **_COMPRESSION)
            references = units.get_column("person_ref")
            linked = pl.col("person_ref").is_in(references.implode())
        contacts.with_columns(linked.alias("linked")).select(*STAGED_CONTACT_SCHEMA).sink_parquet(
            self.contacts_path, **_COMPRESSION
        )
        with_tokens.unlink()
