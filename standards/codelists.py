"""Codelists of the standard, loaded from the CSV files in ``standards/codelists/``.

Each CSV has ``code,label,description,synonyms``; synonyms are ``|``-separated. Matching of a
charity's value is case-, space- and punctuation-insensitive over code, label and synonyms:
"Fuel & Energy", "fuel_energy" and "FuelEnergy" are the same value.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CODELIST_DIR = Path(__file__).with_name("codelists")

# '+' and '<' carry meaning in age bands ("75+", "<18"); every other symbol and space is dropped.
MATCH_KEY_DROPPED = r"[^0-9a-z+<]+"
_DROPPED = re.compile(MATCH_KEY_DROPPED)


def match_key(value: str) -> str:
    """Fold a value for lenient matching: lower case, spaces and punctuation removed."""
    return _DROPPED.sub("", value.lower())


@dataclass(frozen=True)
class Code:
    code: str
    label: str
    description: str
    synonyms: tuple[str, ...]


@dataclass(frozen=True)
class Codelist:
    name: str
    codes: tuple[Code, ...]

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(code.code for code in self.codes)

    def label(self, code: str) -> str:
        return next(c.label for c in self.codes if c.code == code)

    def lookup(self) -> dict[str, str]:
        """Map every folded spelling (code, label, synonym) to its code."""
        table: dict[str, str] = {}
        for code in self.codes:
            for spelling in (code.code, code.label, *code.synonyms):
                table.setdefault(match_key(spelling), code.code)
        return table


@cache
def load_codelist(name: str) -> Codelist:
    with (CODELIST_DIR / f"{name}.csv").open(newline="", encoding="utf-8") as handle:
        codes = tuple(
            Code(
                code=row["code"],
                label=row["label"],
                description=row["description"],
                synonyms=tuple(s.strip() for s in row["synonyms"].split("|") if s.strip()),
            )
            for row in csv.DictReader(handle)
        )
    return Codelist(name=name, codes=codes)


def codelist_names() -> list[str]:
    return sorted(path.stem for path in CODELIST_DIR.glob("*.csv"))
