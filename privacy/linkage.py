"""Keyed identity components for record linkage: what staging keeps of a linking charity's identifiers.

One exact token of surname + birth date + postcode district splits a person on any typo, a move or a
second reference. Instead each component is keyed on its own (HMAC under the collaborative's key, so
none can be recomputed from a name without the key): the surname, its Soundex code, the birth date,
its spellings one letter short (so a typo still agrees somewhere), the birth year and month, the
postcode district and its area (the district's letters: a move is mostly near). Each reference at a
linking charity becomes one linkage record (``reference_components``); ``privacy.clustering`` joins
the records of one person into a cluster, the privacy unit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice

import jellyfish
import polars as pl

from privacy.pseudonymise import keyed_codes, keyed_hashes, linkage_tokens

# The keyed components, each the HMAC of one normalised value.
COMPONENTS = ("surname", "surname_sound", "birth_date", "birth_month", "district", "postcode_area")
VARIANTS = "surname_variants"
TOKEN = "linkage_token"
# The match probability above which two records are one person (``privacy.clustering``). A missed link
# costs a person m²ρ; a wrong one only bounds two people's contributions together (utility, not privacy),
# so it leans low.
DEFAULT_THRESHOLD = 0.5
_POSTCODE_AREA = re.compile("[A-Z]{0,2}")  # the letters a district starts with: "BS35" -> "BS"


# What each component is derived from: one part of the basis, and how.
_BASIS_PARTS = ("surname", "birth_date", "district")
_DERIVATIONS: dict[str, tuple[str, Callable[[str], str]]] = {
    "surname": ("surname", str),
    "surname_sound": ("surname", jellyfish.soundex),
    "birth_date": ("birth_date", str),
    "birth_month": ("birth_date", lambda birth_date: birth_date[:7]),
    "district": ("district", str),
    "postcode_area": ("district", lambda district: _POSTCODE_AREA.match(district).group()),  # type: ignore[union-attr]
}


def component_values(basis: str) -> dict[str, str]:
    """The normalised values of a linkage basis (``SURNAME|YYYY-MM-DD|DISTRICT``,
    ``standards.extract.linkage_basis``), one per component."""
    parts = dict(zip(_BASIS_PARTS, basis.split("|"), strict=True))
    return {name: derive(parts[part]) for name, (part, derive) in _DERIVATIONS.items()}


def surname_variants(surname: str) -> list[str]:
    """The surname and every spelling of it with one letter left out, sorted and distinct.

    Two spellings one slip apart (a letter dropped, added, changed or two swapped) share a variant, so
    comparing keyed variant sets finds a typo although keyed values can only be compared for equality.
    """
    return sorted({surname, *(surname[:i] + surname[i + 1 :] for i in range(len(surname)))} - {""})


def keyed_components(key: bytes, bases: pl.Series) -> pl.DataFrame:
    """Each basis's keyed components (null where the basis is null), in input order: one column per
    ``COMPONENTS`` and ``surname_variants``, the keyed variant set.

    Each component is keyed with its own name, so equal values of two components never give equal codes.
    """
    parts = _basis_parts(bases)
    return _mapped_components(parts, _component_codes(key, parts))


def _basis_parts(bases: pl.Series) -> pl.DataFrame:
    return (
        bases.cast(pl.String)
        .str.split_exact("|", len(_BASIS_PARTS) - 1)
        .struct.rename_fields(list(_BASIS_PARTS))
        .struct.unnest()
    )


@dataclass(frozen=True)
class _ComponentCodes:
    """The keyed code of every distinct value of each component, and each distinct surname's keyed variants."""

    codes: dict[str, tuple[str, pl.Series, pl.Series]]  # component: (its part, the part's values, their codes)
    variants: pl.DataFrame


