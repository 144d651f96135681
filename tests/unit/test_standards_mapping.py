"""A charity's own headers and wording: aliases, lenient matching, mapping files and proposals."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import yaml

from standards.check import check_extract
from standards.codelists import codelist_names, load_codelist, match_key
from standards.issues import FileRejected
from standards.mapping import (
    FIELD_ALIASES,
    CharityMapping,
    amount_differs,
    column_letter,
    field_for_header,
    find_header,
    header_key,
    header_match,
    is_identifier_header,
    plan_columns,
)
from standards.suggest import suggest_mapping
from tests.conftest import CollectingSink, write_csv, write_xlsx


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("D.O.B", "date_of_birth"),
        ("Date of Birth", "date_of_birth"),
        ("date of birth (dd/mm/yyyy)", "date_of_birth"),
        ("Post Code", "postcode"),
        ("POSTCODE", "postcode"),
        ("post_code (full)", "postcode"),
        ("Reason for referral", "need"),
        ("Client ID", "person_ref"),
        ("ClientRef", "person_ref"),
        ("Person-Ref", "person_ref"),
        ("Monthly income (£)", "monthly_income_gbp"),
        ("LAD25CD", "local_authority_code"),
        ("Age", "age_band"),
        ("Notes", None),
        ("Client Name", None),
    ],
)
def test_headers_match_by_alias_and_ignoring_case_spaces_punctuation(header: str, field: str | None) -> None:
    assert field_for_header(header, CharityMapping()) == field


@pytest.mark.parametrize(
    ("header", "identifying"),
    [("Client Name", True), ("Outcome notes", True), ("E-mail", True), ("Home phone", True), ("NI No", True),
     ("Referral source", False), ("Town", False), ("Outcome", False)],
)  # fmt: skip
def test_headers_that_name_personal_details(header: str, identifying: bool) -> None:
    assert is_identifier_header(header) is identifying


def test_a_mapping_file_wins_over_the_aliases() -> None:
    mapping = CharityMapping(columns={"Date": "date_of_birth"})
    assert field_for_header("date", mapping) == "date_of_birth"


def test_brackets_never_closed_are_read_in_time_that_grows_with_the_header() -> None:
    """Found by the attacker's trial: the search for a bracketed qualifier ran to the header's end from each bracket
    never closed, so a file of headers of 1,000 '(' took 25 s, and a mapping naming 200 such columns 13 s (its columns
    were keyed again for every cell looked at). A header of 100,000 now takes no time."""
    assert header_key("Visit date (" + "(" * 100_000) == header_key("Visit date") != ""
    assert header_key("Income [" + "[" * 100_000 + "(£)") == header_key("Income")
    assert header_key("Date of birth (dd/mm/yyyy) [required]") == header_key("Date of birth")
    mapping = CharityMapping(columns={"(" * 1_000 + str(number): "need" for number in range(200)})
    assert {field_for_header("Reason (" + "(" * 1_000, mapping) for _ in range(500)} == {"need"}


def test_aliases_and_codelists_are_unambiguous() -> None:
    seen: dict[str, str] = {}
    for name, aliases in FIELD_ALIASES.items():
        for alias in aliases:
            assert seen.setdefault(header_key(alias), name) == name, alias
    for codelist in codelist_names():
        spellings: dict[str, str] = {}
        for code in load_codelist(codelist).codes:
            for spelling in (code.code, code.label, *code.synonyms):
                assert spellings.setdefault(match_key(spelling), code.code) == code.code, (codelist, spelling)


@pytest.mark.parametrize(
    ("need", "code"),
    [
        ("Fuel", "fuel_energy"),
        ("Debt advice", "debt"),
        ("FUEL & ENERGY", "fuel_energy"),
        ("fuel_energy", "fuel_energy"),
        ("Universal Credit", "benefits_income"),
        ("rent arrears", "housing_homelessness"),
        ("Domestic abuse", "family_relationships"),
        ("Food bank", "food"),
    ],
)
def test_codelist_values_match_codes_labels_and_synonyms(tmp_path: Path, need: str, code: str) -> None:
    path = write_csv(
        tmp_path / "needs.csv", [["A1", "13/01/2026", need, "B15"]], ["Client ID", "Date", "Need", "Postcode"]
    )
    sink = CollectingSink()
    assert check_extract(path, sink=sink).report.status == "accepted"
    assert pl.concat(sink.frames).get_column("need").to_list() == [code]


def test_dates_in_every_accepted_form(tmp_path: Path) -> None:
    rows = [
        ["A1", "2026-01-31", "1988-04-13"],
        ["A2", "31/01/2026", "13/04/1988"],
        ["A3", "31/1/26", "13/4/88"],
        ["A7", "31-01-26", "13-04-88"],
        ["A4", "31 Jan 2026", "13 April 1988"],
        ["A5", "46053", "32246"],
        ["A6", "2026-01-31 00:00:00", ""],
    ]
    path = write_csv(
        tmp_path / "dates.csv", [[*row, "Food", "B15"] for row in rows], ["Ref", "Date", "DOB", "Need", "Postcode"]
    )
    sink = CollectingSink()
    report = check_extract(path, mapping=CharityMapping(columns={"Ref": "person_ref"}), sink=sink).report
    assert report.status == "accepted", report.issues
    contacts = pl.concat(sink.frames)
    assert set(contacts.get_column("contact_date").to_list()) == {dt.date(2026, 1, 31)}
    assert contacts.sort("person_ref").get_column("age_band").to_list() == ["35_44"] * 5 + [None, "35_44"]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"columns": {"Ref": "reference"}}, "in 'columns': not fields of the standard: reference"),
        ({"values": {"need": {"UC problem": "benefits"}}}, "'benefits' is not a code of need; choose one of food"),
        ({"values": {"person_ref": {"x": "y"}}}, "only codelist fields take value maps"),
        ({"date_format": "%d/%m"}, "has no year"),
        # Polars refuses an hour without its minutes: every file of the charity failed as an error of ours.
        ({"date_format": "%d/%m/%Y %H"}, r"cannot be used to read dates \(please either specify both hour and minute"),
        ({"colums": {}}, "'colums' is not one of the sections"),
        # A wording at its field's indent (the outside users' trial: "Input should be a valid dictionary").
        (
            {"values": {"tenure": None, "Lives with mum": "living_with_family_friends"}},
            "'Lives with mum: living_with_family_friends' in the values section is not under a field: indent it",
        ),
        ({"values": {"need": "food"}}, "in 'values > need': each line under it is 'your wording: code'"),
    ],
)
def test_mapping_files_are_checked_when_loaded(tmp_path: Path, mapping: dict, message: str) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(mapping))
    with pytest.raises(ValueError, match=message):  # plain English, naming the entry at fault
        CharityMapping.load(path)


def test_a_mapping_file_with_only_comments_in_a_section_is_empty_and_bad_yaml_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("columns:\n  # Ref: person_ref\nvalues:\n  need:\n    # UC problem: ???\n")
    assert CharityMapping.load(path) == CharityMapping()
    path.write_text("columns:\n  Ref: person_ref\n   When: contact_date\n")
    with pytest.raises(ValueError, match=r"mapping\.yaml cannot be read: line 3 is indented more than the line above"):
        CharityMapping.load(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("columns:\n  Ref: person_ref\n\tWhen: contact_date\n", "line 3 is indented with a tab; indent it with spaces"),
        (
            "columns:\n  Ref: person_ref\n  When contact_date\n  Need: need\n",
            "line 3 has no ':' between your wording and what it stands for",
        ),
        (
            'columns:\n  Ref: person_ref\ndate_format: "day/month/year\n',
            "a quote opened on line 3 is not closed; end the text with the same quote mark",
        ),
        (
            "columns:\n  Ref: person_ref\n  Time: 10:30: contact_date\n",
            "line 3 has more than one ':'; put your wording",
        ),
        # YAML keeps the last of two: the charity's trial was told its reference column was missing.
        (
            "columns:\n  Ref: person_ref\n  Ref: contact_date\n",
            "'Ref' is written twice in one section, at lines 2 and 3; keep the one you mean",
        ),
        (
            "values:\n  need:\n    Food: food\n    Food: fuel\n",
            "'Food' is written twice in one section, at lines 3 and 4",
        ),
        ("columns:\n  - Ref: person_ref\n", "'columns' holds lines 'your column: field' indented under it, not a list"),
        ("values:\n  - need\n", "'values' holds a line for each field \\('need:'\\) with lines 'your wording: code'"),
        ("- columns\n", "is not a mapping file: it has sections such as 'columns:'"),
    ],
)
def test_a_mapping_file_edited_by_hand_is_refused_naming_the_slip_and_its_line(
    tmp_path: Path, text: str, message: str
) -> None:
    """Slips a charity's trial made editing the proposed mapping file: YAML's own errors name a later line than the
    slip's (the next line for a missing ':', the end of the file for a quote never closed) or none at all."""
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        CharityMapping.load(path)


