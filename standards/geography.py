"""UK geography: local authority districts (LAD25), their region and nation, postcode districts.

Data: ONS / OS / Royal Mail under the Open Government Licence v3.0; see
``standards/geography/README.md`` for attribution and derivation. These are the public key sets
for breakdowns: every release reports every area, whatever the data hold.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from standards.codelists import match_key

GEOGRAPHY_DIR = Path(__file__).with_name("geography")
# What everything made with these lookups must say, as their licences require (``geography/README.md``): the
# areas of every published figure come from them, a postcode's through the ONS postcode lookup.
ATTRIBUTION = (
    "Source: Office for National Statistics (local authority districts, May 2025; postcode districts), licensed "
    "under the Open Government Licence v3.0. Contains OS data © Crown copyright and database right 2025. Contains "
    "Royal Mail data © Royal Mail copyright and database right 2025. Contains National Statistics data © Crown "
    "copyright and database right 2025."
)
ATTRIBUTION_SOURCE = "https://geoportal.statistics.gov.uk/"

# Codes replaced after boundary changes, mapped to the LAD25 code a charity should use now.
SUCCESSOR_CODES = {"E08000016": "E08000038", "E08000019": "E08000039"}

UK_CODE = "K02000001"
UK_NAME = "United Kingdom"

_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})?$")

# The fewest letters a short name has to be told apart by: "Ne" starts too many names to list.
MIN_SHORT_NAME = 4

# What a council's own name adds to its authority's name, before or after it: "Leeds City Council", "Cornwall
# Council", "Wrexham County Borough Council", "London Borough of Hackney", "City of Edinburgh Council". A name is looked
# up with them taken off only when it is not an authority's name as written ("City of London" is one).
COUNCIL_AFFIXES = (
    r"(?i)^\s*(?:the\s+)?(?:(?:london|royal|metropolitan)\s+borough\s+of|city\s+and\s+county\s+of|county\s+borough\s+of|"
    r"borough\s+of|city\s+of|lb)\s+|\s+(?:(?:metropolitan\s+)?borough\s+|city\s+|county\s+(?:borough\s+)?|district\s+)?"
    r"council\s*$"
)
# The longest name an authority is looked for by in Python's ``re``, whose search for ``COUNCIL_AFFIXES`` in a cell of
# spaces takes time growing with the square of its length (Polars' regex engine needs no limit). The longest
# authority's name is 36 characters, and a council's own name adds at most 30.
LONGEST_NAME = 120


@dataclass(frozen=True)
class LocalAuthority:
    code: str
    name: str
    region_code: str
    region_name: str
    nation_code: str
    nation_name: str


@dataclass(frozen=True)
class Area:
    """A public area at one level of the hierarchy UK > nation > region > local authority."""

    level: str
    code: str
    name: str
    parent_code: str | None


@dataclass(frozen=True)
class Geography:
    local_authorities: dict[str, LocalAuthority]
    postcode_districts: dict[str, str]
    current_districts: frozenset[str]  # districts with live postcodes; the others are retired
    # The everyday short names of authorities ("Hull", "Glasgow"), each naming one only (``local_authority_aliases.csv``).
    name_aliases: dict[str, str]

    def regions(self) -> dict[str, str]:
        """Region code -> name: the 9 English regions plus Wales, Scotland and Northern Ireland."""
        return {la.region_code: la.region_name for la in self.local_authorities.values()}

    def nations(self) -> dict[str, str]:
        return {la.nation_code: la.nation_name for la in self.local_authorities.values()}

    def areas(self) -> list[Area]:
        """Every area of the hierarchy, top down, each with its parent's code."""
        areas = [Area("uk", UK_CODE, UK_NAME, None)]
        areas += [Area("nation", code, name, UK_CODE) for code, name in sorted(self.nations().items())]
        region_parent = {la.region_code: la.nation_code for la in self.local_authorities.values()}
        areas += [Area("region", code, name, region_parent[code]) for code, name in sorted(self.regions().items())]
        areas += [
            Area("local_authority", la.code, la.name, la.region_code)
            for la in sorted(self.local_authorities.values(), key=lambda la: la.code)
        ]
        return areas

    def local_authority_code(self, code: str) -> str | None:
        """The current LAD25 code for a code a charity sent, or None if it is not a UK LAD."""
        code = code.strip().upper()
        code = SUCCESSOR_CODES.get(code, code)
        return code if code in self.local_authorities else None

    def postcode_district(self, postcode: str) -> str | None:
        """The outward code of a full postcode or of a district alone, or None if malformed."""
        match = _POSTCODE.match(re.sub(r"\s+", "", postcode.upper()))
        return match.group(1) if match else None

    def local_authority_names(self) -> dict[str, str]:
        """Folded name -> code, for a charity that names its local authority instead of coding it.

        ONS writes some names inverted ('Bristol, City of'); the plain name is accepted as well, and so are the
        everyday short names of ``name_aliases`` ('Hull'). A council's own name ('Leeds City Council') is looked up
        without its ``COUNCIL_AFFIXES``.
        """
        names: dict[str, str] = {}
        for la in self.local_authorities.values():
            plain = re.sub(r", (City|County) of$", "", la.name)
            for spelling in {la.name, plain}:
                names.setdefault(match_key(spelling), la.code)
        for alias, code in self.name_aliases.items():
            names.setdefault(match_key(alias), code)
        return names

    def authorities_named_like(self, name: str) -> list[LocalAuthority]:
        """The authorities whose names start with ``name`` (without what a council's name adds), by name: what a
        short name no table holds could mean ('Newcastle': Newcastle upon Tyne, Newcastle-under-Lyme)."""
        if len(name) > LONGEST_NAME:
            return []
        key = match_key(re.sub(COUNCIL_AFFIXES, "", name.replace("&", " and ")))
        if len(key) < MIN_SHORT_NAME:
            return []
        named = (la for la in self.local_authorities.values() if match_key(la.name).startswith(key))
        return sorted(named, key=lambda la: la.name)

    def local_authority_for_postcode(self, postcode: str) -> str | None:
        district = self.postcode_district(postcode)
        return self.postcode_districts.get(district) if district else None


@cache
def load_geography() -> Geography:
    with (GEOGRAPHY_DIR / "local_authorities.csv").open(newline="", encoding="utf-8") as handle:
        local_authorities = {
            row["lad_code"]: LocalAuthority(
                code=row["lad_code"],
                name=row["lad_name"],
                region_code=row["region_code"],
                region_name=row["region_name"],
                nation_code=row["country_code"],
                nation_name=row["country_name"],
            )
            for row in csv.DictReader(handle)
        }
    with (GEOGRAPHY_DIR / "postcode_districts.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return Geography(
        local_authorities=local_authorities,
        # Retired districts stay in the lookup: older records still carry their postcodes.
        postcode_districts={row["postcode_district"]: row["lad_code"] for row in rows},
        current_districts=frozenset(row["postcode_district"] for row in rows if row["in_use"] == "TRUE"),
        name_aliases=_name_aliases(),
    )


def _name_aliases() -> dict[str, str]:
    """The everyday short names of authorities (``local_authority_aliases.csv``), each with its code."""
    with (GEOGRAPHY_DIR / "local_authority_aliases.csv").open(newline="", encoding="utf-8") as handle:
        return {row["alias"]: row["lad_code"] for row in csv.DictReader(handle)}
