"""The indicator catalogue (``indicators.yaml``), validated on load, and the public key sets.

A catalogue entry names its measure, its breakdowns, the people it covers, how much one person may
contribute (cells, contacts, clamped amounts) and its share of the period's privacy budget.
Breakdown keys are public: they come from the codelists and the geography, so the set of published
cells never depends on the data.

The ``area`` breakdown is the geography hierarchy UK > nation > region > local authority: the
indicator is published at every level it lists, each level measured with its own share of the
indicator's budget and the levels then made consistent (``privacy.hierarchy``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from standards.codelists import load_codelist
from standards.geography import UK_CODE, UK_NAME, load_geography

CATALOGUE_PATH = Path(__file__).with_name("indicators.yaml")

Measure = Literal["people_count", "contact_count", "sum", "mean", "median", "share"]
Breakdown = Literal[
    "area", "nation", "region", "local_authority", "need", "age_band", "household_type", "tenure", "disability"
]
AreaLevel = Literal["uk", "nation", "region", "local_authority"]
# Who an indicator counts. Each is defined once, in SQL, in ``privacy.bounding.POPULATIONS``.
Population = Literal["everyone", "with_debt", "budget_recorded", "at_two_or_more_charities"]
# A yes/no fact about a person in a cell, the numerator of a share (``privacy.bounding.CONDITIONS``).
Condition = Literal["negative_budget"]
AmountField = Literal["total_debt_gbp", "monthly_income_gbp", "monthly_essential_costs_gbp"]

AREA_LEVELS: tuple[str, ...] = ("uk", "nation", "region", "local_authority")
ADDITIVE_MEASURES = ("people_count", "contact_count", "sum")
AMOUNT_MEASURES = ("sum", "mean", "median")
# Decimal places of published figures; every other measure is a whole number.
DECIMALS = {"mean": 2, "share": 5}
UNITS = {
    "people_count": "people",
    "contact_count": "contacts",
    "sum": "GBP",
    "mean": "GBP",
    "median": "GBP",
    "share": "proportion",
}

# Warehouse column holding each flat breakdown's key.
BREAKDOWN_COLUMNS: dict[str, str] = {
    "nation": "nation_code",
    "region": "region_code",
    "local_authority": "local_authority_code",
    "need": "need",
    "age_band": "age_band",
    "household_type": "household_type",
    "tenure": "tenure",
    "disability": "disability",
}
AREA_LEVEL_COLUMNS: dict[str, str] = {
    "nation": "nation_code",
    "region": "region_code",
    "local_authority": "local_authority_code",
}
GEOGRAPHY_BREAKDOWNS = ("area", "nation", "region", "local_authority")
NOT_RECORDED = "not_recorded"


class CatalogueError(Exception):
    """The catalogue file is not valid; the message names every offending entry."""


class Clamp(BaseModel):
    """Public bounds an amount is clamped to before it is summed: they set the sensitivity.
    Amounts in the standard are never negative, and neither is a clamp."""

    model_config = ConfigDict(extra="forbid")

    lower: int = Field(ge=0)
    upper: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Clamp:
        if self.lower > self.upper:
            raise ValueError(f"clamp lower ({self.lower}) is above upper ({self.upper})")
        return self

    @property
    def centre(self) -> int:
        return (self.lower + self.upper) // 2


class Indicator(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    description: str
    measure: Measure
    breakdowns: list[Breakdown] = Field(min_length=1)
    area_levels: dict[AreaLevel, float] | None = Field(
        default=None, description="for an `area` breakdown: each published level's share of the indicator's budget"
    )
    population: Population = "everyone"
    amount: AmountField | None = None
    clamp: Clamp | None = None
    candidate_step: int | None = Field(default=None, gt=0, description="median: spacing of the candidate values")
    numerator: Condition | None = None
    max_cells_per_person: int = Field(default=1, ge=1)
    max_contacts_per_cell: int | None = Field(default=None, ge=1)
    budget_share: float = Field(gt=0, le=1)

    @field_validator("breakdowns")
    @classmethod
    def _distinct(cls, breakdowns: list[str]) -> list[str]:
        if len(set(breakdowns)) != len(breakdowns):
            raise ValueError("a breakdown is listed twice")
        if sum(b in GEOGRAPHY_BREAKDOWNS for b in breakdowns) > 1:
            raise ValueError("at most one geography breakdown (area, nation, region or local_authority)")
        return breakdowns

    @model_validator(mode="after")
    def _consistent(self) -> Indicator:
        self._check_area()
        needs_amount = self.measure in AMOUNT_MEASURES
        if needs_amount and (self.amount is None or self.clamp is None):
            raise ValueError(f"a {self.measure} needs an `amount` and a `clamp`")
        if not needs_amount and (self.amount is not None or self.clamp is not None):
            raise ValueError(f"a {self.measure} takes no `amount` or `clamp`")
        if (self.measure == "median") != (self.candidate_step is not None):
            raise ValueError("`candidate_step` is required for a median and only for a median")
        if self.measure == "median" and self.clamp is not None:
            candidates = (self.clamp.upper - self.clamp.lower) // (self.candidate_step or 1) + 1
            if candidates > 100_000:
                raise ValueError(f"the clamp and candidate_step give {candidates:,} candidates; at most 100,000")
        if (self.measure == "share") != (self.numerator is not None):
            raise ValueError("`numerator` is required for a share and only for a share")
        if (self.measure == "contact_count") != (self.max_contacts_per_cell is not None):
            raise ValueError("`max_contacts_per_cell` is required for a contact_count and only for it")
        return self

    def _check_area(self) -> None:
        if ("area" in self.breakdowns) != (self.area_levels is not None):
            raise ValueError("`area_levels` is required with the `area` breakdown and only with it")
        if self.area_levels is None:
            return
        if self.measure not in ADDITIVE_MEASURES:
            raise ValueError(f"the area hierarchy needs an additive measure ({', '.join(ADDITIVE_MEASURES)})")
        levels = list(self.area_levels)
        if levels != sorted(levels, key=AREA_LEVELS.index):
            raise ValueError(f"area_levels must run top down ({' > '.join(AREA_LEVELS)})")
        if any(share < 0 for share in self.area_levels.values()):
            raise ValueError("an area level's budget share cannot be negative")
        if self.area_levels[levels[-1]] <= 0:
            raise ValueError(f"the finest area level ({levels[-1]}) needs a budget share above 0")
        total = sum(self.area_levels.values())
        if abs(total - 1) > 1e-9:
            raise ValueError(f"area level shares sum to {total:.3f}, not 1")

    @property
    def unit(self) -> str:
        return UNITS[self.measure]

    @property
    def decimals(self) -> int:
        return DECIMALS.get(self.measure, 0)

    @property
    def finest_area_level(self) -> str | None:
        return list(self.area_levels)[-1] if self.area_levels else None

    @property
    def geography(self) -> str | None:
        """The geography breakdown (``area`` or a flat level), if any."""
        return next((b for b in self.breakdowns if b in GEOGRAPHY_BREAKDOWNS), None)


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    indicators: list[Indicator] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Catalogue:
        ids = [indicator.id for indicator in self.indicators]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"indicator ids used twice: {', '.join(duplicated)}")
        total = sum(indicator.budget_share for indicator in self.indicators)
        if total > 1 + 1e-9:
            shares = ", ".join(f"{i.id}={i.budget_share}" for i in self.indicators)
            raise ValueError(f"budget shares sum to {total:.3f}, more than 1 ({shares})")
        return self

    def get(self, indicator_id: str) -> Indicator:
        return next(i for i in self.indicators if i.id == indicator_id)


def _entry_problems(index: int, entry: Any) -> list[str]:
    name = entry.get("id") if isinstance(entry, dict) and entry.get("id") else f"number {index + 1}"
    try:
        Indicator.model_validate(entry)
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            where = ".".join(str(part) for part in detail["loc"])
            message = detail["msg"].removeprefix("Value error, ")
            problems.append(f"indicator {name!r}: {where + ': ' if where else ''}{message}")
        return problems
    return []


def parse_catalogue(raw: Any, source: str = "the catalogue") -> Catalogue:
    """Validate a catalogue document, raising ``CatalogueError`` naming each bad entry."""
    entries = raw.get("indicators") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise CatalogueError(f"{source} must have a non-empty `indicators` list.")
    problems = [problem for index, entry in enumerate(entries) for problem in _entry_problems(index, entry)]
    if problems:
        raise CatalogueError(f"{source} is not valid:\n- " + "\n- ".join(problems))
    try:
        return Catalogue.model_validate(raw)
    except ValidationError as error:
        messages = [detail["msg"].removeprefix("Value error, ") for detail in error.errors()]
        raise CatalogueError(f"{source} is not valid:\n- " + "\n- ".join(messages)) from error


@cache
def load_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    return parse_catalogue(yaml.safe_load(path.read_text(encoding="utf-8")), source=str(path))


def key_set(breakdown: str) -> list[tuple[str, str]]:
    """Every (code, label) of a flat breakdown, in publication order."""
    geography = load_geography()
    if breakdown == "nation":
        return sorted(geography.nations().items())
    if breakdown == "region":
        return sorted(geography.regions().items())
    if breakdown == "local_authority":
        return sorted((code, la.name) for code, la in geography.local_authorities.items())
    codelist = load_codelist(breakdown)
    keys = [(code.code, code.label) for code in codelist.codes]
    return keys if breakdown == "need" else [*keys, (NOT_RECORDED, "Not recorded")]


@dataclass(frozen=True)
class AreaNode:
    """One published area of an indicator's hierarchy; ``parent`` indexes the nearest listed ancestor."""

    level: str
    code: str
    name: str
    parent: int | None