@pytest.mark.parametrize(
    ("places", "field"),
    [
        (["B15 2TT", "BS1 4DJ", "LS1 1UR", "M1 1AE", "B15", "Birmingham"], "postcode"),
        (["Leeds", "Birmingham", "E08000025", "Bristol, City of", "Sheffield", "B15 2TT"], "local_authority_code"),
        (["A1", "B2", "C3", "D4", "E5", "F6"], None),  # codes shaped like districts, with no postcode or council
    ],
)
def test_suggest_mapping_reads_an_area_column_that_mixes_postcodes_districts_and_councils(
    tmp_path: Path, places: list[str], field: str | None
) -> None:
    """Found by the outside users' trial: one council name among postcodes made the column "personal data: leave it
    out", and a charity following the advice would have deleted its only area column."""
    rows = [[f"A{i}", "05/01/2026", "food", place] for i, place in enumerate(places)]
    path = write_csv(tmp_path / "where.csv", rows, ["Client ID", "Date of visit", "Reason for referral", "Where"])
    [where] = [c for c in suggest_mapping(path).columns if c.header == "Where"]
    assert where.field == field


def test_suggest_mapping_proposes_columns_values_and_date_format(tmp_path: Path) -> None:
    header = ["Ref", "Wen", "Reason for referal", "Area", "Contact email", "Notes"]
    wording = ["Fod parcel", "UC problem", "Food", "Gas & electric", "Fod parcel"]
    rows = [
        [f"R{i}", f"0{1 + i % 9}/0{1 + i % 3}/2026", wording[i % 5], "E08000025", f"p{i}@example.org", "Seen"]
        for i in range(40)
    ]
    path = write_csv(tmp_path / "own.csv", rows, header)
    suggestion = suggest_mapping(path)
    assert CharityMapping.model_validate(yaml.safe_load(suggestion.text)) == suggestion.mapping
    assert suggestion.mapping.columns == {
        "Ref": "person_ref",
        "Wen": "contact_date",
        "Reason for referal": "need",
        "Area": "local_authority_code",
    }
    assert suggestion.mapping.values == {"need": {"Fod parcel": "food"}}
    assert suggestion.values_to_choose == {"need": ["UC problem"]}
    assert suggestion.mapping.date_format == "%d/%m/%Y" and suggestion.missing == []
    assert "p0@example.org" not in suggestion.text  # personal data is never copied into a mapping file
    how = {c.header: c for c in suggestion.columns}
    assert how["Contact email"].field is None and how["Contact email"].personal_data == [
        "an email address in 40 of 40 values"
    ]
    # The charity chooses the one code left open, and the file is accepted.
    open_line = next(line for line in suggestion.text.splitlines() if "UC problem: ???" in line)
    assert "row" in open_line  # how many rows the choice affects
    chosen = suggestion.text.replace(open_line, "    UC problem: benefits_income")
    mapping_path = tmp_path / "own.mapping.yaml"
    mapping_path.write_text(chosen)
    report = check_extract(path, mapping=CharityMapping.load(mapping_path)).report
    assert report.status == "accepted_with_warnings"
    assert report.codes() == ["W_DROPPED_IDENTIFIER"]  # the email column, and the notes


