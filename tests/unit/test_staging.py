"""Staging a checked file: the contacts written once the file is complete, and read back in batches."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from collab import staging
from collab.staging import (
    CONTACTS_FILE,
    LINKAGE_UNITS_FILE,
    MINIMISED_CONTACTS_FILE,
    STAGED_CONTACT_SCHEMA,
    StagingSink,
    minimise_staged_contacts,
    minimise_staged_units,
    staged_batches,
)
from privacy.linkage import identity_counts, merge_counts, reference_components
from privacy.minimise import minimise, minimise_units
from privacy.pseudonymise import keyed_int64s
from standards.check import CheckOptions, check_extract
from tests.conftest import HEADER, CollectingSink, contact_rows, write_csv

KEY = b"staging-test-key-of-32-bytes-ok!"
LINKING = CheckOptions(links_records=True)  # a linking charity's check, which the sink's key goes with


@pytest.mark.parametrize("linkage_key", [None, KEY])
def test_staged_contacts_are_the_accepted_rows_and_read_back_in_batches(
    tmp_path: Path, linkage_key: bytes | None
) -> None:
    rows = [[*row, "Smith"] for row in contact_rows(23)]  # a surname: a linking charity's contacts are linked
    rows[4][2] = "Not a need"  # rejected: quarantined, not staged
    path = write_csv(tmp_path / "contacts.csv", rows, header=[*HEADER, "Surname"])
    staging, quarantine = tmp_path / "staging", tmp_path / "quarantine"
    with StagingSink(staging, quarantine, linkage_key=linkage_key) as sink:
        options = CheckOptions(batch_size=5, links_records=linkage_key is not None)  # as the pipeline pairs them
        report = check_extract(path, sink=sink, options=options).report
    assert (report.rows_accepted, report.rows_rejected) == (22, 1)
    assert sorted(p.name for p in staging.iterdir()) == (
        [CONTACTS_FILE, "linkage_units.parquet"] if linkage_key else [CONTACTS_FILE]
    )
    assert "linkage_basis" not in pl.read_parquet_schema(staging / CONTACTS_FILE)
    [staged] = staged_batches(staging / CONTACTS_FILE, 100)
    assert staged.schema == pl.Schema(STAGED_CONTACT_SCHEMA)
    assert staged.get_column("source_row").to_list() == [n for n in range(2, 25) if n != 6]
    assert staged.get_column("linked").to_list() == [linkage_key is not None] * 22
    batches = list(staged_batches(staging / CONTACTS_FILE, 8))
    assert [batch.height for batch in batches] == [8, 8, 6]
    assert pl.concat(batches).equals(staged)


def test_nothing_staged_reads_as_no_batches(tmp_path: Path) -> None:
    assert list(staged_batches(tmp_path / CONTACTS_FILE, 8)) == []


def _linking_file(tmp_path: Path, rows: int) -> tuple[Path, pl.DataFrame]:
    """A linking charity's file of ``rows`` references, and the linkage records its accepted contacts give."""
    path = write_csv(
        tmp_path / "contacts.csv", [[*row, "Smith"] for row in contact_rows(rows)], header=[*HEADER, "Surname"]
    )
    collected = CollectingSink()
    check_extract(path, sink=collected, options=LINKING)
    return path, reference_components(KEY, identity_counts(pl.concat(collected.frames)))


