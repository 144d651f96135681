"""The indicator catalogue: the shipped one is valid, and bad entries are refused by name at load."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from standards.catalogue import CATALOGUE_PATH, CatalogueError, cells, load_catalogue, parse_catalogue

MEASURES = {"people_count", "contact_count", "sum", "mean", "median", "share"}


def _shipped() -> dict:
    return yaml.safe_load(CATALOGUE_PATH.read_text(encoding="utf-8"))


def test_the_shipped_catalogue_covers_every_measure_and_spends_at_most_the_release() -> None:
    catalogue = load_catalogue()
    assert {i.measure for i in catalogue.indicators} == MEASURES
    assert sum(i.budget_share for i in catalogue.indicators) <= 1 + 1e-9
    la = catalogue.get("people_by_local_authority")
    assert [cell.level for cell in cells(la)].count("local_authority") == 361 and len(cells(la)) == 378


def _broken(change) -> dict:  # type: ignore[no-untyped-def]
    raw = copy.deepcopy(_shipped())
    change(raw["indicators"])
    return raw


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda entries: entries[0]["breakdowns"].append("shoe_size"), r"'people_by_need_region': breakdowns\.2"),
        (
            lambda entries: entries[6]["clamp"].update(lower=500, upper=100),
            r"'mean_debt_by_region': clamp: clamp lower \(500\) is above upper \(100\)",
        ),
        (lambda entries: entries[1].update(budget_share=0.9), r"budget shares sum to \d+\.\d{3}, more than 1"),
        (lambda entries: entries[2].update(budget_share=0), r"'people_by_need_age_band': budget_share"),
        (lambda entries: entries[3].update(budget_share=-0.1), r"'people_by_need_household_type': budget_share"),
        (
            lambda entries: entries[1]["area_levels"].update(uk=0.5),
            r"'people_by_local_authority': area level shares sum to 1\.480, not 1",
        ),
        (lambda entries: entries[7].pop("candidate_step"), r"'median_debt_by_region': `candidate_step` is required"),
        (lambda entries: entries[0].update(measure="mode"), r"'people_by_need_region': measure"),
    ],
)
def test_bad_entries_are_refused_at_load_naming_the_entry(change, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CatalogueError, match=message):
        parse_catalogue(_broken(change))


def test_a_bad_catalogue_file_fails_to_load(tmp_path: Path) -> None:
    path = tmp_path / "indicators.yaml"
    path.write_text(yaml.safe_dump(_broken(lambda entries: entries[4].update(max_cells_per_person=0))))
    with pytest.raises(CatalogueError, match=r"'people_by_need_tenure': max_cells_per_person"):
        load_catalogue(path)