def test_a_yes_or_no_column_is_not_guessed_to_be_disability_unless_its_header_says_so(tmp_path: Path) -> None:
    # A charity's trial: "Money worries?" (yes/no) was proposed as disability, which would have published it as one.
    header = ["Ref", "Date", "Need", "Area", "Money worries?"]
    rows = [[f"R{i}", "01/02/2026", "Food", "E08000025", "Yes" if i % 2 else "No"] for i in range(30)]
    columns = {c.header: c for c in suggest_mapping(write_csv(tmp_path / "own.csv", rows, header)).columns}
    assert columns["Money worries?"].field is None
    # Values a disability column holds beyond yes and no still say what it is.
    rows = [[*row[:4], "Prefer not to say" if i % 5 == 0 else row[4]] for i, row in enumerate(rows)]
    columns = {c.header: c for c in suggest_mapping(write_csv(tmp_path / "coded.csv", rows, header)).columns}
    assert columns["Money worries?"].field == "disability"


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_suggest_mapping_reads_a_file_with_a_header_and_no_rows(tmp_path: Path, kind: str) -> None:
    """A portal trial: the mapping page of a header-only file was a 500 (a column of no values had no type)."""
    path = tmp_path / f"header-only.{kind}"
    if kind == "csv":
        path.write_text("Client ID,Visit date,Need\n", encoding="utf-8")
    else:
        pl.DataFrame(schema={"Client ID": pl.String, "Visit date": pl.String, "Need": pl.String}).write_parquet(path)
    suggestion = suggest_mapping(path)
    assert [c.field for c in suggestion.columns] == ["person_ref", "contact_date", "need"]


