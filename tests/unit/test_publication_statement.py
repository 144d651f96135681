"""The plain-English statement of a person's worst case says what it assumes of record linkage."""

from __future__ import annotations

import pytest

from collab.publication import per_person_statement


def _per_person(*, max_units: int, linked_units: int, non_linking: int = 0) -> dict[str, object]:
    return {
        "max_units": max_units,
        "linked_units": linked_units,
        "non_linking_contributors": non_linking,
        "units_assumed_at_most": False,
        "lifetime_rho": 0.25,
        "lifetime_epsilon": 3.86,
        "delta": 1e-7,
    }


def test_without_linkage_nothing_is_assumed_of_it() -> None:
    statement = per_person_statement(_per_person(max_units=1, linked_units=0, non_linking=1))
    assert "record linkage" not in statement


@pytest.mark.parametrize(
    ("linked", "assumed"),
    [
        (1, "record linkage neither missed a match of this person's records nor matched them with anyone else's"),
        (2, "record linkage went wrong for this person at most 1 time, missing a match"),
        (3, "record linkage went wrong for this person at most 2 times, missing a match"),
    ],
)
def test_the_worst_case_across_linking_charities_states_how_often_linkage_may_go_wrong(
    linked: int, assumed: str
) -> None:
    # A privacy review: the demo's statement said "for any one person" although someone whose records linkage
    # matched with another person's is two units to a release (docs/privacy.md), beyond the one it covered.
    statement = per_person_statement(_per_person(max_units=linked, linked_units=linked))
    assert f"It also assumes that {assumed}" in statement
    assert statement.index("It also assumes") < statement.index("The smaller epsilon is")
