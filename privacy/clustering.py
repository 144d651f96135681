"""Probabilistic record linkage of keyed identity components (``privacy.linkage``), with Splink on DuckDB.

Keyed values can only be compared for equality, so each comparison is "equal or not" (nested where
one component refines another: same surname, else a shared one-letter-short spelling, else same
sound; same birth date, else same month; same district, else same area). Splink (Fellegi-Sunter,
weights by EM) scores every candidate pair and joins pairs above the link threshold into clusters; a
cluster is one person, one privacy unit. A person split into m clusters costs m²ρ, and a record of someone
else's matched with theirs adds a unit too (see docs/privacy.md): the threshold trades missed links against
wrong ones, and both cost privacy.

The pipeline always links on fixed, public weights (``_FIXED_LEVELS``); ``link_clusters`` can also train them,
which ``bench.linkage`` compares. Deterministic given the records: u is estimated from a seeded sample and EM
starts from fixed values. Training needs many records and some exact agreements (a handful of references, as in a new
collaborative's first quarter, give EM nothing to learn from); below ``MIN_TRAINING_RECORDS`` or
without ``MIN_EXACT_PAIRS`` agreeing pairs the weights are fixed, public values (``_FIXED_LEVELS``)
instead. Each cluster's id is the smallest ``unit_id`` among its members: the same records always give
the same ids, and a reference linked to nobody keeps its own.

On the fixed weights a pair's score depends on its two records alone, so clusters can be brought up to
date with changed records without scoring the others again (``relink_clusters``): the links that can
appear are those of a changed record, found by the same blocking rules and scored the same way
(``changed_links``), in as many parts as memory needs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import cache

import duckdb
import numpy as np
import polars as pl
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components
from splink import Linker, SettingsCreator, block_on
from splink.blocking_rule_library import And, CustomRule
from splink.internals.duckdb.database_api import DuckDBAPI

from privacy.linkage import COMPONENTS, DEFAULT_THRESHOLD, VARIANTS

UNIT_ID = "unit_id"
_SAMPLE_SEED = 2026
_SAMPLED_PAIRS = 1_000_000
MIN_TRAINING_RECORDS = 1_000
MIN_EXACT_PAIRS = 10
# Fixed (m, u) per comparison level, most specific first: the pipeline's, and link_clusters' with too little to train on; the else
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
# Candidate pairs: a person is found if any one of these agrees, so one typo or one move loses nobody. Two
# records that agree on none of them are never compared, so never linked: every combination of levels the fixed
# weights score at 0.16 or more implies one of them (tested), so no threshold of 0.16 or more loses a link to them.
# A birth date is paired with the postcode area, not alone: alone it compared each unit with every unit born
# that day anywhere (hundreds in a warehouse of millions), pairs the weights can only link within the area.
BLOCKING_KEYS: tuple[tuple[str, ...], ...] = (
    ("birth_date", "postcode_area"),
    ("surname", "birth_month"),
    ("surname_sound", "district"),
)
# A column of the records given to ``changed_links``: true for the changed records, whose pairs are wanted.
CHANGED = "changed_record"


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


def _settings(
    *, trained: bool, changed_only: bool = False, keys: tuple[tuple[str, ...], ...] = BLOCKING_KEYS
) -> SettingsCreator:
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
        blocking_rules_to_generate_predictions=[
            And(block_on(*key), CustomRule(f"l.{CHANGED} OR r.{CHANGED}")) if changed_only else block_on(*key)
            for key in keys
        ],
        additional_columns_to_retain=[CHANGED] if changed_only else [],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
        **({} if trained else {"probability_two_random_records_match": _FIXED_PRIOR}),
    )


@cache
def fixed_model() -> str:
    """A fingerprint (SHA-256) of how units are compared untrained: the blocking keys, each comparison level's
    condition and fixed weights, and the prior, as Splink reads them.

    Clusters brought up to date load by load (``relink_clusters``) are only the clusters ``link_clusters``
    would make if every earlier link was scored by the same model: the warehouse records this beside its
    clusters, and a changed model (new weights, a new level or blocking key, a new Splink that writes them
    differently) makes every unit be linked afresh."""
    settings = _settings(trained=False).get_settings("duckdb").as_dict()
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


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
    _check(records, threshold)
    trained = _trainable(records) if train is None else train
    ids = records.get_column(UNIT_ID)
    found = _components(ids, _links(records, threshold=threshold, trained=trained))
    return pl.DataFrame({UNIT_ID: ids, "cluster_id": found})


def changed_links(
    records: pl.DataFrame,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    keys: tuple[tuple[str, ...], ...] = BLOCKING_KEYS,
    memory: SplinkMemory | None = None,
) -> pl.DataFrame:
    """``unit_id_l``, ``unit_id_r`` of links joining the ``records`` that every pair with a changed record (``CHANGED``
    true) sharing one of ``keys`` (``BLOCKING_KEYS`` or some of them) and scoring at or above
    ``threshold`` on the fixed weights joins: in each group such pairs join, its smallest ``unit_id`` linked to
    each of the others. Clusters are what links join, so these give the clusters all the pairs give, in links
    that follow the records, not the pairs (10,000 records of one identity are 9,999 links, not 49,995,000).

    On the fixed weights a pair's score depends on its two records alone, so the links can be found in
    parts: the groups that the union of the links of several calls joins, each call with some blocking keys
    and the records sharing a value of them, are those that one call on all the records joins.
    """
    if CHANGED not in records.columns:
        raise ValueError(f"the records need a {CHANGED} column: true for each changed record")
    _check(records, threshold)
    return _links(records, threshold=threshold, keys=keys, memory=memory)


def relink_clusters(
    changed: pl.Series, links: pl.DataFrame, clusters: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bring clusters made on the fixed weights up to date with changed records, as ``link_clusters`` would.

    ``changed``: the ``unit_id`` of every record that is new, or whose cluster lost a member (a record
    removed or changed; its remaining members are changed too). ``links``: ``changed_links`` of the
    changed records with every record (pairs with a changed record are the only links that can be new).
    ``clusters``: ``unit_id``, ``cluster_id`` from earlier of every record in ``links`` that is not
    changed; their clusters are otherwise untouched, so each keeps its links and its id (the smallest of
    members that all remain).

    Returns ``unit_id``, ``cluster_id`` of each changed record, and ``cluster_id``, ``merged_into`` of each
    earlier cluster a changed record joined to a cluster with a smaller id. The links join the changed
    records and the earlier clusters, so the result is the clusters that ``link_clusters`` finds on all
    records with ``train=False``.
    """
    earlier, earlier_cluster = clusters.get_column(UNIT_ID), clusters.get_column("cluster_id")
    linked = pl.concat([links.get_column(f"{UNIT_ID}_l"), links.get_column(f"{UNIT_ID}_r")])
    if changed.is_in(earlier).any() or not linked.is_in(pl.concat([earlier, changed])).all():
        raise ValueError("each linked record must be either changed or in an earlier cluster")
    # A record of an earlier cluster stands for its whole cluster: the cluster's id is the node.
    edges = links.select(pl.col(f"{UNIT_ID}_l", f"{UNIT_ID}_r").replace(earlier, earlier_cluster))
    nodes = pl.concat([changed, clusters.get_column("cluster_id")]).unique()
    joined = pl.DataFrame({"node": nodes, "cluster_id": _components(nodes, edges)})
    changed_clusters = (
        pl.DataFrame({UNIT_ID: changed, "node": changed}).join(joined, on="node").select(UNIT_ID, "cluster_id")
    )
    merged = joined.filter(pl.col("node").is_in(clusters.get_column("cluster_id").implode()))
    merged = merged.filter(pl.col("node") != pl.col("cluster_id")).select(
        pl.col("node").alias("cluster_id"), pl.col("cluster_id").alias("merged_into")
    )
    return changed_clusters, merged


