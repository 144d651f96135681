"""Probabilistic record linkage of keyed identity components (``privacy.linkage``), with Splink on DuckDB.

Keyed values can only be compared for equality, so each comparison is "equal or not" (nested where
one component refines another: same surname, else a shared one-letter-short spelling, else same
sound; same birth date, else same month; same district, else same area). Splink (Fellegi-Sunter,
weights by EM) scores every candidate pair and joins pairs above the link threshold into clusters; a
cluster is one person, one privacy unit. A person split into m clusters costs m²ρ (see
docs/privacy.md); the threshold trades that against wrongly merged people.

Deterministic given the records: u is estimated from a seeded sample and EM starts from fixed values.
Training needs many records and some exact agreements (a handful of references, as in a new
collaborative's first quarter, give EM nothing to learn from); below ``MIN_TRAINING_RECORDS`` or
without ``MIN_EXACT_PAIRS`` agreeing pairs the weights are fixed, public values (``_FIXED_LEVELS``)
instead. Each cluster's id is the smallest ``unit_id`` among its members: the same records always give
the same ids, and a reference linked to nobody keeps its own.
"""

from __future__ import annotations

import logging

import duckdb
import polars as pl
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import Linker, SettingsCreator, block_on
from splink.internals.duckdb.database_api import DuckDBAPI

from privacy.linkage import COMPONENTS, DEFAULT_THRESHOLD, VARIANTS

UNIT_ID = "unit_id"
_SAMPLE_SEED = 2026
_SAMPLED_PAIRS = 1_000_000
MIN_TRAINING_RECORDS = 1_000
MIN_EXACT_PAIRS = 10
# Fixed (m, u) per comparison level, most specific first, when there is too little to train on; the else
# level takes the rest. u: the chance that two different people agree (a surname about 1 in 500, a birth
# date 1 in 20,000, a district 1 in 50: a collaborative's clients live near each other); m: the chance
# that one person's two records do. A surname agreeing only in sound is no evidence of one person (a slip
# is caught by the one-letter-short level first), and a move out of the postcode area is rare. Measured by
# ``bench.linkage`` on the demo truth (precision 1.000, recall 0.989-0.990 on 7,000 references, where
# training gives 0.99-1.00). With the prior below, a shared birth date and a one-slip surname link even
# after a move within the area; a shared birth date and district with another surname do not, nor do a
# shared surname and birth date far apart.
_FIXED_LEVELS: dict[str, tuple[tuple[float, float], ...]] = {
    "surname": ((0.95, 0.002), (0.04, 0.001), (0.0002, 0.002)),
    "birth": ((0.96, 0.00005), (0.03, 0.0015)),
    "place": ((0.89, 0.02), (0.1, 0.05)),
}
_FIXED_PRIOR = 0.000005


def _comparison(
    name: str,
    null: cll.ComparisonLevelCreator,
    levels: list[cll.ComparisonLevelCreator],
    *,
    trained: bool,
    tf: str | None = None,
) -> cl.CustomComparison:
    """One comparison: its null level, ``levels`` most specific first (the first adjusted for the term
    frequency of ``tf`` when trained), then else. Untrained, each level takes its ``_FIXED_LEVELS`` weights."""
    if trained:
        if tf:
            levels = [levels[0].configure(tf_adjustment_column=tf), *levels[1:]]
        return cl.CustomComparison(output_column_name=name, comparison_levels=[null, *levels, cll.ElseLevel()])
    fixed = _FIXED_LEVELS[name]
    weighted = [level.configure(m_probability=m, u_probability=u) for level, (m, u) in zip(levels, fixed, strict=True)]
    rest = cll.ElseLevel().configure(
        m_probability=1 - sum(m for m, _ in fixed), u_probability=1 - sum(u for _, u in fixed)
    )
    return cl.CustomComparison(output_column_name=name, comparison_levels=[null, *weighted, rest])


