"""The vectorised rules (``standards.rules``) and the pydantic model agree on every row: the same rows
accepted, the same codes in the same order, the same standardised contacts. Checked on every file of
the robustness corpus, the committed fixtures, and on random rows."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from standards import validation
from standards.check import _date_readings
from standards.extract import FIELDS, REQUIRED_FIELDS
from standards.issues import FileRejected
from standards.mapping import CharityMapping, ColumnPlan, find_header, header_score, plan_columns
from standards.normalise import (
    BIRTH_SERIALS,
    DAY_FIRST_FORMATS,
    EXCEL_SERIALS,
    ISO_FORMATS,
    MONTH_FIRST_FORMATS,
    DateReading,
    _amount,
    _normalise,
    _postcode,
    _read_mostly_plain,
    date_text,
    four_digit_year,
    normalise_batch,
    parse_date_columns,
    parse_date_text,
)
from standards.reading import PYTHON_WHITESPACE, open_extract
from standards.rules import field_rules, issue_codes, validate_frame
from standards.validation import RowOutcome, contacts_frame, validate_batch, validate_rows
from tests.conftest import contact_rows, write_csv
from tests.fixtures.bad.corpus import build


def assert_agree(normalised: pl.DataFrame, plan: ColumnPlan, *, links_records: bool = True) -> None:
    """Row by row: the vectorised codes are the model's codes, and accepted rows get the same contact."""
    checked = validate_frame(normalised, list(plan.fields), len(plan.header), links_records=links_records)
    per_row = list(validate_rows(normalised, plan, links_records=links_records))
    vectorised_codes = issue_codes(checked).to_list()
    assert checked.get_column("__has_issue").to_list() == [bool(codes) for codes in vectorised_codes]
    for outcome, codes in zip(per_row, vectorised_codes, strict=True):
        assert [issue.code for issue in outcome.issues] == codes, f"row {outcome.row}: {outcome.issues}"
    accepted = [o.contact is not None for o in per_row]
    judged = validate_batch(normalised, plan, links_records=links_records)
    expected = contacts_frame(per_row)
    assert judged.contacts.equals(expected), (judged.contacts, expected)
    assert [o.row for o in judged.rejected] == [o.row for o, ok in zip(per_row, accepted, strict=True) if not ok]
    assert judged.affected == [o for o in per_row if o.issues]
    listed = judged.listed()
    assert listed.affected == judged.affected
    clean = [o for o in per_row if not o.issues]
    assert listed.clean.get_column("__row").to_list() == [o.row for o in clean]
    assert listed.clean.drop("__row").rows() == [tuple(o.raw.values()) for o in clean]
    assert listed.labels == list(clean[0].raw) if clean else True


def normalised_batches(path: Path, mapping: CharityMapping) -> list[tuple[pl.DataFrame, ColumnPlan]]:
    """What ``check_extract`` validates, batch by batch (nothing if the file is refused as a whole)."""
    try:
        source = open_extract(path, sheet=mapping.sheet, header_score=lambda row: header_score(row, mapping))
        source.use_header(*(find_header(source.preview, mapping) if source.format != "parquet" else (1, None)))
        plan = plan_columns(source.header, mapping)
        out, dates = [], {}
        for batch in source.batches(1_000):
            dates = dates or _date_readings(batch, plan.fields, plan.header, mapping)
            out.append((normalise_batch(batch, plan, mapping, dates), plan))
        return out
    except FileRejected:
        return []


def test_the_rules_are_read_from_the_model() -> None:
    assert field_rules("need").base[0] == "food" and field_rules("need").required
    assert (field_rules("children_in_household").ge, field_rules("children_in_household").le) == (0, 20)
    assert field_rules("person_ref").min_length == 1 and len(field_rules("postcode").validators) == 1
    assert len(field_rules("contact_date").validators) == 2