def test_linkage_units_written_part_by_part_are_the_reference_components(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, expected = _linking_file(tmp_path, 23)
    assert expected.height > 8
    monkeypatch.setattr(staging, "_UNITS_PART", 4)
    with StagingSink(tmp_path / "staging", tmp_path / "quarantine", linkage_key=KEY) as sink:
        check_extract(path, sink=sink, options=replace(LINKING, batch_size=5))
    written = pq.ParquetFile(tmp_path / "staging" / LINKAGE_UNITS_FILE)
    assert written.num_row_groups == -(-expected.height // 4)
    assert pl.read_parquet(tmp_path / "staging" / LINKAGE_UNITS_FILE).equals(expected)
    # As the warehouse stores them, minimised part by part into a file of their own.
    minimised = minimise_staged_units(tmp_path / "staging" / CONTACTS_FILE, key=KEY, charity_id="c", submission_id="s")
    assert minimised is not None
    assert pl.read_parquet(minimised).equals(minimise_units(expected, key=KEY, charity_id="c", submission_id="s"))
    # Every keyed component, the variants' elements included, is stored once per distinct code; the column
    # that names the record is not.
    for file, naming in ((written, "person_ref"), (pq.ParquetFile(minimised), "unit_key")):
        group = file.metadata.row_group(0)
        encoded = {group.column(i).path_in_schema: group.column(i).encodings for i in range(group.num_columns)}
        assert {path for path, encodings in encoded.items() if "RLE_DICTIONARY" in encodings} == set(encoded) - {naming}
    assert (
        minimise_staged_units(tmp_path / "elsewhere" / CONTACTS_FILE, key=KEY, charity_id="c", submission_id="s")
        is None
    )


def test_identity_counts_are_merged_rarely_and_give_the_same_linkage_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 200 references, each a distinct identity, in batches of 5: merging the whole total at each batch past the
    # threshold would merge about 40 times; merging once as many wait as the total holds, a handful.
    path, expected = _linking_file(tmp_path, 200)
    merges: list[int] = []

    def counted(counts: list[pl.DataFrame]) -> pl.DataFrame:
        merges.append(sum(c.height for c in counts))
        return merge_counts(counts)

    monkeypatch.setattr(staging, "merge_counts", counted)
    monkeypatch.setattr(staging, "_COUNTS_MERGE_ROWS", 10)
    with StagingSink(tmp_path / "staging", tmp_path / "quarantine", linkage_key=KEY) as sink:
        check_extract(path, sink=sink, options=replace(LINKING, batch_size=5))
    assert 2 <= len(merges) <= 8  # the last one is the units' own, at the end
    assert pl.read_parquet(tmp_path / "staging" / LINKAGE_UNITS_FILE).equals(expected)


def test_a_check_that_stops_with_an_error_stages_no_contacts_and_keys_nothing(tmp_path: Path) -> None:
    path, _ = _linking_file(tmp_path, 12)
    staged = tmp_path / "staging"
    with pytest.raises(RuntimeError), StagingSink(staged, tmp_path / "quarantine", linkage_key=KEY) as sink:
        check_extract(path, sink=sink, options=replace(LINKING, batch_size=5))
        raise RuntimeError("the step failed after the check")
    assert sorted(p.name for p in staged.iterdir()) == []


def test_a_code_repeated_across_records_is_stored_once_even_with_many_distinct_codes(tmp_path: Path) -> None:
    # 150,000 distinct 64-bit codes, each five times a part, far apart: past Parquet's default dictionary page
    # (131,072 of them), which would fall back to storing every row's code (about 6.2 MB a part compressed).
    codes = keyed_int64s(KEY, ("link", "birth_date"), [str(i) for i in range(150_000)]).tolist() * 5
    parts = (
        pl.DataFrame({"unit_key": [part * len(codes) + i for i in range(len(codes))], "birth_date": codes})
        for part in (1, 2)
    )
    written = staging._written(parts, tmp_path / "units.parquet")
    assert written is not None
    assert pl.read_parquet(written).get_column("birth_date").to_list() == codes * 2
    metadata = pq.ParquetFile(written).metadata
    for group in range(metadata.num_row_groups):
        assert metadata.row_group(group).column(1).total_compressed_size < 3_000_000


def _minimised_contacts(staged: Path) -> Path | None:
    return minimise_staged_contacts(
        staged, key=KEY, charity_id="c", submission_id="s", standard_version="test", rows_per_batch=5
    )


def test_minimised_contacts_are_made_once_named_only_when_complete_and_dropped_when_checked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_csv(tmp_path / "contacts.csv", contact_rows(12))
    staged_dir = tmp_path / "staging"
    with StagingSink(staged_dir, tmp_path / "quarantine") as sink:
        check_extract(path, sink=sink, options=replace(LINKING, batch_size=5))
    staged = staged_dir / CONTACTS_FILE
    expected = pl.concat(
        minimise(batch, key=KEY, charity_id="c", submission_id="s", standard_version="test")
        for batch in staged_batches(staged, 5)
    )

    # Stopped mid-way (a crash, a full disk): nothing of that name exists, so the next try makes it whole.
    def failing_minimise(*args: object, **kwargs: object) -> pl.DataFrame:
        raise OSError("disk full")

    monkeypatch.setattr(staging, "minimise", failing_minimise)
    with pytest.raises(OSError):
        _minimised_contacts(staged)
    assert not (staged_dir / MINIMISED_CONTACTS_FILE).exists()
    monkeypatch.undo()

    made = _minimised_contacts(staged)
    assert made == staged_dir / MINIMISED_CONTACTS_FILE and pl.read_parquet(made).equals(expected)
    made_at = made.stat().st_mtime_ns
    assert _minimised_contacts(staged) == made and made.stat().st_mtime_ns == made_at  # made once, then read

    # Checked again (a resumed submission), the file is staged afresh and so is what the load reads.
    with StagingSink(staged_dir, tmp_path / "quarantine") as sink:
        assert not made.exists()
        check_extract(write_csv(tmp_path / "fewer.csv", contact_rows(3)), sink=sink)
    assert pl.read_parquet(_minimised_contacts(staged)).height == 3  # type: ignore[arg-type]
    assert _minimised_contacts(tmp_path / "elsewhere" / CONTACTS_FILE) is None