def test_suggest_mapping_names_the_sheet_of_a_workbook(tmp_path: Path) -> None:
    rows = [[f"C{i}", f"1{i}/02/2026", "Debt", "E09000033"] for i in range(1, 6)]
    path = write_xlsx(
        tmp_path / "book.xlsx",
        {
            "Read me": [["Exported from the case system"]],
            "Clients": [["Case Ref", "Date of Contact", "Primary Need", "LA Code"], *rows],
        },
    )
    suggestion = suggest_mapping(path)
    assert suggestion.mapping.sheet == "Clients" and suggestion.missing == []
    assert suggestion.mapping.date_format == "%d/%m/%Y"  # declared, so a later file's dates are never ambiguous


def test_two_columns_holding_one_field_are_named_by_their_letters() -> None:
    """Found trying the checker as a charity would: "Columns 'need' and 'need' both hold need" said nothing of which
    two columns they were."""
    header = ["person_ref", "contact_date", "need", "local_authority_code", "a", "b", "c", "need"]
    with pytest.raises(FileRejected) as rejected:
        plan_columns(header, CharityMapping())
    assert rejected.value.message == (
        "Columns C ('need') and H ('need') both hold need, and have the same name, so a mapping file cannot tell them "
        "apart: rename or delete all but one of them."
    )
    assert [column_letter(p) for p in (0, 25, 26, 27, 51, 52, 701, 702)] == [
        "A",
        "Z",
        "AA",
        "AB",
        "AZ",
        "BA",
        "ZZ",
        "AAA",
    ]


def test_a_mapping_file_reads_every_plain_value_as_text(tmp_path: Path) -> None:
    """A charity's trial (session 31): the disability column's "On: yes" and "Off: no", as a charity writes them
    (and as suggest-mapping proposed them), were YAML 1.1 booleans, and the mapping was refused as not text."""
    path = tmp_path / "mapping.yaml"
    path.write_text(
        "columns:\n  Disabled (Y/N): disability\n  Tenure: tenure\n"
        "values:\n  disability:\n    On: yes\n    Off: no\n    N: no\n  tenure:\n    01: other\n"
        "sheet: 2024\n",
        encoding="utf-8",
    )
    mapping = CharityMapping.load(path)
    assert mapping.values == {"disability": {"On": "yes", "Off": "no", "N": "no"}, "tenure": {"01": "other"}}
    assert mapping.sheet == "2024"


