"""suggest-mapping's guesses from a header's spelling are borne out by the column's values. Found trying it as a
charity would, on three CRMs' exports: Salesforce's "Contact ID" (C-0001...) was proposed as contact_date (one letter
from the alias "contact date") and its real date column dropped as a second one; Charitylog's "Enquiry Date" as need
("enquiry type"); Lamplight's "Activity type" as contact_date ("activity date"). Each proposal, used as written, then
failed the check with E_MISSING_COLUMN, whose message says to run suggest-mapping."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from standards.check import check_extract
from standards.mapping import CharityMapping
from standards.suggest import suggest_mapping
from tests.conftest import write_csv

DATES = ["01/07/2026", "08/07/2026", "15/07/2026", "22/07/2026", "29/07/2026"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            ["Contact ID", "Case: Date/Time Opened", "Reason for referral", "Postcode"],
            {"Contact ID": "person_ref", "Case: Date/Time Opened": "contact_date"},
        ),
        (
            ["Client No", "Enquiry Date", "Enquiry Type", "Postcode"],
            {"Enquiry Date": "contact_date", "Enquiry Type": "need"},
        ),
        (
            ["Lamplight ID", "Date", "Activity type", "Reason for referral", "Postcode"],
            {"Activity type": "support_type", "Date": "contact_date"},
        ),
    ],
    ids=["salesforce", "charitylog", "lamplight"],
)
def test_a_guess_from_a_headers_spelling_must_fit_its_values(
    tmp_path: Path, header: list[str], expected: dict[str, str]
) -> None:
    values = {
        "Contact ID": lambda i: f"C-{i:04d}",
        "Client No": lambda i: f"{1000 + i}",
        "Lamplight ID": lambda i: f"L{i}",
        "Case: Date/Time Opened": lambda i: f"{DATES[i % 5]} 10:3{i % 10}",
        "Enquiry Date": lambda i: DATES[i % 5],
        "Date": lambda i: DATES[i % 5],
        "Enquiry Type": lambda i: ["Food", "Debt", "Fuel"][i % 3],
        "Reason for referral": lambda i: ["Food", "Debt", "Fuel"][i % 3],
        "Activity type": lambda i: ["Advice", "Food parcel", "Signposting", "Referral", "Advocacy"][i % 5],
        "Postcode": lambda i: "B15 2TT",
    }
    rows = [[values[name](i) for name in header] for i in range(30)]
    path = write_csv(tmp_path / "export.csv", rows, header)
    suggestion = suggest_mapping(path)
    assert {name: field for name, field in suggestion.mapping.columns.items() if name in expected} == expected
    assert suggestion.missing == []
    mapping = CharityMapping.model_validate(yaml.safe_load(suggestion.text))
    assert check_extract(path, mapping=mapping).report.rows_accepted == 30


def test_wording_that_holds_two_codes_spellings_is_left_for_the_charity_to_choose(tmp_path: Path) -> None:
    """The longest spelling inside a value won: 'Part time student' was guessed employed_part_time and 'Not working
    due to caring' unemployed, pre-filled, so a proposal used as written counted them wrongly in published figures."""
    wording = ["Part time student", "Not working due to caring", "Full time", "Retired"]
    rows = [[f"C{i}", DATES[i % 5], "Food", "B15 2TT", wording[i % 4]] for i in range(40)]
    header = ["Client ID", "Date", "Need", "Postcode", "Employment"]
    suggestion = suggest_mapping(write_csv(tmp_path / "employment.csv", rows, header))
    assert suggestion.values_to_choose == {"employment_status": ["Part time student", "Not working due to caring"]}
    assert "employment_status" not in suggestion.mapping.values