def test_rules_and_model_agree_on_every_file_of_the_corpus(tmp_path: Path) -> None:
    files = build(tmp_path)
    checked = 0
    for path in files.values():
        for normalised, plan in normalised_batches(path, CharityMapping()):
            assert_agree(normalised, plan)
            checked += normalised.height
    assert checked > 1_000


def test_rules_and_model_agree_on_a_food_banks_rows(tmp_path: Path) -> None:
    rows = contact_rows(300)
    rows[3][1], rows[4][2], rows[5][3], rows[6][4], rows[7][5] = "31/02/2026", "Fod", "ZZ99 9ZZ", "1850-01-01", "-5"
    rows[8][3], rows[9][3], rows[10][0] = "Bristol", "", ""
    (normalised, plan), *_ = normalised_batches(write_csv(tmp_path / "food.csv", rows), CharityMapping())
    assert_agree(normalised, plan)


def test_rows_alike_in_their_issues_are_explained_by_asking_the_model_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A column wrong in many rows, a council in many postcode cells, births after the contact: each way of having
    issues is asked of the model once, and every row still gets the issues and contact the model gives it."""
    rows = contact_rows(400)
    for i in range(10, 400, 3):
        rows[i][2] = "Fod"  # a need no label matches: the row is rejected
    for i in range(11, 400, 3):
        rows[i][4] = "31/02/1970"  # a birth date that is no date: dropped with a warning, the row kept
    for i in range(12, 400, 9):
        rows[i][3] = "Bristol"  # a council's name where a postcode goes: read as the area, with a warning
    for i in range(15, 400, 30):
        rows[i][4] = "05/03/2026"  # born after the contact: rejected by the rule about the whole row
    rows[20] = rows[20][:4]  # ragged
    asked: list[int] = []

    def counting(normalised: pl.DataFrame, plan: ColumnPlan, *, links_records: bool) -> Iterator[RowOutcome]:
        asked.append(normalised.height)
        return validate_rows(normalised, plan, links_records=links_records)

    (normalised, plan), *_ = normalised_batches(write_csv(tmp_path / "alike.csv", rows), CharityMapping())
    with monkeypatch.context() as patched:
        patched.setattr(validation, "validate_rows", counting)
        judged = validate_batch(normalised, plan, links_records=True)
    affected = len(judged.affected)
    assert affected > 250 and sum(asked) < affected / 5
    assert_agree(normalised, plan)


# Random rows: each field's text drawn from values that pass, values that nearly pass, and noise.
_TODAY = dt.date.today()
_DATES = st.dates(dt.date(1890, 1, 1), _TODAY + dt.timedelta(days=400))
_NOISE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
_WHITESPACE = st.sampled_from(["", " ", "\x1c", "\xa0", "\t"])


def _text_for(field: str) -> st.SearchStrategy[str]:
    base = field_rules(field).base
    choices: list[st.SearchStrategy[str]] = [_NOISE, st.sampled_from(["", "N/A", "unknown", "-"])]
    if isinstance(base, tuple):
        choices += [st.sampled_from(base), st.sampled_from([c.replace("_", " ").title() for c in base])]
    if base is dt.date:
        choices += [_DATES.map(lambda d: d.isoformat()), _DATES.map(lambda d: d.strftime("%d/%m/%Y"))]
        choices += [st.sampled_from(["31/02/2026", "2026-13-01", "45000", "1/1/26"])]
    if field == "person_ref" or field == "surname":
        choices += [st.text("abcdéXY-' ﬃ", min_size=1, max_size=70), st.sampled_from(["O'Brien-Smith", "Ng", "ß"])]
    if field == "surname":  # no Latin letters to link by (a warning), and a few Latin ones beside them
        choices += [st.sampled_from(["Иванов", "Παπαδόπουλος", "محمد", "王", "0451", "Иванов-Smith"])]
    if field == "local_authority_code":
        choices += [st.sampled_from(["E08000025", "e08000016", "Leeds", "Bristol, City of", "E99999999", "W06000015"])]
    if field == "postcode":
        choices += [
            st.sampled_from(["B15 2TT", "b152tt", "BS1", "Bristol", "E08000025", "ZZ99 9ZZ", "1 High St, LS1 4AP"])
        ]
        choices += [st.sampled_from(["XX1 1AA", "AB1  2CD", "E08000016", "s1"])]
    if field in ("monthly_income_gbp", "monthly_essential_costs_gbp", "total_debt_gbp", "children_in_household"):
        choices += [st.sampled_from(["nan", "inf", "-inf", "1e400", "(50)", "£1,250.00", "2.5", "21", "-0"])]
        choices += [st.integers(-5, 2_000_000).map(str), st.floats(allow_nan=True).map(str)]
    text = st.one_of(choices)
    return st.tuples(_WHITESPACE, text, _WHITESPACE).map("".join)


_ROWS = st.lists(st.fixed_dictionaries({field: _text_for(field) for field in FIELDS}), min_size=1, max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=_ROWS,
    optional=st.sets(st.sampled_from([f for f in FIELDS if f not in REQUIRED_FIELDS])),
    links_records=st.booleans(),
)
def test_rules_and_model_agree_on_random_rows(
    rows: list[dict[str, str]], optional: set[str], links_records: bool
) -> None:
    header = [f for f in FIELDS if f in REQUIRED_FIELDS or f in optional]
    batch = pl.DataFrame(
        {f"c{i}": [row[name] or None for row in rows] for i, name in enumerate(header)},
        schema={f"c{i}": pl.String for i in range(len(header))},
    ).with_columns(
        pl.Series("__row", range(2, len(rows) + 2), pl.Int64),
        pl.Series("__cells", [len(header)] * (len(rows) - 1) + [len(header) + 1], pl.Int64),  # the last is ragged
    )
    plan = ColumnPlan(header=header, fields={name: i for i, name in enumerate(header)})
    dates = {f: DateReading(ISO_FORMATS + DAY_FIRST_FORMATS) for f in ("contact_date", "date_of_birth") if f in header}
    assert_agree(normalise_batch(batch, plan, CharityMapping(), dates), plan, links_records=links_records)


def test_python_whitespace_lists_every_character_python_strips() -> None:
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
    assert every == PYTHON_WHITESPACE


@pytest.mark.parametrize("value", ["\x1cP1", "P1\x1f"])
def test_python_whitespace_is_stripped_as_the_model_strips_it(value: str) -> None:
    header = ["person_ref", "contact_date", "need", "postcode"]
    batch = pl.DataFrame({"c0": [value], "c1": ["2026-01-05"], "c2": ["food"], "c3": ["B15 2TT"]}).with_columns(
        pl.lit(2, pl.Int64).alias("__row"), pl.lit(4, pl.Int64).alias("__cells")
    )
    plan = ColumnPlan(header=header, fields={name: i for i, name in enumerate(header)})
    normalised = normalise_batch(batch, plan, CharityMapping(), {"contact_date": DateReading(ISO_FORMATS)})
    assert_agree(normalised, plan)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_ROWS)
def test_reading_each_distinct_value_once_gives_what_reading_every_cell_gives(rows: list[dict[str, str]]) -> None:
    header = list(FIELDS)
    batch = pl.DataFrame(
        {f"c{i}": [row[name] or None for row in rows * 2] for i, name in enumerate(header)},
        schema={f"c{i}": pl.String for i in range(len(header))},
    ).with_columns(
        pl.int_range(2, 2 * len(rows) + 2, dtype=pl.Int64).alias("__row"), pl.lit(16, pl.Int64).alias("__cells")
    )
    plan = ColumnPlan(header=header, fields={name: i for i, name in enumerate(header)})
    dates = {f: DateReading(ISO_FORMATS + DAY_FIRST_FORMATS) for f in ("contact_date", "date_of_birth")}
    once_each = normalise_batch(batch, plan, CharityMapping(), dates)
    every_cell = _normalise(batch, plan.fields, CharityMapping(), dates)
    assert once_each.equals(
        pl.concat([batch.select("__row", "__cells"), every_cell], how="horizontal").select(once_each.columns)
    )


_DATE_TEXTS = st.one_of(
    st.none(),
    st.dates(dt.date(1890, 1, 1), dt.date(2100, 12, 31)).flatmap(
        lambda day: st.sampled_from(
            [
                day.isoformat(),
                f"{day:%d/%m/%Y}",
                f"{day:%m/%d/%Y}",
                f"{day:%d/%m/%y}",
                f"{day.day}-{day:%b-%y}",
                f"{day:%d %B %Y}",
                f"{day:%Y-%m-%d} 10:30:00",
                str((day - dt.date(1899, 12, 30)).days),
            ]
        )
    ),
    st.text(alphabet="0123456789/-. :TOctJan", max_size=12),
)


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(_DATE_TEXTS, max_size=30), birth=st.booleans())
def test_dates_read_format_by_format_are_the_dates_every_format_at_once_gives(
    texts: list[str | None], birth: bool
) -> None:
    formats = ISO_FORMATS + DAY_FIRST_FORMATS + MONTH_FIRST_FORMATS
    serials = BIRTH_SERIALS if birth else EXCEL_SERIALS
    prepared = pl.DataFrame({"raw": texts}, schema={"raw": pl.String}).with_columns(
        date_text(pl.col("raw")).alias("text"), four_digit_year(date_text(pl.col("raw"))).alias("text4")
    )
    at_once = prepared.select(parse_date_text(pl.col("text"), pl.col("text4"), formats, serials)).to_series()
    one_by_one = parse_date_columns(prepared, "text", "text4", formats, serials)
    assert one_by_one.equals(at_once, check_names=False, check_dtypes=True)


_AMOUNT_TEXTS = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.decimals(-10_000, 10_000, places=2).map(lambda d: f"{d:,}"),
    st.text(alphabet="0123456789.,-+()£ GBPgbpeE\u00a0naif", max_size=12),
)
_POSTCODE_TEXTS = st.one_of(
    st.none(),
    st.from_regex(r"[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}", fullmatch=True),
    st.from_regex(r"[A-Za-z]{1,2}[0-9][A-Za-z0-9]?\s*[0-9][A-Za-z]{2}", fullmatch=True),
    st.sampled_from(["Bristol, City of", "leeds", "1 High St, Leeds LS1 4AP", "A1 1AA x", "SW1A  1AA", "AB1 1AAA"]),
    st.text(alphabet="AB12 9Zz\t", max_size=10),
)


@settings(max_examples=80, deadline=None)
@given(amounts=st.lists(_AMOUNT_TEXTS, max_size=20), postcodes=st.lists(_POSTCODE_TEXTS, max_size=20))
def test_plain_amounts_and_postcodes_read_straight_are_what_cleaning_every_cell_gives(
    amounts: list[str | None], postcodes: list[str | None]
) -> None:
    for field, texts, clean in (("total_debt_gbp", amounts, _amount), ("postcode", postcodes, _postcode)):
        raw = field + "__raw"
        frame = pl.DataFrame({raw: texts}, schema={raw: pl.String})
        every_cell = frame.select(clean(pl.col(raw))).to_series()
        assert _read_mostly_plain(frame, field).equals(every_cell, check_names=False, check_dtypes=True)


_LINKING_HEADER = ["person_ref", "contact_date", "need", "local_authority_code", "postcode", "date_of_birth", "surname"]
_LINKING_ROW = ["P1", "2026-01-05", "food", "E06000001", "B15 2TT", "1980-01-01", "Smith"]


def _linking_batch(rows: list[list[str | None]]) -> tuple[pl.DataFrame, ColumnPlan]:
    """A linking charity's rows in the standard's own columns (ISO dates), normalised as a check would."""
    header = _LINKING_HEADER
    batch = pl.DataFrame(
        {f"c{i}": [row[i] for row in rows] for i in range(len(header))},
        schema=dict.fromkeys([f"c{i}" for i in range(len(header))], pl.String),
    ).with_columns(
        pl.int_range(2, len(rows) + 2, dtype=pl.Int64).alias("__row"), pl.lit(len(header), pl.Int64).alias("__cells")
    )
    plan = ColumnPlan(header=header, fields={name: i for i, name in enumerate(header)})
    dates = {f: DateReading(ISO_FORMATS) for f in ("contact_date", "date_of_birth")}
    return normalise_batch(batch, plan, CharityMapping(), dates), plan


def test_values_judged_once_each_are_dropped_with_what_was_derived_from_them() -> None:
    """A postcode in a district the lookup lacks and an over-long surname are dropped (warnings), so the accepted
    contact has no linkage basis; the same values on several rows, and valid ones beside them, are judged alike."""
    good = _LINKING_ROW
    unknown_district = [*good[:4], "ZZ9 9ZZ", *good[5:]]
    long_surname = [*good[:6], "S" * 70]
    council = [*good[:3], None, "Bristol, City of", *good[5:]]
    rows = [good, unknown_district, long_surname, good, unknown_district, long_surname, council]
    normalised, plan = _linking_batch(rows)
    assert_agree(normalised, plan)
    expected = ["SMITH|1980-01-01|B15", None, None] * 2 + [None]
    judged = validate_batch(normalised, plan, links_records=True)
    assert judged.contacts.get_column("linkage_basis").to_list() == expected
    # The batch's own contact columns too (used for the rows without an issue): a dropped value derives nothing.
    checked = validate_frame(normalised, _LINKING_HEADER, len(_LINKING_HEADER), links_records=True)
    assert checked.get_column("linkage_basis").to_list() == expected


def test_a_surname_with_no_latin_letters_is_warned_of_alike_by_both_paths_only_to_a_charity_that_links() -> None:
    """A surname with no Latin letters gives no linkage basis and, for a charity that links records, a warning on
    its accepted row; one too long is dropped with its own warning only, and a row rejected for another reason gets
    no linkage warning. A charity that does not link is not warned, and such a row is judged as a clean one is."""
    surnames = ["Иванов", "0451", "Smith", "Иванов-Smith", "Ж" * 70, "王"]
    rows = [[*_LINKING_ROW[:6], surname] for surname in surnames]
    rows.append(["P2", "2026-01-05", "Fod", *_LINKING_ROW[3:6], "Иванов"])  # rejected: an unknown need
    normalised, plan = _linking_batch(rows)
    linkage = ["W_SURNAME_NOT_LINKABLE"]
    expected_codes = {
        True: [linkage, linkage, [], [], ["W_VALUE_TOO_LONG"], linkage, ["E_UNKNOWN_CODE"]],
        False: [[], [], [], [], ["W_VALUE_TOO_LONG"], [], ["E_UNKNOWN_CODE"]],
    }
    for links_records, expected in expected_codes.items():
        assert_agree(normalised, plan, links_records=links_records)
        checked = validate_frame(normalised, list(plan.fields), len(plan.header), links_records=links_records)
        assert issue_codes(checked).to_list() == expected
        judged = validate_batch(normalised, plan, links_records=links_records)
        # Only the rows with an issue are explained one by one, with the model.
        assert [o.row for o in judged.affected] == [row for row, codes in enumerate(expected, start=2) if codes]
        bases = judged.contacts.get_column("linkage_basis").to_list()
        smith = "SMITH|1980-01-01|B15"
        # A charity that does not link records gives no identity to link by.
        assert bases == ([None, None, smith, smith, None, None] if links_records else [None] * 6)