@pytest.mark.parametrize(
    ("header", "amount", "said"),
    [
        ("Household income (per year)", "monthly_income_gbp", "a yearly amount ('per year')"),
        ("Annual household income", "monthly_income_gbp", "a yearly amount ('Annual')"),
        ("Income p.a.", "monthly_income_gbp", "a yearly amount ('p.a.')"),
        ("Income (per annum)", "monthly_income_gbp", "a yearly amount ('per annum')"),
        ("Weekly income", "monthly_income_gbp", "a weekly amount ('Weekly')"),
        ("Household income (fortnightly)", "monthly_income_gbp", "a fortnightly amount ('fortnightly')"),
        ("Outgoings (per week)", "monthly_essential_costs_gbp", "a weekly amount ('per week')"),
        ("Debt (monthly repayment)", "total_debt_gbp", "a repayment ('repayment')"),
        ("Debt (monthly)", "total_debt_gbp", "a monthly amount ('monthly')"),
        ("Debt [instalments]", "total_debt_gbp", "a repayment ('instalments')"),
    ],
)
def test_a_header_saying_another_period_or_quantity_is_not_matched_to_the_amount(
    header: str, amount: str, said: str
) -> None:
    """The volunteer trial: bracketed words were dropped, so "Household income (per year)" was read as monthly income
    (£18,000 a year stored as £18,000 a month) and "Debt (monthly repayment)" as the total owed, with no warning."""
    because = amount_differs(header, amount)
    assert because is not None and because.startswith(f"its name says {said}")
    assert field_for_header(header, CharityMapping()) is None
    # Named in the mapping file, the column is the charity's word for the field: read as it is, never converted.
    assert field_for_header(header, CharityMapping(columns={header: amount})) == amount


def test_a_bracketed_period_is_why_a_header_of_an_amount_is_not_matched() -> None:
    field, because = header_match("Household income (per year)", CharityMapping())
    assert field is None and because is not None
    assert because.startswith("its name says a yearly amount ('per year'), and monthly_income_gbp is a monthly amount")
    assert because.endswith("in your mapping file only if it holds a monthly amount after all")


@pytest.mark.parametrize(
    ("header", "field"),
    [("Income pcm", "monthly_income_gbp"), ("Monthly outgoings (£)", "monthly_essential_costs_gbp"),
     ("Total debt", "total_debt_gbp"), ("Age (years)", "age_band"), ("Date of visit", "contact_date")],
)  # fmt: skip
def test_a_header_saying_the_fields_own_period_is_matched(header: str, field: str) -> None:
    assert field_for_header(header, CharityMapping()) == field


def test_an_amount_of_another_period_is_reported_as_not_used_and_why(tmp_path: Path) -> None:
    """The finding's file: the two amounts were used (6 columns) and nothing said so."""
    header = [
        "Client ID",
        "Date of visit",
        "Need",
        "Postcode",
        "Household income (per year)",
        "Debt (monthly repayment)",
    ]
    rows = [
        ["C1", "01/10/2026", "Food", "B15 2TT", "£18,000", "£150"],
        ["C2", "02/10/2026", "Debt", "B15 2TT", "£24,500", "£90"],
    ]
    sink = CollectingSink()
    report = check_extract(write_csv(tmp_path / "extract.csv", rows, header), sink=sink).report
    assert report.accepted
    assert set(report.file.columns_used) == {"Client ID", "Date of visit", "Need", "Postcode"}
    because = report.file.columns_not_used_because
    assert "monthly_income_gbp is a monthly amount" in because["Household income (per year)"]
    assert "total_debt_gbp is the total owed" in because["Debt (monthly repayment)"]
    [unused] = [g for g in report.issues if g.code == "W_UNMAPPED_COLUMN"]
    messages = " ".join(example.message for example in unused.examples)
    assert "'Household income (per year)' is not used: its name says a yearly amount" in messages
    assert "not used, not stored: its name says a repayment" in report.to_html()
    contacts = pl.concat(sink.frames)
    assert contacts.get_column("monthly_income_gbp").is_null().all()
    assert contacts.get_column("total_debt_gbp").is_null().all()


def test_suggest_mapping_does_not_guess_an_annual_amount_as_monthly(tmp_path: Path) -> None:
    header = ["Client ID", "Date of visit", "Need", "Postcode", "Annual household income", "Debt (monthly repayment)"]
    path = write_csv(tmp_path / "extract2.csv", [["C1", "01/10/2026", "Food", "B15 2TT", "£18,000", "£150"]], header)
    suggestion = suggest_mapping(path)
    assert "Annual household income" not in suggestion.mapping.columns
    assert "Debt (monthly repayment)" not in suggestion.mapping.columns
    assert "# Annual household income: not used -- its name says a yearly amount" in suggestion.text


