"""Staging files of one submission: accepted contacts (Parquet) and rejected rows (quarantine CSV).

Rejected rows go back only to analysts, but they are opened in spreadsheets: every cell that a
spreadsheet would run as a formula is neutralised with a leading apostrophe.

A contact's linkage basis (normalised surname, date of birth and postcode district) never reaches a
staged file. For a charity that links records it is keyed, component by component, into one linkage
record per person_ref (``linkage_units.parquet``: the identity most of the reference's contacts
carry, ``privacy.linkage``), and each contact is marked ``linked`` if its reference has one (as it is
read back: the units are known only once the file is complete, the contacts are written as they come);
for any other charity it is dropped.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from collab.faults import crash_point
from privacy.linkage import COMPONENTS, VARIANTS, identity_counts, merge_counts, reference_component_parts
from privacy.minimise import minimise, minimise_units
from standards.extract import STANDARD_CONTACT_SCHEMA
from standards.rows import spreadsheet_safe
from standards.validation import RowOutcome

CONTACTS_FILE = "contacts.parquet"
STAGED_CONTACT_SCHEMA: dict[str, pl.DataType] = {
    **{name: dtype for name, dtype in STANDARD_CONTACT_SCHEMA.items() if name != "linkage_basis"},
    "linked": pl.Boolean(),
}
LINKAGE_UNITS_FILE = "linkage_units.parquet"
# The same contacts and records as the warehouse stores them, written once the submission is accepted
# (``minimise_staged_contacts``, ``minimise_staged_units``).
MINIMISED_CONTACTS_FILE = "contacts.minimised.parquet"
MINIMISED_UNITS_FILE = "linkage_units.minimised.parquet"
# While a file is checked: its contacts so far, a row group per batch; named ``CONTACTS_FILE`` once complete.
_PARTIAL_FILE = "contacts.partial.parquet"
# Rows of identity counts held before they are merged: what the batches add is merged into the total once more
# rows wait than this and than the total holds, so memory follows the distinct references and identities (at
# most twice them), not the rows, and merging costs time in proportion to them: merging the total at every batch
# past this many took 189 s over a file of 4,000,000 distinct identities.
_COUNTS_MERGE_ROWS = 1_000_000
REJECTED_FILE = "rejected_rows.csv"
# zstd at its fastest level: files within 1% of the default level's size for half its time. No column
# statistics: they cost a fifth to a third of writing these files, whose readers read whole row groups.
# Dictionaries only for the columns of a few distinct values (codes, quarters, areas, age bands): trying one
# for every column (references, amounts, row numbers) cost as much again, for a larger file.
_CONTACTS_WRITING = {
    "compression": "zstd",
    "compression_level": 1,
    "write_statistics": False,
    "store_schema": False,
    "use_dictionary": [n for n, dtype in STAGED_CONTACT_SCHEMA.items() if dtype == pl.String and n != "person_ref"],
}
# Linkage records keyed and written at most this many at a time: memory holds one part's surname spellings and
# codes (see ``privacy.linkage.reference_component_parts``).
_UNITS_PART = 100_000
# Files read whole by one reader (the units, and what the load reads): no statistics, the contacts' zstd level,
# and a dictionary for every column of strings but the one that names a row, and for the keyed linkage components
# (``_repeated_values``). A keyed component has one 64-bit code per distinct value, far fewer than rows (some
# thousands of surnames, tens of thousands of birth dates), so a dictionary stores each code once and each row a
# short index. Measured on 300,000 references' linkage records (``bench.relink``'s identities; then a surname per
# three people): 2.6 MB with dictionaries, 4.9 MB without (7.7 and 10.9 MB), written in the same 0.11 s (0.16 s),
# read in 0.06 s, not 0.14 s (0.12 and 0.11 s). Parquet's default 1 MB dictionary page gives up after 131,072 codes and writes
# every row's code; with room for them, none of a part's codes is written twice. A column's dictionary lasts one
# row group (a part) and stops growing at this size, so a file of ever-new surnames costs at most this much
# memory per column.
_LINKAGE_CODES = (*COMPONENTS, VARIANTS)
_READ_WHOLE_WRITING = {
    "compression": "zstd",
    "compression_level": 1,
    "write_statistics": False,
    "store_schema": False,
    "dictionary_pagesize_limit": 32 * 1024 * 1024,
}
# Polars' frames handed to pyarrow as they are held (string views), not copied into Arrow's classic strings:
# the copy cost as much as writing. The files store no Arrow schema, so readers see plain strings.
_ARROW_AS_POLARS_HOLDS_IT = pl.CompatLevel.newest()


class StagingSink:
    """Receives a submission's accepted contacts and rejected rows while it is checked."""

    def __init__(self, staging_dir: Path, quarantine_dir: Path, linkage_key: bytes | None = None) -> None:
        staging_dir.mkdir(parents=True, exist_ok=True)
        self._linkage_key = linkage_key
        self.contacts_path = staging_dir / CONTACTS_FILE
        self.units_path = staging_dir / LINKAGE_UNITS_FILE
        # Which identity each reference keeps is chosen at the end, from counts held in memory (an
        # identity never reaches a file unkeyed). Contacts are written here first, batch by batch, while
        # the next batches are judged, and take their name only once complete.
        self._partial_path = staging_dir / _PARTIAL_FILE
        self._counts: list[pl.DataFrame] = []  # the merged total first, once there is one
        self._merged_rows = 0
        self.rejected_path = quarantine_dir / REJECTED_FILE
        self._quarantine_dir = quarantine_dir
        self._writer: pq.ParquetWriter | None = None
        self._rejected: csv.writer | None = None  # type: ignore[valid-type]
        self._rejected_handle = None
        self.rows_accepted = 0
        self.rows_rejected = 0

    def accepted(self, contacts: pl.DataFrame) -> None:
        if self._linkage_key:
            self._counts.append(identity_counts(contacts))
            waiting = sum(c.height for c in self._counts) - self._merged_rows
            if len(self._counts) > 1 and waiting > max(_COUNTS_MERGE_ROWS, self._merged_rows):
                merged = merge_counts(self._counts)
                self._counts, self._merged_rows = [merged], merged.height
        table = contacts.drop("linkage_basis").to_arrow(compat_level=_ARROW_AS_POLARS_HOLDS_IT)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._partial_path, table.schema, **_CONTACTS_WRITING)
        elif not table.schema.equals(self._writer.schema):
            table = table.cast(self._writer.schema)  # a batch of nulls only is typed as the rest
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
        minimised = [self.contacts_path.with_name(name) for name in (MINIMISED_CONTACTS_FILE, MINIMISED_UNITS_FILE)]
        for path in (self.contacts_path, self.units_path, self.rejected_path, self._partial_path, *minimised):
            path.unlink(missing_ok=True)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._writer is not None:
            self._writer.close()
            if kind is not None:  # the check stopped: what was staged is not a file's contacts, nor keyed
                self._partial_path.unlink(missing_ok=True)
            else:
                if self._linkage_key and self._counts:
                    self._write_units(self._linkage_key)
                self._partial_path.replace(self.contacts_path)
        if self._rejected_handle is not None:
            self._rejected_handle.close()

    def _write_units(self, key: bytes) -> None:
        """Each reference's linkage record, keyed and written part by part."""
        counts = merge_counts(self._counts)
        self._counts = []
        writer: pq.ParquetWriter | None = None
        try:
            for part in _made_ahead(reference_component_parts(key, counts, _UNITS_PART)):
                table = part.to_arrow(compat_level=_ARROW_AS_POLARS_HOLDS_IT)
                if writer is None:
                    repeated = _repeated_values(table.schema, naming_a_row="person_ref")
                    writer = pq.ParquetWriter(
                        self.units_path, table.schema, use_dictionary=repeated, **_READ_WHOLE_WRITING
                    )
                elif not table.schema.equals(writer.schema):
                    table = table.cast(writer.schema)  # a part of nulls only is typed as the first
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()


