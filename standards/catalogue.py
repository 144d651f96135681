"""The indicator catalogue (``indicators.yaml``), validated on load, and the public key sets.

A catalogue entry names its measure, its breakdowns, how many cells one person may contribute to,
and its share of the period's privacy budget. Breakdown keys are public: they come from the
codelists and the geography, so the set of published cells never depends on the data.
"""

from __future__ import annotations

import itertools
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from standards.codelists import load_codelist
from standards.geography import load_geography

CATALOGUE_PATH = Path(__file__).with_name("indicators.yaml")

Measure = Literal["people_count"]
Breakdown = Literal["nation", "region", "local_authority", "need", "age_band", "household_type", "tenure", "disability"]

# Warehouse column holding each breakdown's key.
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
NOT_RECORDED = "not_recorded"


class Indicator(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    description: str
    measure: Measure
    breakdowns: list[Breakdown] = Field(min_length=1)
    max_cells_per_person: int = Field(default=1, ge=1)
    budget_share: float = Field(gt=0, le=1)

    @field_validator("breakdowns")
    @classmethod
    def _distinct(cls, breakdowns: list[str]) -> list[str]:
        if len(set(breakdowns)) != len(breakdowns):
            raise ValueError("a breakdown is listed twice")
        return breakdowns


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


@cache
def load_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    return Catalogue.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def key_set(breakdown: str) -> list[tuple[str, str]]:
    """Every (code, label) of a breakdown, in publication order."""
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


def cells(indicator: Indicator) -> list[tuple[str, ...]]:
    """Every cell of an indicator: the product of its breakdowns' key sets."""
    return list(itertools.product(*[[code for code, _ in key_set(b)] for b in indicator.breakdowns]))
