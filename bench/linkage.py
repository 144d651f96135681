"""Record linkage against the demo truth: Splink on keyed components beside the exact keyed token.

`python -m bench.linkage` (about a minute). The demo generator (``collab_demo.generator.generate_contacts``, all eight
fictional charities) injects the slips real data has, per charity's record of a person: mistyped
surnames, a postcode in another district, a second reference; ``person`` keeps who is who. A record is
one reference at one linking charity. Each method's clusters are scored by their record pairs against
the true pairs (two references of one person): precision = true pairs among the pairs it joins,
recall = joined pairs among the true pairs; plus how many people end split, and how many records
were merged with someone else's. The anchor is the old method: one HMAC of surname + birth date +
district, records joined when their tokens are equal. Splink runs twice: with weights trained on the
records (benchmark only) and with the fixed public weights (the pipeline always uses these).

For each person it also prints the privacy units across the linking charities that removing them can move a
release by (``units_needed``): 1 where linkage is right, 2 for a person split once or whose removal leaves one
piece of someone else's records apart (``--twins SHARE`` gives that share of people a twin, whom nothing keyed
tells apart from them), and so what ``privacy.linked_units_per_person`` covers.
"""

from __future__ import annotations

import argparse
import os
import time

import polars as pl

from collab_demo.generator import PROFILES, generate_contacts, last_complete_quarters
from privacy.clustering import UNIT_ID, link_clusters
from privacy.linkage import DEFAULT_THRESHOLD, keyed_components
from privacy.pseudonymise import linkage_tokens
from standards.extract import linkage_basis


def linking_records(contacts: int, seed: int) -> pl.DataFrame:
    """One row per reference at a linking charity: ``unit_id``, the true ``person`` and its basis."""
    linking = [p.id for p in PROFILES if p.linkage]
    truth = generate_contacts(contacts, list(PROFILES), last_complete_quarters(4), seed)
    records = (
        truth.filter(pl.col("charity_id").is_in(linking))
        .unique(["charity_id", "person_ref"], keep="first", maintain_order=True)
        .select(
            (pl.col("charity_id") + "/" + pl.col("person_ref")).alias(UNIT_ID),
            "person",
            "surname",
            "date_of_birth",
            "postcode",
        )
    )
    bases = [linkage_basis(*row) for row in records.select("surname", "date_of_birth", "postcode").iter_rows()]
    return records.select(UNIT_ID, "person").with_columns(pl.Series("basis", bases, pl.String))


def with_twins(records: pl.DataFrame, share: float, seed: int) -> pl.DataFrame:
    """``records`` and, for ``share`` of their people, a twin: another person (a new ``person``) with a reference of
    their own (at the same charity, as a household's twins often are) whose surname, birth date and postcode are
    those of one of the person's records. Nothing keyed tells the two apart."""
    people = records.get_column("person").unique().sort()
    twinned = people.sample(fraction=share, seed=seed)
    first = people.max() + 1
    twins = (
        records.filter(pl.col("person").is_in(twinned.implode()))
        .unique("person", keep="first", maintain_order=True)
        .with_columns(
            (pl.col(UNIT_ID) + "/twin").alias(UNIT_ID),
            (first + pl.int_range(pl.len(), dtype=records.schema["person"])).alias("person"),
        )
    )
    return pl.concat([records, twins])


