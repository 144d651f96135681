"""Minimisation: the only columns that may enter the warehouse, and how each is derived.

The warehouse schema is an allowlist. ``person_ref`` becomes a keyed pseudonym, the contact date
becomes its month and quarter, and the area is kept at local authority level with its public region
and nation. Names, contact details, postcodes, dates of birth and free text never appear here: they
are dropped at staging (``standards``), and anything not on this list is dropped again now. A linkage
token (keyed, from intake) only selects the linked pseudonym; ``linked`` records that it did.
"""

from __future__ import annotations

import polars as pl

from privacy.pseudonymise import person_keys
from standards.geography import load_geography

WAREHOUSE_SCHEMA: dict[str, pl.DataType] = {
    "submission_id": pl.String(),
    "charity_id": pl.String(),
    "person_key": pl.String(),
    "contact_month": pl.Date(),
    "quarter": pl.String(),
    "need": pl.String(),
    "local_authority_code": pl.String(),
    "region_code": pl.String(),
    "nation_code": pl.String(),
    "age_band": pl.String(),
    "household_type": pl.String(),
    "children_in_household": pl.Int64(),
    "tenure": pl.String(),
    "employment_status": pl.String(),
    "disability": pl.String(),
    "monthly_income_gbp": pl.Float64(),
    "monthly_essential_costs_gbp": pl.Float64(),
    "total_debt_gbp": pl.Float64(),
    "support_type": pl.String(),
    "standard_version": pl.String(),
    "linked": pl.Boolean(),
}


def minimise(
    contacts: pl.DataFrame, *, key: bytes, charity_id: str, submission_id: str, standard_version: str
) -> pl.DataFrame:
    """Standardised contacts -> warehouse rows, keeping only ``WAREHOUSE_SCHEMA`` columns.

    Row by row: each row's warehouse values depend only on that row, so any batching gives the same
    rows. ``linkage_token``, when present, is the staged keyed token (``privacy.pseudonymise``).
    """
    geography = load_geography().local_authorities
    regions = {code: la.region_code for code, la in geography.items()}
    nations = {code: la.nation_code for code, la in geography.items()}
    tokens = contacts.get_column("linkage_token") if "linkage_token" in contacts.columns else None
    return contacts.with_columns(
        pl.lit(submission_id).alias("submission_id"),
        pl.lit(charity_id).alias("charity_id"),
        person_keys(key, charity_id, contacts.get_column("person_ref"), tokens),
        (tokens.is_not_null() if tokens is not None else pl.lit(False)).alias("linked"),
        pl.col("contact_date").dt.month_start().alias("contact_month"),
        pl.col("local_authority_code").replace_strict(regions, return_dtype=pl.String).alias("region_code"),
        pl.col("local_authority_code").replace_strict(nations, return_dtype=pl.String).alias("nation_code"),
        pl.lit(standard_version).alias("standard_version"),
    ).select([pl.col(name).cast(dtype) for name, dtype in WAREHOUSE_SCHEMA.items()])
