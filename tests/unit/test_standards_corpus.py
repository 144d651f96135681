"""The robustness corpus (tests/fixtures/bad): every awkward file gets its expected status and codes,
and nothing in it can reach a browser or a spreadsheet as anything but text."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from standards.check import CheckResult, check_extract
from tests.conftest import CollectingSink
from tests.fixtures.bad.corpus import CASES, FILES, build

CASE_NAMES = [case.name for case in CASES]
# Every tag and attribute the feedback template itself writes; anything else came from a file.
TEMPLATE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "h3", "p", "span", "strong",
    "table", "caption", "thead", "tbody", "tr", "th", "td", "section", "code",
}  # fmt: skip
TEMPLATE_ATTRIBUTES = {"lang", "charset", "name", "content", "class", "aria-label", "aria-labelledby", "id", "scope"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def results(corpus: dict[str, Path]) -> dict[str, tuple[CheckResult, pl.DataFrame]]:
    outcomes = {}
    for name, path in corpus.items():
        sink = CollectingSink()
        outcomes[name] = (check_extract(path, sink=sink), sink.contacts())
    return outcomes


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


def test_the_corpus_has_at_least_25_kinds_and_uses_every_committed_file() -> None:
    assert len(CASES) >= 25 and len(set(CASE_NAMES)) == len(CASES)
    committed = {path.name for path in FILES.iterdir()} - {"base.csv"}
    assert committed <= set(CASE_NAMES)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_each_file_gets_its_expected_status_and_codes(
    name: str, results: dict[str, tuple[CheckResult, pl.DataFrame]]
) -> None:
    case = next(c for c in CASES if c.name == name)
    result, contacts = results[name]
    report = result.report
    assert (report.status, set(report.codes())) == (case.status, set(case.codes)), report.model_dump_json(indent=1)
    if case.rows_accepted is not None:
        assert report.rows_accepted == case.rows_accepted
    assert report.rows_accepted + report.rows_rejected == report.rows_received
    if report.status == "rejected":
        assert report.rows_accepted == 0 and report.quarters == []
    else:
        assert contacts.height == report.rows_accepted
    for group in report.issues:
        assert group.fix and group.title and 0 < len(group.examples) <= group.count


@pytest.mark.parametrize("name", CASE_NAMES)
def test_feedback_escapes_everything(name: str, results: dict[str, tuple[CheckResult, pl.DataFrame]]) -> None:
    report = results[name][0].report
    html = report.to_html()
    parser = TagCollector()
    parser.feed(html)
    assert parser.tags <= TEMPLATE_TAGS, parser.tags - TEMPLATE_TAGS
    assert parser.attributes <= TEMPLATE_ATTRIBUTES, parser.attributes - TEMPLATE_ATTRIBUTES
    # The analysts' summary in Dagster carries codes and counts, never a charity's values.
    assert "<" not in report.to_markdown().replace("<br>", "")
    assert json.loads(report.model_dump_json())["status"] == report.status


def test_hostile_cells_are_shown_as_text(results: dict[str, tuple[CheckResult, pl.DataFrame]]) -> None:
    html = results["html-in-cells.csv"][0].report.to_html()
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    injection = results["csv-injection.csv"][0].report
    example = next(g for g in injection.issues if g.code == "E_UNKNOWN_CODE").examples[0]
    # Quoted inside a sentence, so a spreadsheet opening the report never sees a leading '='.
    assert example.row == 3 and not example.message.startswith(("=", "+", "-", "@"))


def test_personal_data_is_never_repeated_in_feedback(results: dict[str, tuple[CheckResult, pl.DataFrame]]) -> None:
    for name, secrets in {
        "personal-data-columns.csv": ("jane.doe@example.org", "07700 900123", "Jane Doe", "Mill Lane"),
        "personal-data-in-values.csv": ("07700 900123", "Priya Shah", "High Street"),
        "ni-numbers-as-reference.csv": ("QQ123456C", "AB123456A", "JG 10 37 92 B"),
        "nhs-numbers-as-reference.csv": ("943 476 5919", "9434765870"),
        "nhs-numbers-in-arabic-indic-digits.csv": ("\u0669\u0664\u0663 \u0664\u0667\u0666 \u0665\u0669\u0661\u0669",),
    }.items():
        report = results[name][0].report
        text = report.model_dump_json() + report.to_html()
        for secret in secrets:
            assert secret not in text, (name, secret)
    rejected = results["ni-numbers-as-reference.csv"][0].report
    message = rejected.issues[0].examples[0].message
    assert "3 of its 3 values hold a National Insurance number (the first in row 2)" in message


def test_salvaged_values_are_read_correctly(results: dict[str, tuple[CheckResult, pl.DataFrame]]) -> None:
    late = results["windows-1252-late.csv"][1]
    assert late.filter(pl.col("person_ref") == "NFB-0001").get_column("monthly_income_gbp").to_list() == [1250.0] * 2
    labels = results["labels-and-synonyms.csv"][1].sort("person_ref")
    assert labels.get_column("need").to_list() == [
        "fuel_energy",
        "debt",
        "benefits_income",
        "housing_homelessness",
        "food",
    ]
    assert labels.get_column("local_authority_code").to_list()[:3] == ["E08000035", "E06000023", "E08000025"]
    assert labels.get_column("age_band").to_list() == ["25_34", "65_74", "18_24", None, "45_54"]
    assert labels.get_column("children_in_household").to_list() == [2, 0, None, 1, 3]
    amounts = results["pound-amounts.csv"][1].sort("person_ref")
    assert amounts.get_column("monthly_income_gbp").to_list() == [1250.0, 1250.0, 1250.5, 640.0, 870.25, 450.0]
    assert amounts.get_column("total_debt_gbp").to_list() == [12000.5, 3400.0, 0.0, None, 950.0, 100.0]
    serials = results["serial-dates.csv"][1]
    assert serials.get_column("contact_date").min().isoformat() == "2026-01-13"  # type: ignore[union-attr]
    assert results["formulas.xlsx"][1].get_column("need").unique().to_list() == ["food"]
    addresses = results["personal-data-in-values.csv"][1]
    assert addresses.filter(pl.col("person_ref") == "NFB-0001").get_column("local_authority_code").item() == "E08000025"


def test_rows_are_numbered_as_the_spreadsheet_shows_them(
    results: dict[str, tuple[CheckResult, pl.DataFrame]],
) -> None:
    quoted = results["quoted-newlines.csv"][1]
    # Line breaks inside quotes do not shift row numbers: NFB-0004 is the spreadsheet's row 5.
    assert quoted.filter(pl.col("person_ref") == "NFB-0004").get_column("source_row").item() == 5
    merged = next(g for g in results["merged-cells.xlsx"][0].report.issues if g.code == "E_MISSING_VALUE")
    assert merged.examples[0].row == 5 and "merged" in merged.fix
    titled = results["header-not-first-row.csv"][0].report
    assert titled.file.header_row == 4 and titled.rows_received == 12
