"""A person's choice not to answer is no answer, and a category's wording is not free text. Found trying the checker as
a charity would: an equalities form's "Prefer not to say", "Declined" and "Refused" gave W_UNKNOWN_CODE in 90% of rows
("use one of the codes"), which a charity cannot do; suggest-mapping proposed "Refused" as temporary accommodation (a
near spelling of "refuge"), asked for a code for the rest (age_band has none that fits), and called "Prefer not to
say", "No recourse to public funds" and "Cost of living crisis" free text, to be left out of extracts."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from standards.check import check_extract
from standards.mapping import CharityMapping
from standards.normalise import REFUSAL_SPELLINGS, reads_as_blank
from standards.suggest import suggest_mapping
from tests.conftest import CollectingSink, write_csv

HEADER = ["Client ID", "Date of visit", "Need", "Postcode", "Employment", "Housing", "Age band", "Disability"]
REFUSALS = ["Prefer not to say", "Declined", "REFUSED", "Not disclosed", "Declined to answer", "Rather not say"]


def _rows(count: int) -> list[list[str]]:
    answered = ["Part time", "Private rent", "25-34", "No"]
    return [
        [f"C{i:04d}", "20/08/2026", "Food", "B15 2TT", *(REFUSALS[i % 6] if i % 2 else a for a in answered)]
        for i in range(count)
    ]


def test_refusals_are_blank_except_where_a_code_records_them(tmp_path: Path) -> None:
    sink = CollectingSink()
    report = check_extract(write_csv(tmp_path / "form.csv", _rows(40), HEADER), sink=sink).report
    assert report.status == "accepted" and report.rows_accepted == 40, report.codes()
    contacts = sink.contacts()
    refused = contacts.filter(pl.col("person_ref").str.slice(1).cast(pl.Int32) % 2 == 1)
    assert refused.select("employment_status", "tenure", "age_band").null_count().row(0) == (20, 20, 20)
    assert refused.get_column("disability").unique().to_list() == ["prefer_not_to_say"]


@pytest.mark.parametrize("spelling", REFUSAL_SPELLINGS)
def test_every_refusal_is_blank_in_a_field_without_a_code_for_it_and_a_code_in_disability(
    tmp_path: Path, spelling: str
) -> None:
    for form in (spelling, spelling.upper(), spelling.capitalize(), spelling.title()):
        assert reads_as_blank("tenure", form) and reads_as_blank("person_ref", form)
        assert not reads_as_blank("disability", form)
    row = ["C1", "20/08/2026", "Food", "B15 2TT", spelling]
    report = check_extract(write_csv(tmp_path / "one.csv", [row], [*HEADER[:4], "Disability"])).report
    assert report.rows_accepted == 1 and "W_UNKNOWN_CODE" not in report.codes()


def test_suggest_mapping_neither_guesses_a_code_for_a_refusal_nor_asks_for_one(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "form.csv", _rows(40), HEADER)
    suggestion = suggest_mapping(path)
    assert suggestion.mapping.values == {} and suggestion.values_to_choose == {}
    lines = [line.strip("# ") for line in suggestion.text.splitlines()]
    assert not [line for line in lines if line.startswith(tuple(REFUSALS)) or line.startswith("Refused")]
    assert all(column.personal_data == [] for column in suggestion.columns)
    # As written, the proposal is a valid mapping the file passes with.
    mapping = CharityMapping.model_validate(yaml.safe_load(suggestion.text))
    assert check_extract(path, mapping=mapping).report.status == "accepted"


def test_the_standards_own_wording_and_a_repeated_category_are_not_free_text(tmp_path: Path) -> None:
    needs = ["Universal Credit", "No recourse to public funds", "Fuel", "Cost of living crisis", "Food"]
    rows = [[f"C{i}", "20/08/2026", needs[i % 5], "B15 2TT", "Prefer not to say"] for i in range(40)]
    path = write_csv(
        tmp_path / "enquiries.csv", rows, ["Client ID", "Date", "Enquiry Category", "Postcode", "Disability"]
    )
    columns = {column.header: column for column in suggest_mapping(path).columns}
    assert columns["Enquiry Category"].field == "need" and columns["Enquiry Category"].personal_data == []
    assert columns["Disability"].personal_data == []
    # A note written for each contact still is.
    rows = [[*row[:4], f"Spoke to her about the gas bill on visit {i}"] for i, row in enumerate(rows)]
    path = write_csv(tmp_path / "notes.csv", rows, ["Client ID", "Date", "Enquiry Category", "Postcode", "Notes"])
    columns = {column.header: column for column in suggest_mapping(path).columns}
    assert columns["Notes"].field is None and columns["Notes"].personal_data == ["free text in 40 of 40 values"]


def test_a_categories_long_wording_in_a_small_sample_is_not_free_text(tmp_path: Path) -> None:
    """A charity's trial: one of five rows of its "Case Reason" (need) said "Waiting on Universal Credit payment",
    and the column was called free text. Each value of a small sample is met once, so none looks repeated."""
    reasons = ["Food", "Fuel", "Waiting on Universal Credit payment", "Debt", "Housing"]
    rows = [[f"C{i}", "20/08/2026", reason, "B15 2TT"] for i, reason in enumerate(reasons)]
    path = write_csv(tmp_path / "five.csv", rows, ["Client ID", "Date", "Case Reason", "Postcode"])
    columns = {column.header: column for column in suggest_mapping(path).columns}
    assert columns["Case Reason"].field == "need" and columns["Case Reason"].personal_data == []
    # A column of notes guessed as a category still is, past half of its values.
    notes = [f"Spoke to her about the gas bill on visit {i}" for i in range(5)]
    rows = [[*row[:2], note, row[3]] for row, note in zip(rows, notes, strict=True)]
    path = write_csv(tmp_path / "notes.csv", rows, ["Client ID", "Date", "Case Reason", "Postcode"])
    columns = {column.header: column for column in suggest_mapping(path).columns}
    assert columns["Case Reason"].personal_data == ["free text in 5 of 5 values"]