VISIT_AND_REFERRAL = (
    ["Client ID", "Date of visit", "Need", "Client Postcode", "Date of birth", "Referral date"],
    [["C1", "01/10/2026", "Food", "B15 2TT", "01/02/1980", "28/09/2026"], ["C2", "02/10/2026", "Debt", "LS1 4AP", "", "29/09/2026"]],
)  # fmt: skip


def test_two_columns_that_look_like_one_field_are_named_with_how_to_choose_one(tmp_path: Path) -> None:
    """The volunteer trial: a case-management export's "Date of visit" and "Referral date" rejected the file with
    "keep one of them", and nothing said a mapping file can choose."""
    header, rows = VISIT_AND_REFERRAL
    report = check_extract(write_csv(tmp_path / "extract.csv", rows, header)).report
    [doubled] = [g for g in report.issues if g.code == "E_DUPLICATE_COLUMN"]
    assert doubled.examples[0].message.startswith(
        "Columns B ('Date of visit') and F ('Referral date') both hold contact_date, which comes from one column only. "
        "Say which to use in your mapping file, under columns: for example 'Date of visit: contact_date'; the others "
        "are then not read"
    )


def test_the_mapping_suggest_mapping_proposes_for_two_lookalike_columns_works_as_written(tmp_path: Path) -> None:
    """The volunteer trial: suggest-mapping said "Referral date: not used", but checked with that very mapping the
    file was rejected again, as the column still matched by its name."""
    header, rows = VISIT_AND_REFERRAL
    path = write_csv(tmp_path / "extract.csv", rows, header)
    proposed = tmp_path / "extract.mapping.yaml"
    proposed.write_text(suggest_mapping(path).text, encoding="utf-8")
    sink = CollectingSink()
    report = check_extract(path, mapping=CharityMapping.load(proposed), sink=sink).report
    assert report.status == "accepted_with_warnings" and report.rows_accepted == 2
    assert report.file.columns_not_used_because == {
        "Referral date": "contact_date comes from column B ('Date of visit'), as your mapping file says"
    }
    assert pl.concat(sink.frames).get_column("contact_date").to_list() == [dt.date(2026, 10, 1), dt.date(2026, 10, 2)]
    [unused] = [g for g in report.issues if g.code == "W_UNMAPPED_COLUMN"]
    assert unused.examples[0].message == (
        "Column 'Referral date' is not used: contact_date comes from column B ('Date of visit'), as your mapping file "
        "says."
    )


@pytest.mark.parametrize(
    ("chosen", "not_read"),
    [({"Case ID": "person_ref", "Age band": "age_band"}, {"Client ID", "Age"}),
     ({"Client ID": "person_ref", "Age": "age_band"}, {"Case ID", "Age band"})],
)  # fmt: skip
def test_a_mapping_naming_one_of_two_lookalike_columns_leaves_the_other_unread(
    chosen: dict[str, str], not_read: set[str]
) -> None:
    """The volunteer trial's "Client ID" + "Case ID" and "Age" + "Age band": either can be chosen."""
    header = ["Client ID", "Case ID", "Date of visit", "Need", "Postcode", "Age", "Age band"]
    plan = plan_columns(header, CharityMapping(columns=chosen))
    assert {header[p] for p in plan.fields.values()} >= set(chosen)
    assert {header[p] for p in plan.unused_because} == not_read


def test_a_mapping_chooses_the_column_written_as_it_names_it_over_one_with_a_bracketed_qualifier() -> None:
    """The volunteer trial: a hidden column "Need (old list)" beside "Need" is the same header once brackets are
    ignored; a mapping naming "Need" now chooses it."""
    header = ["Client ID", "Date of visit", "Need (old list)", "Need", "Postcode"]
    with pytest.raises(FileRejected):
        plan_columns(header, CharityMapping())
    plan = plan_columns(header, CharityMapping(columns={"Need": "need"}))
    assert plan.fields["need"] == 3 and plan.unused == [2]


