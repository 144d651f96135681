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

import jellyfish
import numpy as np
import polars as pl
import pyarrow as pa

from privacy.pseudonymise import keyed_int64_codes, keyed_int64s, linkage_tokens

# The keyed components, each the HMAC of one normalised value as a 64-bit integer (``keyed_int64s``).
COMPONENTS = ("surname", "surname_sound", "birth_date", "birth_month", "district", "postcode_area")
VARIANTS = "surname_variants"
TOKEN = "linkage_token"
# The match probability above which two records are one person (``privacy.clustering``). A missed link splits a
# person into more units (m²ρ); a wrong one joins two people into one unit, and removing either moves the figures by
# up to two units' worth (docs/privacy.md). Either can raise someone's loss above the stated worst case; the declared
# ``privacy.linked_units_per_person`` covers a person for whom linkage went wrong that many times less one. At 0.5,
# ``bench.linkage`` finds no wrong link and 4 people of 20,465 left split on the demo truth with typos.
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
    return _Codebook(key).components(_basis_parts(bases))


def _basis_parts(bases: pl.Series) -> pl.DataFrame:
    return (
        bases.cast(pl.String)
        .str.split_exact("|", len(_BASIS_PARTS) - 1)
        .struct.rename_fields(list(_BASIS_PARTS))
        .struct.unnest()
    )


# Codes kept from one part of a file's records for the next, per part of the basis (its components' codes and a
# surname's variants counted one by one), while there are at most this many: a file's values mostly recur from part
# to part (some thousands of surnames, tens of thousands of birth dates), and each is keyed once. Past it only the
# current part's are kept, so a file of ever-new values (a surname column holding free text) holds one part's codes,
# not the file's: 300,000 references of distinct surnames took 2.7 GB of memory keyed all at once, 0.9 GB kept this
# way, when codes were 64-character strings; as 64-bit codes, 0.45 GB.
_CODES_KEPT = 1_000_000
# The most surname variants (up to 65 a surname, each spelt out as a string, then keyed into an 8-byte code) in
# one part of a file's records, whose codes are made and held at once: parts of references with long surnames
# hold fewer references.
_VARIANTS_PER_PART = 1_000_000
# The components keyed from each part of the basis: the surname's variants from the surname too.
_KEYED_FROM = {part: [name for name, (source, _) in _DERIVATIONS.items() if source == part] for part in _BASIS_PARTS}
_KEYED_FROM["surname"].append(VARIANTS)


class _Codebook:
    """The keyed codes of each value of a part of the basis met so far (one per component keyed from it, and a
    surname's variants), made when a value is first met and kept while a part has at most ``_CODES_KEPT``."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        # By part of the basis: each of its distinct values ("value") and a column of codes per component keyed from it.
        self.kept: dict[str, pl.DataFrame] = {}

    def components(self, parts: pl.DataFrame) -> pl.DataFrame:
        """``keyed_components`` of the bases split into ``parts``. Each part's codes are looked up in one join: a
        lookup per component (seven over a file's records) took twice as long."""
        looked_up = pl.concat([self._coded(part, parts.get_column(part)) for part in _BASIS_PARTS], how="horizontal")
        return looked_up.select(pl.col(COMPONENTS).cast(pl.Int64), pl.col(VARIANTS).cast(pl.List(pl.Int64)))

    def _coded(self, part: str, values: pl.Series) -> pl.DataFrame:
        """The codes of each of ``values`` of a part of the basis, a column per component keyed from it (null where
        the value is)."""
        distinct = values.drop_nulls().unique()
        kept = self.kept.get(part)
        new = distinct if kept is None else distinct.filter(~distinct.is_in(kept.get_column("value").implode()))
        if kept is not None and _codes_in(kept) + _codes_for(part, new) > _CODES_KEPT:
            # Dropped before the new codes are made, so the two are never held together.
            kept = kept.filter(pl.col("value").is_in(distinct.implode()))
        if new.len() or kept is None:
            fresh = pl.DataFrame({"value": new, **{name: self._keyed(name, new) for name in _KEYED_FROM[part]}})
            kept = fresh if kept is None else pl.concat([kept, fresh])
        self.kept[part] = kept
        return values.to_frame("value").join(kept, on="value", how="left", maintain_order="left").drop("value")

    def _keyed(self, name: str, values: pl.Series) -> pl.Series:
        """The codes of component ``name`` of distinct ``values`` of the part it is derived from."""
        if name == VARIANTS:
            # Every surname's variants keyed in one call, not one per surname: the keyed states are set up once.
            # The lists are cut from the flat codes by their offsets, not built as Python lists: a tenth of the time.
            spellings = [surname_variants(surname) for surname in values.to_list()]
            codes = keyed_int64s(self._key, ("link", "surname_variant"), [v for each in spellings for v in each])
            offsets = np.cumsum([0, *(len(each) for each in spellings)], dtype=np.int64)
            return pl.Series(pa.LargeListArray.from_arrays(_int64_array(offsets), _int64_array(codes)))
        derive = _DERIVATIONS[name][1]
        derived = pl.Series([derive(value) for value in values.to_list()], dtype=pl.String)
        # Several values can derive one (the dates of a month): each derived value is keyed once.
        return keyed_int64_codes(self._key, ("link", name), derived)


def _int64_array(values: np.ndarray) -> pa.Array:
    """``values`` as an Arrow array over the same memory. Not ``pa.array``, which imports pandas the first time it
    is given a NumPy array (0.42 s, once per process, in every `collab check`)."""
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(np.ascontiguousarray(values))])