def area_tree(levels: tuple[str, ...]) -> list[AreaNode]:
    """The areas at ``levels`` (top down), each pointing at its nearest ancestor among ``levels``."""
    geography = load_geography()
    chain: dict[tuple[str, str], tuple[str, str] | None] = {("uk", UK_CODE): None}
    names = {("uk", UK_CODE): UK_NAME}
    for area in geography.areas():
        if area.level == "uk":
            continue
        above = AREA_LEVELS[AREA_LEVELS.index(area.level) - 1]
        chain[(area.level, area.code)] = (above, area.parent_code or UK_CODE)
        names[(area.level, area.code)] = area.name
    nodes: list[AreaNode] = []
    index: dict[tuple[str, str], int] = {}
    for level in levels:
        for key in sorted(k for k in chain if k[0] == level):
            ancestor = chain[key]
            while ancestor is not None and ancestor[0] not in levels:
                ancestor = chain[ancestor]
            index[key] = len(nodes)
            nodes.append(AreaNode(level, key[1], names[key], index[ancestor] if ancestor else None))
    return nodes


@dataclass(frozen=True)
class Cell:
    """One published figure's keys: a code per breakdown, and the area level for ``area``."""

    keys: tuple[str, ...]
    level: str | None = None


def cells(indicator: Indicator) -> list[Cell]:
    """Every published cell: the product of the breakdowns' key sets (areas at every listed level)."""
    sets: list[list[tuple[str, str | None]]] = []
    for breakdown in indicator.breakdowns:
        if breakdown == "area":
            sets.append([(node.code, node.level) for node in area_tree(tuple(indicator.area_levels or {}))])
        else:
            sets.append([(code, None) for code, _ in key_set(breakdown)])
    return [
        Cell(tuple(code for code, _ in combo), next((level for _, level in combo if level), None))
        for combo in itertools.product(*sets)
    ]