def units_needed(clustered: pl.DataFrame, keyed: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """``person`` and ``units``: for each person, the privacy units across the linking charities that their removal
    can move the release by: the *c* clusters their references are in, plus the pieces those clusters fall into
    without them (*d*, see docs/privacy.md). On the fixed weights a link depends on its two records alone, so the pieces are the clusters
    of the rest of the members, linked again. 1 where linkage is right; what ``privacy.linked_units_per_person``
    must be for the stated worst case to hold for them."""
    clusters = clustered.group_by("person").agg(pl.col("cluster_id").n_unique().alias("units"))
    shared = clustered.filter(pl.col("person").n_unique().over("cluster_id") > 1)
    pieces: dict[int, int] = {}
    for _, members in shared.group_by("cluster_id"):
        for person in members.get_column("person").unique().to_list():
            rest = members.filter(pl.col("person") != person).get_column(UNIT_ID)
            relinked = link_clusters(
                keyed.filter(pl.col(UNIT_ID).is_in(rest.implode())), threshold=threshold, train=False
            )
            pieces[person] = pieces.get(person, 0) + relinked.get_column("cluster_id").n_unique()
    extra = pl.DataFrame(
        {"person": list(pieces), "pieces": list(pieces.values())},
        schema={"person": clusters.schema["person"], "pieces": pl.Int64},
    )
    joined = clusters.join(extra, on="person", how="left")
    return joined.select("person", pl.col("units") + pl.col("pieces").fill_null(0))


def _pairs(sizes: pl.Series) -> int:
    return int((sizes * (sizes - 1) // 2).sum())


def score(clusters: pl.DataFrame) -> dict[str, float]:
    """Pairwise precision and recall of ``cluster_id`` against ``person``, and the people left split."""
    joined = _pairs(clusters.group_by("cluster_id").len().get_column("len"))
    true = _pairs(clusters.group_by("person").len().get_column("len"))
    correct = _pairs(clusters.group_by("cluster_id", "person").len().get_column("len"))
    split = clusters.group_by("person").agg(pl.col("cluster_id").n_unique().alias("n")).filter(pl.col("n") > 1).height
    merged = clusters.filter(pl.col("person").n_unique().over("cluster_id") > 1).height
    return {
        "precision": correct / joined if joined else 1.0,
        "recall": correct / true if true else 1.0,
        "true_pairs": true,
        "people_split": split,
        "records_merged_wrongly": merged,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=40_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2026, 7, 11])
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--twins", type=float, default=0.0, help="share of people given a twin (see with_twins)")
    args = parser.parse_args()
    key = os.urandom(32)
    print(f"{'seed':>5} {'method':<44}{'precision':>10}{'recall':>9}{'split':>7}{'merged':>8}{'seconds':>9}")
    pooled: dict[str, list[pl.DataFrame]] = {
        "exact keyed token (anchor)": [],
        "Splink on keyed components": [],
        "Splink, fixed weights (no training)": [],
    }
    needed: list[pl.DataFrame] = []
    for seed in args.seeds:
        records = with_twins(
            linking_records(args.contacts, seed).filter(pl.col("basis").is_not_null()), args.twins, seed
        )
        started = time.perf_counter()
        exact = records.with_columns(linkage_tokens(key, records.get_column("basis")).alias("cluster_id"))
        exact_seconds = time.perf_counter() - started
        started = time.perf_counter()
        keyed = pl.concat(
            [records.select(UNIT_ID), keyed_components(key, records.get_column("basis"))], how="horizontal"
        )
        probabilistic = records.join(link_clusters(keyed, threshold=args.threshold), on=UNIT_ID, how="left")
        splink_seconds = time.perf_counter() - started
        started = time.perf_counter()
        fixed = records.join(link_clusters(keyed, threshold=args.threshold, train=False), on=UNIT_ID, how="left")
        fixed_seconds = time.perf_counter() - started
        for (name, runs), frame, seconds in zip(
            pooled.items(),
            (exact, probabilistic, fixed),
            (exact_seconds, splink_seconds, fixed_seconds),
            strict=True,
        ):
            # Clusters of one seed never meet another's: prefix them so the pooled score keeps them apart.
            runs.append(
                frame.with_columns(
                    pl.format("{}:{}", pl.lit(seed), "cluster_id").alias("cluster_id"), pl.col("person") + seed * 10**7
                )
            )
            s = score(frame)
            print(
                f"{seed:>5} {name:<44}{s['precision']:>10.4f}{s['recall']:>9.4f}{s['people_split']:>7}{s['records_merged_wrongly']:>8}{seconds:>9.1f}"
            )
        print(f"{seed:>5} {records.height} references at linking charities, {s['true_pairs']} true pairs")
        needed.append(units_needed(fixed, keyed, args.threshold))
    units = pl.concat(needed).get_column("units")
    counts = [(units == 1).sum(), (units == 2).sum(), (units > 2).sum()]
    print(
        f"people by the units across linking charities their removal can move a release by (fixed weights, what the "
        f"pipeline runs): 1: {counts[0]:,}, 2: {counts[1]:,}, more: {counts[2]:,} (most {units.max()}); "
        f"privacy.linked_units_per_person 1 covers {counts[0] / units.len():.4%} of people, 2 covers "
        f"{(counts[0] + counts[1]) / units.len():.4%}"
    )
    for name, runs in pooled.items():
        s = score(pl.concat(runs))
        print(
            f"{'all':>5} {name:<44}{s['precision']:>10.4f}{s['recall']:>9.4f}{s['people_split']:>7}{s['records_merged_wrongly']:>8}"
        )
    print(f"threshold {args.threshold}, {args.contacts} contacts per seed; split = people in more than one cluster,")
    print("merged = records in a cluster with someone else's; targets: precision and recall >= 0.98 (issue 11)")


if __name__ == "__main__":
    main()