def _codes_in(kept: pl.DataFrame) -> int:
    """The codes a part's table of the codebook holds: one per value and component, and each of a surname's variants."""
    listed = [name for name, dtype in kept.schema.items() if dtype == pl.List]
    single = kept.width - 1 - len(listed)
    return kept.height * single + sum(int(kept.get_column(name).list.len().sum()) for name in listed)


def _codes_for(part: str, values: pl.Series) -> int:
    """The most codes that keying ``values`` of a part of the basis gives."""
    codes = values.len() * sum(1 for name in _KEYED_FROM[part] if name != VARIANTS)
    return codes + int(_variants_at_most(values).sum()) if VARIANTS in _KEYED_FROM[part] else codes


def _variants_at_most(surnames: pl.Series) -> np.ndarray:
    """Each surname's variant count can be no more than its length and one (``surname_variants``); none if null."""
    return (surnames.str.len_chars().cast(pl.Int64) + 1).fill_null(0).to_numpy()


IDENTITY = "linkage_basis"
CONTACTS = "contacts"


def identity_counts(contacts: pl.DataFrame) -> pl.DataFrame:
    """How many contacts of each reference carry each identity (``person_ref``, ``linkage_basis`` and
    ``contacts``); contacts without one are left out. Counts of several batches add up (``merge_counts``)."""
    return (
        contacts.filter(pl.col(IDENTITY).is_not_null())
        .group_by("person_ref", IDENTITY)
        .agg(pl.len().cast(pl.Int64).alias(CONTACTS))
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
    """``reference_components`` in parts of at most ``references`` records and ``_VARIANTS_PER_PART`` surname
    variants each (``_part_bounds``), in order: each part's keyed components (a reference's every surname
    variant among them) are made only when it is taken, so memory holds one part of them, not the file's (14 MB
    for a part of 111,000 references of 8-letter surnames), and the codes kept for the next parts are bounded too
    (``_Codebook``)."""
    most = counts.filter(pl.col(CONTACTS) == pl.col(CONTACTS).max().over("person_ref"))
    tied = most.filter(pl.len().over("person_ref") > 1)
    if tied.height:
        tied = tied.with_columns(linkage_tokens(key, tied.get_column(IDENTITY)).alias(TOKEN))
        untied = most.filter(pl.len().over("person_ref") == 1)
        broken = tied.sort("person_ref", TOKEN).group_by("person_ref", maintain_order=True).first()
        most = pl.concat([untied, broken.select(untied.columns)])
    chosen = most.select("person_ref", IDENTITY).sort("person_ref")
    parts = _basis_parts(chosen.get_column(IDENTITY))
    codebook = _Codebook(key)
    for start, end in _part_bounds(_variants_at_most(parts.get_column("surname")), references):
        yield pl.concat(
            [
                chosen.select("person_ref").slice(start, end - start),
                codebook.components(parts.slice(start, end - start)),
            ],
            how="horizontal",
        )


def _part_bounds(variants: np.ndarray, references: int) -> Iterator[tuple[int, int]]:
    """Consecutive parts of the records (``variants``: each one's most variants) of at most ``references`` records and
    ``_VARIANTS_PER_PART`` variants each (or one record, if it alone has more); one empty part if there are none."""
    start = 0
    while True:
        within = np.cumsum(variants[start : start + references])
        end = start + max(1, int(np.searchsorted(within, _VARIANTS_PER_PART, side="right")))
        yield start, min(end, len(variants))
        if end >= len(variants):
            return
        start = end