def _settings(*, trained: bool) -> SettingsCreator:
    surname = _comparison(
        "surname",
        cll.And(cll.NullLevel("surname"), cll.NullLevel("surname_sound")),
        [
            cll.ExactMatchLevel("surname"),
            cll.ArrayIntersectLevel(VARIANTS, min_intersection=1),
            cll.ExactMatchLevel("surname_sound"),
        ],
        trained=trained,
        tf="surname",
    )
    birth = _comparison(
        "birth",
        cll.NullLevel("birth_date"),
        [cll.ExactMatchLevel("birth_date"), cll.ExactMatchLevel("birth_month")],
        trained=trained,
    )
    place = _comparison(
        "place",
        cll.NullLevel("district"),
        [cll.ExactMatchLevel("district"), cll.ExactMatchLevel("postcode_area")],
        trained=trained,
        tf="district",
    )
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name=UNIT_ID,
        comparisons=[surname, birth, place],
        # Candidate pairs: a person is found if any one of these agrees, so one typo or one move loses nobody.
        blocking_rules_to_generate_predictions=[
            block_on("birth_date"),
            block_on("surname", "birth_month"),
            block_on("surname_sound", "district"),
        ],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
        **({} if trained else {"probability_two_random_records_match": _FIXED_PRIOR}),
    )


def _trainable(records: pl.DataFrame) -> bool:
    """Enough records, and enough pairs agreeing on surname, birth date and district, to train on."""
    if records.height < MIN_TRAINING_RECORDS:
        return False
    sizes = (
        records.drop_nulls(["surname", "birth_date", "district"]).group_by("surname", "birth_date", "district").len()
    )
    return int((sizes.get_column("len") * (sizes.get_column("len") - 1) // 2).sum()) >= MIN_EXACT_PAIRS


def link_clusters(
    records: pl.DataFrame, *, threshold: float = DEFAULT_THRESHOLD, train: bool | None = None
) -> pl.DataFrame:
    """Records (``unit_id`` and ``keyed_components``) -> ``unit_id``, ``cluster_id`` for every record.

    ``cluster_id`` is the smallest ``unit_id`` of its members; a record linked to none is its own cluster.
    ``train``: whether to estimate the weights from the records; by default, when there are enough of them
    (``bench.linkage`` also measures the fixed weights on many records).
    """
    if not 0 < threshold < 1:
        raise ValueError(f"the link threshold is a probability strictly between 0 and 1, not {threshold}")
    if records.get_column(UNIT_ID).n_unique() != records.height:
        raise ValueError("each record needs its own unit_id")
    if records.height < 2:
        return records.select(UNIT_ID, pl.col(UNIT_ID).alias("cluster_id"))
    frame = records.select(UNIT_ID, *COMPONENTS, VARIANTS).sort(UNIT_ID).to_pandas()
    trained = _trainable(records) if train is None else train
    # Splink's own in-memory database, closed as soon as the clusters are read.
    database = duckdb.connect()
    try:
        linker = Linker(DuckDBAPI(database).register(frame), _settings(trained=trained), log_level=logging.ERROR)
        if trained:
            linker.training.estimate_probability_two_random_records_match(
                [block_on("surname", "birth_date", "district")], recall=0.8
            )
            linker.training.estimate_u_using_random_sampling(max_pairs=_SAMPLED_PAIRS, seed=_SAMPLE_SEED)
            # EM on pairs agreeing on birth date trains the name and district weights, and the other way round.
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on("birth_date"), fix_u_probabilities=True
            )
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on("surname", "district"), fix_u_probabilities=True
            )
        pairs = linker.inference.predict(threshold_match_probability=threshold)
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            pairs, threshold_match_probability=threshold
        )
        found = pl.from_pandas(clusters.as_pandas_dataframe()[[UNIT_ID, "cluster_id"]]).cast(pl.String)
    finally:
        database.close()
    found = found.with_columns(pl.col(UNIT_ID).min().over("cluster_id").alias("cluster_id"))
    return records.select(UNIT_ID).join(found, on=UNIT_ID, how="left", maintain_order="left")