def _component_codes(key: bytes, parts: pl.DataFrame) -> _ComponentCodes:
    # A component is hashed once per distinct value of its part (far fewer than distinct people), each part's
    # distinct values found once for the components derived from it.
    distinct_values = {part: parts.get_column(part).drop_nulls().unique() for part in _BASIS_PARTS}
    codes = {}
    for name, (part, derive) in _DERIVATIONS.items():
        distinct = distinct_values[part]
        derived = pl.Series([derive(value) for value in distinct.to_list()], dtype=pl.String)
        codes[name] = (part, distinct, keyed_codes(key, ("link", name), derived))
    surnames = distinct_values["surname"]
    # Every surname's variants keyed in one call, not one per surname: the keyed states are set up once.
    spellings = [surname_variants(surname) for surname in surnames.to_list()]
    coded = iter(keyed_hashes(key, ("link", "surname_variant"), [v for variants in spellings for v in variants]))
    variants = pl.DataFrame(
        {"surname": surnames, VARIANTS: [list(islice(coded, len(variants))) for variants in spellings]},
        schema={"surname": pl.String, VARIANTS: pl.List(pl.String)},
    )
    return _ComponentCodes(codes, variants)


def _mapped_components(parts: pl.DataFrame, keyed: _ComponentCodes) -> pl.DataFrame:
    """``keyed_components`` of the bases split into ``parts``, from their codes."""
    codes = {
        name: parts.get_column(part).replace_strict(distinct, coded, default=None)
        for name, (part, distinct, coded) in keyed.codes.items()
    }
    with_variants = parts.select("surname").join(keyed.variants, on="surname", how="left", maintain_order="left")
    return pl.DataFrame(
        {**codes, VARIANTS: with_variants.get_column(VARIANTS)},
        schema={**dict.fromkeys(COMPONENTS, pl.String), VARIANTS: pl.List(pl.String)},
    )


IDENTITY = "linkage_basis"
CONTACTS = "contacts"


def identity_counts(contacts: pl.DataFrame) -> pl.DataFrame:
    """How many contacts of each reference carry each identity (``person_ref``, ``linkage_basis`` and
    ``contacts``); contacts without one are left out. Counts of several batches add up (``merge_counts``)."""
    return (
        contacts.lazy()
        .filter(pl.col(IDENTITY).is_not_null())
        .group_by("person_ref", IDENTITY)
        .agg(pl.len().cast(pl.Int64).alias(CONTACTS))
        .collect()
    )


def merge_counts(counts: list[pl.DataFrame]) -> pl.DataFrame:
    """``identity_counts`` of several batches as one."""
    return pl.concat(counts).group_by("person_ref", IDENTITY).agg(pl.col(CONTACTS).sum())


def reference_components(key: bytes, counts: pl.DataFrame) -> pl.DataFrame:
    """One linkage record per reference: ``person_ref`` and the keyed components of the identity most of
    its contacts carry (ties to the smallest linkage token), sorted by reference.

    ``counts`` is ``identity_counts`` (one row per reference and identity). A reference is one person at
    one charity, so it is one linkage record even if a surname was spelt two ways in its contacts. Only
    identities tied for a reference's most contacts are keyed as tokens: the rest need no token to lose.
    """
    return pl.concat(reference_component_parts(key, counts, max(counts.height, 1)))


def reference_component_parts(key: bytes, counts: pl.DataFrame, references: int) -> Iterator[pl.DataFrame]:
    """``reference_components`` in parts of ``references`` records each, in order: each part's keyed components
    (64 hex characters each, and a reference's every surname variant) are made only when it is taken, so
    memory holds one part of them, not the file's (a third of a gigabyte for 400,000 references)."""
    most = counts.filter(pl.col(CONTACTS) == pl.col(CONTACTS).max().over("person_ref"))
    tied = most.filter(pl.len().over("person_ref") > 1)
    if tied.height:
        tied = tied.with_columns(linkage_tokens(key, tied.get_column(IDENTITY)).alias(TOKEN))
        untied = most.filter(pl.len().over("person_ref") == 1)
        broken = tied.sort("person_ref", TOKEN).group_by("person_ref", maintain_order=True).first()
        most = pl.concat([untied, broken.select(untied.columns)])
    chosen = most.select("person_ref", IDENTITY).sort("person_ref")
    parts = _basis_parts(chosen.get_column(IDENTITY))
    keyed = _component_codes(key, parts)
    for offset in range(0, max(chosen.height, 1), references):  # an empty first part when no reference has one
        yield pl.concat(
            [
                chosen.select("person_ref").slice(offset, references),
                _mapped_components(parts.slice(offset, references), keyed),
            ],
            how="horizontal",
        )