def _check(records: pl.DataFrame, threshold: float) -> None:
    if not 0 < threshold < 1:
        raise ValueError(f"the link threshold is a probability strictly between 0 and 1, not {threshold}")
    if records.get_column(UNIT_ID).n_unique() != records.height:
        raise ValueError("each record needs its own unit_id")


@dataclass(frozen=True)
class SplinkMemory:
    """Splink's database's memory limit (DuckDB's syntax, ``"512MB"``) and where it spills beyond it."""

    limit: str
    spill_directory: str


def _links(
    records: pl.DataFrame,
    *,
    threshold: float,
    trained: bool = False,
    keys: tuple[tuple[str, ...], ...] = BLOCKING_KEYS,
    memory: SplinkMemory | None = None,
) -> pl.DataFrame:
    """``unit_id_l``, ``unit_id_r`` joining the records that the pairs Splink scores at or above ``threshold`` join
    (``_forest``); with a ``changed_record`` column, only the pairs with a changed record.

    On the fixed weights (not ``trained``), records with the same components are scored once (``_Copies``)."""
    changed_only = CHANGED in records.columns
    if records.height < 2 or (changed_only and not records.get_column(CHANGED).any()):
        ids = records.schema[UNIT_ID]
        return pl.DataFrame(schema={f"{UNIT_ID}_l": ids, f"{UNIT_ID}_r": ids})
    columns = [UNIT_ID, *COMPONENTS, VARIANTS, *([CHANGED] if changed_only else [])]
    ordered = records.select(columns).sort(UNIT_ID)
    coded = as_codes(ordered)
    copies = _Copies.none(coded) if trained else _Copies.of(coded, changed_only=changed_only)
    frame = copies.scored.to_arrow(compat_level=pl.CompatLevel.newest())
    # Splink's own in-memory database, closed as soon as the links are read; bounded when asked, spilling beyond.
    config = {"memory_limit": memory.limit, "temp_directory": memory.spill_directory} if memory else {}
    database = duckdb.connect(config=config)
    try:
        settings = _settings(trained=trained, changed_only=changed_only, keys=keys)
        linker = Linker(DuckDBAPI(database).register(frame), settings, log_level=logging.ERROR)
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
        # Splink's prediction threshold is on the match weight; the link is on the probability, as its clustering.
        linked = database.sql(
            f"SELECT {UNIT_ID}_l, {UNIT_ID}_r FROM {pairs.physical_name} WHERE match_probability >= $threshold",
            params={"threshold": threshold},
        ).fetchnumpy()
        # Only the links of a spanning forest are read back as unit ids (see ``changed_links``), into new strings:
        # mapped back in Polars, the links' strings would be views keeping every record's buffers alive.
        forest = pl.DataFrame(
            dict(
                zip(
                    ("left", "right"),
                    _forest(*copies.links_of_all(linked[f"{UNIT_ID}_l"], linked[f"{UNIT_ID}_r"]), ordered.height),
                    strict=True,
                )
            ),
            schema={"left": pl.UInt32, "right": pl.UInt32},
        )
        positions = ordered.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("position"), UNIT_ID)
        database.register("unit_positions", positions.to_arrow(compat_level=pl.CompatLevel.newest()))
        database.register("forest", forest.to_arrow())
        links = database.sql(
            f"""
            SELECT l.{UNIT_ID} AS {UNIT_ID}_l, r.{UNIT_ID} AS {UNIT_ID}_r FROM forest f
            JOIN unit_positions l ON l.position = f.left JOIN unit_positions r ON r.position = f.right
            ORDER BY f.left, f.right
            """
        ).pl()
    finally:
        database.close()
    return links