def _repeated_values(schema: pa.Schema, *, naming_a_row: str | None = None) -> list[str]:
    """The paths of the columns in ``schema`` (a list's by its element, as Parquet names it) whose values repeat
    from row to row: those of strings but ``naming_a_row`` (if given), whose values are each a row's own and gain
    nothing from a dictionary, and the keyed linkage components (``_READ_WHOLE_WRITING``)."""
    paths = []
    for column in schema:
        listed = pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
        kind = column.type.value_type if listed else column.type
        if column.name != naming_a_row and (_is_string(kind) or column.name in _LINKAGE_CODES):
            paths.append(f"{column.name}.list.element" if listed else column.name)
    return paths


def _is_string(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _made_ahead(parts: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    """``parts``, each next one made in another thread while the caller writes the last: Polars and pyarrow
    both release the GIL, so the two take both cores. At most two parts are held at once."""
    with ThreadPoolExecutor(max_workers=1) as maker:
        upcoming = maker.submit(next, parts, None)
        while (part := upcoming.result()) is not None:
            upcoming = maker.submit(next, parts, None)
            yield part


def minimise_staged_contacts(
    contacts_path: Path, *, key: bytes, charity_id: str, submission_id: str, standard_version: str, rows_per_batch: int
) -> Path | None:
    """The contacts staged at ``contacts_path`` as the warehouse stores them (``privacy.minimise.minimise``),
    written batch by batch to a file beside them, once (the file is named only when complete); None if none
    were accepted.

    Made when the submission is checked, beside other submissions' loads, so that its own load (one at a time
    across every run) only reads it; by the load itself if the check's run stopped first. The load reads it in
    one statement inside its transaction: DuckDB writes the rows of a large insert to the database file as
    they come, so neither this process nor the warehouse holds them all."""
    target = contacts_path.with_name(MINIMISED_CONTACTS_FILE)
    if target.exists():
        return target
    minimised = (
        minimise(batch, key=key, charity_id=charity_id, submission_id=submission_id, standard_version=standard_version)
        for batch in staged_batches(contacts_path, rows_per_batch)
    )
    return _written(minimised, target)


def minimise_staged_units(contacts_path: Path, *, key: bytes, charity_id: str, submission_id: str) -> Path | None:
    """The linkage records staged beside ``contacts_path`` as the warehouse stores them
    (``privacy.minimise.minimise_units``), written part by part to a file beside them, once, as
    ``minimise_staged_contacts`` writes the contacts; None if there are none.

    The warehouse reads that file itself: a large submission's records are never all held in memory, nor
    copied again to reach DuckDB."""
    staged, target = contacts_path.with_name(LINKAGE_UNITS_FILE), contacts_path.with_name(MINIMISED_UNITS_FILE)
    if not staged.exists():
        return None
    if target.exists():
        return target
    minimised = (
        minimise_units(pl.DataFrame(part), key=key, charity_id=charity_id, submission_id=submission_id)
        for part in _row_groups(staged)
    )
    return _written(minimised, target)


def _row_groups(path: Path) -> Iterator[pa.Table]:
    """The rows of the Parquet file at ``path``, a row group at a time: the staged linkage records' row groups are
    the parts they were made in, bounded in records and in variants (``privacy.linkage.reference_component_parts``)."""
    staged = pq.ParquetFile(path)
    for group in range(staged.num_row_groups):
        yield staged.read_row_group(group)


def _written(parts: Iterator[pl.DataFrame], target: Path) -> Path | None:
    """``parts`` written as they are made (the next made while the last is written), then named ``target``: a
    file of that name is always complete. None, and no file, if there are none. Every column of strings in them repeats
    from row to row (a row is named by its person key, an integer), so each has a dictionary (``_repeated_values``)."""
    partial = target.with_name(f"{target.name}.partial")
    writer: pq.ParquetWriter | None = None
    try:
        for part in _made_ahead(parts):
            table = part.to_arrow(compat_level=_ARROW_AS_POLARS_HOLDS_IT)
            if writer is None:
                repeated = _repeated_values(table.schema)
                writer = pq.ParquetWriter(partial, table.schema, use_dictionary=repeated, **_READ_WHOLE_WRITING)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        return None
    partial.replace(target)
    return target


def staged_batches(path: Path, rows_per_batch: int) -> Iterator[pl.DataFrame]:
    """The contacts staged at ``path``, ``rows_per_batch`` at a time (none if no row was accepted), each
    marked ``linked`` if its reference has a linkage record beside them (a reference has one exactly when one
    of its contacts carries an identity). Polars decodes only the row groups of each batch, on every core, for
    a fraction of pyarrow's batch reader's time."""
    if not path.exists():
        return
    units = path.with_name(LINKAGE_UNITS_FILE)
    # Marked for the whole file at once: matching each batch's references against every linkage record built a set
    # of them all again for each batch, most of the time this took (0.95 of 0.97 s for 1M contacts, 438,000 records).
    references = pl.read_parquet(path, columns=["person_ref"]).get_column("person_ref")
    linked = (
        references.is_in(pl.read_parquet(units, columns=["person_ref"]).get_column("person_ref"))
        if units.exists()
        else pl.repeat(False, references.len(), eager=True)
    ).alias("linked")
    del references
    for offset in range(0, linked.len(), rows_per_batch):
        batch = pl.scan_parquet(path).slice(offset, rows_per_batch).collect()
        yield batch.with_columns(linked.slice(offset, rows_per_batch)).select(*STAGED_CONTACT_SCHEMA)


def staged_tables(path: Path, rows_per_batch: int, columns: list[str], codes: list[str]) -> Iterator[pa.Table]:
    """Those of ``columns`` that the contacts staged at ``path`` have (never ``linked``), as Arrow tables of
    whole row groups of about ``rows_per_batch`` rows each (none if no row was accepted), the ``codes``
    columns dictionary-encoded as the file holds them: a code is never decoded into a string per row."""
    if not path.exists():
        return
    contacts = pq.ParquetFile(path, read_dictionary=codes)
    present = [name for name in columns if name in contacts.schema_arrow.names]
    groups: list[int] = []
    rows = 0
    for group in range(contacts.num_row_groups):
        if groups and rows + contacts.metadata.row_group(group).num_rows > rows_per_batch:
            yield contacts.read_row_groups(groups, columns=present)
            groups, rows = [], 0
        groups.append(group)
        rows += contacts.metadata.row_group(group).num_rows
    if groups:
        yield contacts.read_row_groups(groups, columns=present)
