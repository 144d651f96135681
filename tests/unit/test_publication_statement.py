"""The plain-English statement of a person's worst case says what it assumes, record linkage included."""

from __future__ import annotations

import pytest

from collab.publication import per_person_statement


def _per_person(*, max_units: int, linked_units: int, non_linking: int = 0, capped: bool = False) -> dict[str, object]:
    return {
        "max_units": max_units,
        "linked_units": linked_units,
        "non_linking_contributors": non_linking,
        "units_assumed_at_most": capped,
        "lifetime_rho": 0.25,
        "lifetime_epsilon": 3.86,
        "delta": 1e-7,
    }


def test_without_linkage_nothing_is_assumed_of_it() -> None:
    statement = per_person_statement(_per_person(max_units=1, linked_units=0, non_linking=1))
    assert "record linkage" not in statement
    assert "within the assumptions that follow, for any one person," in statement
    assert (
        " This assumes that nobody is counted separately more than once by its one charity that does not link records "
        "(a charity that gives one person two references counts them twice): someone who is may get less protection"
    ) in statement


@pytest.mark.parametrize(
    ("linked", "assumed"),
    [
        (1, "kept all of this person's records at the charities that link records together, and matched none of them"),
        (
            2,
            "went wrong for this person at most once, counting each extra group it split their records into and each ",
        ),
        (
            3,
            "went wrong for this person at most twice, counting each extra group it split their records into and each ",
        ),
    ],
)
def test_the_worst_case_across_linking_charities_states_how_often_linkage_may_go_wrong(
    linked: int, assumed: str
) -> None:
    # A privacy review: the demo's statement said "for any one person" although someone whose records linkage
    # matched with another person's is two units to a release (docs/privacy.md), beyond the one it covered.
    alone = per_person_statement(_per_person(max_units=linked, linked_units=linked))
    assert f" This assumes that record linkage {assumed}" in alone
    assert "does not link records" not in alone  # no such charity: none is spoken of
    beside = per_person_statement(_per_person(max_units=linked + 2, linked_units=linked, non_linking=2))
    assert f" It also assumes that record linkage {assumed}" in beside
    assert "by its 2 charities that do not link records" in beside
    assert "(once for each reference held for them by a charity that does not link records, and " in beside
    assert beside.index("This assumes that nobody") < beside.index("It also assumes") < beside.index("The smaller")


def test_a_declared_cap_is_stated_in_words() -> None:
    statement = per_person_statement(_per_person(max_units=4, linked_units=3, non_linking=3, capped=True))
    assert "even someone counted up to 4 times (once for each reference" in statement
    assert "and up to 3 times across those that do)" in statement
    assert "This assumes, as the collaborative declares, that nobody is counted separately more than once by its 3" in (
        statement
    )


def test_only_charities_that_do_not_link_records_are_counted_without_linkage() -> None:
    statement = per_person_statement(_per_person(max_units=3, linked_units=0, non_linking=3))
    assert "even someone counted separately up to 3 times (once for each reference held for them by a charity" in (
        statement
    )
    assert "across those that do" not in statement  # no charity links records: no count across them
    assert "nobody is counted separately more than 3 times by its 3 charities that do not link records" in statement


def test_with_only_linking_charities_the_count_says_where_it_is_made() -> None:
    statement = per_person_statement(_per_person(max_units=2, linked_units=2))
    assert "even someone counted up to twice (across the charities that link records)," in statement