@dataclass(frozen=True)
class _Copies:
    """Records that are copies of one another (the same components), scored once.

    On the fixed weights a pair's score depends on its two records' components alone, so copies score alike
    with every other record, and any two copies score alike: a hostile or careless file of ten thousand
    references of one identity would otherwise be fifty million pairs for Splink. Only the first two copies of
    each identity are ``scored`` (the second so that copies are scored with each other); each further copy has
    the links of the second. In the links' groups (all that links are used for) a further copy belongs with the
    second whenever the second is linked at all: to the first (then they are all linked), or to another record
    (which every copy is linked to), and it is alone when the second is. A pair is scored when one of its
    records is changed (``changed_only``); the second copy counts as changed when a further copy is, so that a
    changed further copy's links, found through the second, are all scored.

    Records are given as ``as_codes`` makes them: each ``unit_id`` is the record's position, and copies are
    found among small integer codes."""

    scored: pl.DataFrame
    # The position of each further copy, and of the second copy of its identity.
    further: np.ndarray
    second: np.ndarray

    @classmethod
    def none(cls, coded: pl.DataFrame) -> _Copies:
        """Every record scored: trained weights count how often each value occurs, so copies matter there."""
        return cls(coded, np.empty(0, dtype=np.uint32), np.empty(0, dtype=np.uint32))

    @classmethod
    def of(cls, coded: pl.DataFrame, *, changed_only: bool) -> _Copies:
        identity = [*COMPONENTS, VARIANTS]
        # Identities held three times or more are found among records whose hash is: few, and cheap to find.
        hashed_thrice = pl.len().over(pl.struct(identity).hash()) >= 3
        copy = pl.col("_copy")
        of_group = [pl.col(UNIT_ID).filter(copy == 1).first().over(identity).alias("_second")]
        if changed_only:
            of_group.append(pl.col(CHANGED).filter(copy >= 1).any().over(identity).alias("_changed_after_first"))
        numbered = (
            coded.filter(hashed_thrice)
            .with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).over(identity).alias("_copy"))
            .with_columns(*of_group)
            .filter(copy >= 1)
        )
        further = numbered.filter(copy >= 2)
        if further.is_empty():
            return cls.none(coded)
        scored = coded.filter(~pl.col(UNIT_ID).is_in(further.get_column(UNIT_ID).implode()))
        if changed_only:
            raised = numbered.filter((copy == 1) & pl.col("_changed_after_first")).get_column(UNIT_ID)
            scored = scored.with_columns(pl.col(CHANGED) | pl.col(UNIT_ID).is_in(raised.implode()))
        return cls(scored, further.get_column(UNIT_ID).to_numpy(), further.get_column("_second").to_numpy())

    def links_of_all(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The links Splink found among the scored records, with each further copy linked to its identity's
        second copy if that is linked at all."""
        linked = np.isin(self.second, np.concatenate([left, right]))
        return np.concatenate([left, self.second[linked]]), np.concatenate([right, self.further[linked]])


def _forest(left: np.ndarray, right: np.ndarray, records: int) -> tuple[np.ndarray, np.ndarray]:
    """A spanning forest of the links between positions ``left`` and ``right`` (of ``records`` positions): in each
    group of positions the links join, the smallest joined to each of the others. It joins the same positions as
    the links, with fewer links than positions: a thousand records of one identity are 999 links, not 499,500."""
    if left.size == 0:
        return left.astype(np.uint32), right.astype(np.uint32)
    graph = coo_array((np.ones(left.size, dtype=np.int8), (left, right)), shape=(records, records))
    _, labels = connected_components(graph, directed=False)
    joined = np.zeros(records, dtype=bool)
    joined[left], joined[right] = True, True
    members = np.flatnonzero(joined)
    # Positions ascend, so the first member of each group met is its smallest.
    smallest = np.full(labels.max() + 1, records)
    np.minimum.at(smallest, labels[members], members)
    others = members[members != smallest[labels[members]]]
    return smallest[labels[others]].astype(np.uint32), others.astype(np.uint32)


def as_codes(records: pl.DataFrame) -> pl.DataFrame:
    """``records`` (sorted by ``unit_id``) with each unit's position in place of its ``unit_id`` and, in each
    component column, one integer for each distinct value (the position of the first unit holding it; nulls
    stay null), and in each variant list one integer for each distinct variant (a list keeps its length
    and order).

    Splink only ever pairs and compares values of the same column for equality (blocking on equal values,
    exact-match levels, the size of the intersection of two variant lists, term frequencies), so within
    each column a one-to-one code gives the same pairs, the same scores and the same links. It carries
    4-byte integers through its joins and intermediate tables, half the keyed codes' 8 bytes (when those were
    64-character strings, carrying them made most of its time and memory). Positions keep the order of
    ``unit_id``, the order Splink puts each pair's two records in. Codes are found by hashing each value, not by
    sorting: half the time."""
    variants = records.get_column(VARIANTS).explode().drop_nulls().unique()
    position = pl.col(UNIT_ID)
    return records.with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).alias(UNIT_ID)).with_columns(
        *(
            pl.when(pl.col(column).is_not_null()).then(position.first().over(column)).alias(column)
            for column in COMPONENTS
        ),
        pl.col(VARIANTS).list.eval(
            pl.element().replace_strict(variants, pl.int_range(variants.len(), dtype=pl.UInt32, eager=True))
        ),
    )


def _components(ids: pl.Series, links: pl.DataFrame) -> pl.Series:
    """For each of ``ids`` (distinct), the smallest id connected to it through ``links`` (pairs of ids)."""
    if ids.is_empty():
        return ids
    order = ids.sort()
    at = {column: links.get_column(column).replace_strict(order, np.arange(order.len())) for column in links.columns}
    left, right = (positions.to_numpy() for positions in at.values())
    graph = coo_array((np.ones(left.size, dtype=np.int8), (left, right)), shape=(order.len(), order.len()))
    _, labels = connected_components(graph, directed=False)
    # Positions follow the sorted ids, so a component's first position holds its smallest id.
    first = np.full(labels.max() + 1, order.len())
    np.minimum.at(first, labels, np.arange(order.len()))
    return ids.replace_strict(order, order.gather(first[labels]))