def test_a_mapping_naming_two_columns_for_one_field_says_to_keep_one_line() -> None:
    header = ["Client ID", "Case ID", "Date of visit", "Need", "Postcode"]
    with pytest.raises(FileRejected) as rejected:
        plan_columns(header, CharityMapping(columns={"Client ID": "person_ref", "Case ID": "person_ref"}))
    assert rejected.value.message == (
        "Your mapping file says columns A ('Client ID') and B ('Case ID') both hold person_ref, which comes from one "
        "column only: keep the line of the one to use and delete the others."
    )


def test_the_name_suggest_mapping_gives_a_column_without_a_header_is_found_by_the_check(tmp_path: Path) -> None:
    """The volunteer trial: suggest-mapping proposed '"(column 3 has no header)": need', and the check with that very
    file said the mapping names a column the file does not have, and need was missing."""
    rows = [["C1", "01/10/2026", "Food", "B15 2TT"], ["C2", "02/10/2026", "Fuel", "M1 1AE"]]
    path = write_csv(tmp_path / "extract.csv", rows, ["Client ID", "Date of visit", "", "Postcode"])
    proposed = tmp_path / "extract.mapping.yaml"
    proposed.write_text(suggest_mapping(path).text, encoding="utf-8")
    assert '"(column 3 has no header)": need' in proposed.read_text(encoding="utf-8")
    sink = CollectingSink()
    report = check_extract(path, mapping=CharityMapping.load(proposed), sink=sink).report
    assert report.rows_accepted == 2 and "W_MAPPED_COLUMN_MISSING" not in report.codes()
    assert report.file.columns_used["(column 3 has no header)"] == "need"
    assert pl.concat(sink.frames).get_column("need").to_list() == ["food", "fuel_energy"]


def test_a_header_written_over_two_rows_is_read_as_one(tmp_path: Path) -> None:
    """A charity's trial: "Client" above "ID", "Visit" above "date"; the sheet was refused for missing its reference
    and its need, the columns found "ID, date, referral, code, income"."""
    upper, lower = ["Client", "Visit", "Reason for", "Post", "Monthly"], ["ID", "date", "referral", "code", "income"]
    rows = [[f"C{i}", "05/08/2026", "Food", "B15 2TT", "900"] for i in range(6)]
    for path in (
        write_xlsx(tmp_path / "two.xlsx", {"Contacts": [upper, lower, *rows]}),
        write_csv(tmp_path / "two.csv", [lower, *rows], upper),
    ):
        report = check_extract(path).report
        assert report.rows_accepted == 6, report.codes()
        assert report.file.columns_used == {
            "Client ID": "person_ref",
            "Visit date": "contact_date",
            "Reason for referral": "need",
            "Post code": "postcode",
            "Monthly income": "monthly_income_gbp",
        }
        assert (report.file.header_row, report.file.header_rows_shown) == (2, "rows 1 and 2")
        # suggest-mapping reads the same header, so the mapping it proposes names the columns as the check does.
        suggestion = suggest_mapping(path)
        assert suggestion.mapping.columns == report.file.columns_used
        assert check_extract(path, mapping=suggestion.mapping).report.rows_accepted == 6


@pytest.mark.parametrize(
    ("preview", "expected"),
    [
        # A title above a header is no part of it: the header alone names as many fields.
        ([["Contacts, July 2026", ""], ["Client ID", "Visit date"], ["C1", "05/08/2026"]], (2, None)),
        # Nor is the first row of values below one.
        ([["Client ID", "Visit date", "Need"], ["C1", "05/08/2026", "Food"]], (1, None)),
        # A row of groups above the header ("Client details" over its columns) names no more fields with it.
        (
            [["Client details", "", "Visit", ""], ["Ref", "Postcode", "Date", "Need"], ["C1", "B1 1AA", "x", "y"]],
            (2, None),
        ),
        (
            [["", "Client", "Visit"], ["Row", "ID", "date"], ["1", "C1", "05/08/2026"]],
            (2, ["Row", "Client ID", "Visit date"]),
        ),
    ],
)
def test_only_two_rows_naming_more_fields_together_than_any_row_alone_are_one_header(
    preview: list[list[str]], expected: tuple[int, list[str] | None]
) -> None:
    assert find_header(preview, CharityMapping()) == expected
