"""Minimisation: the only columns that may enter the warehouse, and how each is derived.

The warehouse schema is an allowlist. ``person_ref`` becomes a keyed pseudonym, the contact date
becomes its month and quarter, and the area is kept at local authority level with its public region
and nation. Names, contact details, postcodes, dates of birth and free text never appear here: they
are dropped at staging (``standards``), and anything not on this list is dropped again now. At a
charity that links records, each reference's identifiers arrive already keyed, one linkage record per
reference (``privacy.linkage``); it enters ``linkage_units`` under the reference's person_key, and
``linked`` marks the contacts whose reference has one.
"""

from __future__ import annotations

import polars as pl

from privacy.linkage import COMPONENTS, VARIANTS
from privacy.pseudonymise import person_keys
from standards.extract import STANDARD_CONTACT_SCHEMA
from standards.geography import load_geography

# Staged fields that do not enter the warehouse as they are: the row number, the reference (keyed into
# ``person_key``), the contact date (kept as its month) and the linkage basis (keyed at staging, then dropped).
_REPLACED_FIELDS = ("source_row", "person_ref", "contact_date", "linkage_basis")

# The allowlist, derived from the standard's one declaration of a contact (``STANDARD_CONTACT_SCHEMA``).
WAREHOUSE_SCHEMA: dict[str, pl.DataType] = {
    "submission_id": pl.String(),
    "charity_id": pl.String(),
    "person_key": pl.Int64(),
    "contact_month": pl.Date(),
    **{name: dtype for name, dtype in STANDARD_CONTACT_SCHEMA.items() if name not in _REPLACED_FIELDS},
    "region_code": pl.String(),
    "nation_code": pl.String(),
    "standard_version": pl.String(),
    "linked": pl.Boolean(),
}
# A linking reference's keyed components (never a raw identifier: 64-bit keyed codes,
# ``privacy.pseudonymise.keyed_int64s``), under its person_key (``unit_key``).
_UNIT_NAMES = ("unit_key", "charity_id", "submission_id")
LINKAGE_UNIT_SCHEMA: dict[str, pl.DataType] = {
    "unit_key": pl.Int64(),
    "charity_id": pl.String(),
    "submission_id": pl.String(),
    **{name: pl.Int64() for name in COMPONENTS},
    VARIANTS: pl.List(pl.Int64()),
}


def minimise(
    contacts: pl.DataFrame, *, key: bytes, charity_id: str, submission_id: str, standard_version: str
) -> pl.DataFrame:
    """Standardised contacts -> warehouse rows, keeping only ``WAREHOUSE_SCHEMA`` columns.

    Row by row: each row's warehouse values depend only on that row, so any batching gives the same
    rows. ``linked``, when present, is staging's mark of a contact whose reference has a linkage record.
    """
    geography = load_geography().local_authorities
    regions = {code: la.region_code for code, la in geography.items()}
    nations = {code: la.nation_code for code, la in geography.items()}
    return contacts.with_columns(
        pl.lit(submission_id).alias("submission_id"),
        pl.lit(charity_id).alias("charity_id"),
        person_keys(key, charity_id, contacts.get_column("person_ref")),
        (pl.col("linked") if "linked" in contacts.columns else pl.lit(False)).alias("linked"),
        pl.col("contact_date").dt.month_start().alias("contact_month"),
        pl.col("local_authority_code").replace_strict(regions, return_dtype=pl.String).alias("region_code"),
        pl.col("local_authority_code").replace_strict(nations, return_dtype=pl.String).alias("nation_code"),
        pl.lit(standard_version).alias("standard_version"),
    ).select([pl.col(name).cast(dtype) for name, dtype in WAREHOUSE_SCHEMA.items()])


def minimise_units(units: pl.DataFrame, *, key: bytes, charity_id: str, submission_id: str) -> pl.DataFrame:
    """A submission's linkage records (``privacy.linkage.reference_components``) -> ``LINKAGE_UNIT_SCHEMA``
    rows: the reference becomes its person_key, the same key its contacts carry; the components are kept as
    they were staged. Records staged before the components were 64-bit codes hold them as 64-hex HMACs, which
    the warehouse converts when it stores them (``collab.linkage.store_units``)."""
    return units.with_columns(
        person_keys(key, charity_id, units.get_column("person_ref")).alias("unit_key"),
        pl.lit(charity_id).alias("charity_id"),
        pl.lit(submission_id).alias("submission_id"),
    ).select(*(pl.col(name).cast(LINKAGE_UNIT_SCHEMA[name]) for name in _UNIT_NAMES), *COMPONENTS, VARIANTS)
