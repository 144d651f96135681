"""Record linkage in the warehouse: the linkage units of the charities that link records, and their clusters.

A unit is one reference at a linking charity, named by its person_key, with the keyed components of
its identity (``privacy.minimise.LINKAGE_UNIT_SCHEMA``). A load stores its submission's units and removes
those of the references it carries without an identity (``store_units``), in the transaction that swaps its
contacts in (``collab.warehouse.load_submission``): contacts and units change together or not at all. A release
first relinks (``relink``, through ``collab.warehouse.link_units``), under the warehouse's one writer, so no
release ever reads contacts whose units are not clustered. The view ``contact_units`` gives each contact its
privacy unit from ``linkage_clusters``.

Relinking is incremental, and gives the clusters a full relink would (``privacy.clustering.relink_clusters``
on the fixed weights). A unit without a row in ``linkage_clusters`` awaits linking: a new unit, a unit
whose components changed, and every other member of a cluster that lost or changed a unit (that cluster
may split). The others keep their clusters, which only grow when a unit awaiting links to them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from collab.registry import Registry
from collab.schema import with_codes_of_hex
from collab.workspace import PrivacySettings
from privacy.clustering import (
    BLOCKING_KEYS,
    CHANGED,
    UNIT_ID,
    SplinkMemory,
    changed_links,
    fixed_model,
    relink_clusters,
)
from privacy.linkage import COMPONENTS, VARIANTS
from privacy.minimise import LINKAGE_UNIT_SCHEMA

# The most records Splink scores at once: a relink's memory is bounded by it, not by the warehouse's units.
# Since Splink is given integer codes (``privacy.clustering.as_codes``), a record costs it little, and fewer
# parts mean fewer scans of the warehouse's units. ``bench.relink``'s load (350,000 units into 2,000,000; busy
# machine, 2026-12-01): 135.4 CPU s and 1.68 GB peak at 50,000; 119.0 and 1.56 GB at 100,000; 113.7 and 1.50 GB
# at 200,000. Its 282,410 units into an empty warehouse: 835 MB at 50,000, 841 MB at 100,000. With 64-bit codes, the
# 32 loads of a 10M-contact run replayed (2026-12-01, interleaved twice): 142.8 and 141.8 s, 1,182 and 1,168 MB peak
# at 200,000, against 168.6 and 154.4 s, 1,244 and 1,259 MB at 100,000. With 64-bit person keys too, every unit of
# that run's warehouse (1,753,144) linked at once under the load's memory limit (quiet machine, 2026-12-02, each size
# in its own process, interleaved): 25.0 and 25.2 s, 970 and 980 MB peak at 200,000; 21.6 and 22.5 s, 1,080 MB at
# 400,000; 24.6 and 22.1 s, 1,210 MB at 600,000; 22.4 s, 1,370 MB at 800,000.
RELINK_BATCH_RECORDS = 400_000
# The most units awaiting linking that one step of a relink clusters; more are clustered group by group. A group's
# units are held in Python several times over (their keys, their links, the clusters they join), which a relink of
# every unit (a new threshold, or all of a run's loads at once) would otherwise hold for the whole warehouse: its
# 1,753,144 units (10M contacts) relinked at once peaked at 2,064 MB; in groups of 900,000 (two) 1,678 MB and 48.9 s,
# of 400,000 (five) 1,439 MB and 61.3 s, of 250,000 (eight) 1,388 MB and 77.2 s (quiet machine, 2026-12-01). At
# 600,000 (three), the 32 loads of that run replayed and their units linked at the end: 59.3 s, 1,571 MB at the peak.
RELINK_GROUP_UNITS = 600_000
# Parts of a group scored at once, each by its own Splink database in a thread: half of a part's time is Python (Splink
# writing its SQL, our spanning forest), when the other part's DuckDB has the second core. Every unit of a 10M-contact
# warehouse (1,753,144) linked at once (busy machine, 2026-12-04, alternating): 15.7 and 14.6 s, 1,566 and 1,539 MB
# peak at 2, against 16.8 and 17.8 s, 1,155 and 1,148 MB at 1; its release stage 35.4 s (1,598 MB) against 41.6 s
# (1,465 MB). The clusters are the same: a part's links depend on its records alone, and are kept in the parts' order.
PARTS_SCORED_AT_ONCE = 2
# The units of a submission that are new or changed, and those it withdraws, while they are stored or removed.
_STORING, _WITHDRAWN = "storing_units", "withdrawn_units"
# The units awaiting linking during a relink, with the hash of each of their blocking keys' values.
_AWAITING = "relink_awaiting"
# During one group's turn in a relink: the units it may link to (``_hold_candidates``).
_CANDIDATES = "relink_candidates"


@dataclass(frozen=True)
class LinkagePolicy:
    """Who links records now (the registry) and the link threshold (settings)."""

    linking: tuple[str, ...]
    threshold: float


@dataclass(frozen=True)
class StoredUnits:
    """What ``store_units`` did: how many units it was given, and how many withdrawn units it removed."""

    received: int
    withdrawn: int


@dataclass(frozen=True)
class RelinkResult:
    """The clusters after a relink: ``units`` clustered into ``clusters``; ``dropped``: the units it dropped (no
    contact carries them, or their charity no longer links records); ``linked``: the units awaiting that it linked
    (new or changed, in a cluster that lost or changed a unit, or every unit at a new threshold or model)."""

    units: int
    clusters: int
    dropped: int
    linked: int


def store_units(
    con: duckdb.DuckDBPyConnection, units: pl.DataFrame | Path, *, carried: str | None = None
) -> StoredUnits:
    """Store each unit that is new or whose components changed, replacing its earlier components (a reference's
    latest submission describes it); a unit described again as it was is left as it is, with the submission that
    first described it so.

    ``units``: the rows, or a Parquet file of them, which DuckDB reads itself (a large submission's units, read
    in one statement, are written to the database file as they come rather than held in memory until commit).
    A unit that is new or whose components changed awaits the next ``relink``, and so does the rest of
    the cluster it was in.

    ``carried``, if given, is a query of the person_keys of the submission's contacts (column ``person_key``):
    the unit of a reference the submission carries but does not describe is removed, and the rest of its
    cluster awaits the next ``relink``. Its latest submission gives it no identity (the charity withdrew or
    no longer records it), so no earlier one may go on linking it. Latest means last loaded, as for
    components: a load replaces the charity's rows of its own quarters only, so the reference may keep rows
    of an earlier quarter whose submission described it; but it has one unit, holding the last load's
    description (the earlier one is already overwritten), and keeping it would leave a withdrawn identity
    linking until every quarter that gave it was sent again. A reference the submission does not carry keeps
    its unit: its rows of other quarters still stand (``relink`` drops the unit once no contact carries it).
    A cluster of withdrawn units only leaves none awaiting: the load's result says how many it removed
    (``StoredUnits.withdrawn``).
    """
    incoming = (
        con.read_parquet(str(units))
        if isinstance(units, Path)
        else con.from_arrow(units.to_arrow(compat_level=pl.CompatLevel.newest()))
    )
    if incoming.columns != list(LINKAGE_UNIT_SCHEMA):
        raise ValueError(f"linkage units do not have the warehouse schema: {incoming.columns}")
    incoming = with_codes_of_hex(incoming, ("unit_key", *COMPONENTS, VARIANTS))
    con.register("incoming_units", incoming)
    received, distinct = con.execute("SELECT count(*), count(DISTINCT unit_key) FROM incoming_units").fetchall()[0]
    # The table has no primary key (DuckDB would hold its index in memory): each unit is stored once by this.
    if distinct != received:
        con.unregister("incoming_units")
        raise ValueError("linkage units must each have their own unit_key")
    withdrawn = 0
    if carried is not None:
        # NOT IN is safe: an incoming unit_key is never null (a null would have failed the count above).
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {_WITHDRAWN} AS SELECT unit_key FROM linkage_units
            WHERE unit_key IN ({carried}) AND unit_key NOT IN (SELECT unit_key FROM incoming_units)
            """
        )
        with _temporary(con, _WITHDRAWN):
            _unlink(con, f"SELECT unit_key FROM {_WITHDRAWN}")
            withdrawn = con.execute(
                f"DELETE FROM linkage_units WHERE unit_key IN (SELECT unit_key FROM {_WITHDRAWN})"
            ).fetchall()[0][0]
    # Only the units that are new or changed are written: most of a charity's references are described again,
    # unchanged, by each quarter's file, and rewriting them would be most of what the load's commit writes.
    same = " AND ".join(f"i.{c} IS NOT DISTINCT FROM u.{c}" for c in (*COMPONENTS, VARIANTS))
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {_STORING} AS SELECT i.* FROM incoming_units i
        LEFT JOIN linkage_units u ON u.unit_key = i.unit_key WHERE u.unit_key IS NULL OR NOT ({same})
        """
    )
    con.unregister("incoming_units")
    with _temporary(con, _STORING):
        _unlink(con, f"SELECT unit_key FROM {_STORING} JOIN linkage_units USING (unit_key)")
        # Not INSERT OR REPLACE: under the load's memory limit it runs out of memory on a large submission's units.
        con.execute(f"DELETE FROM linkage_units WHERE unit_key IN (SELECT unit_key FROM {_STORING})")
        con.execute(f"INSERT INTO linkage_units BY NAME SELECT * FROM {_STORING}")
    return StoredUnits(received=received, withdrawn=withdrawn)


@contextmanager
def _temporary(con: duckdb.DuckDBPyConnection, table: str) -> Iterator[None]:
    """Drop the temporary ``table`` when the block ends. After an error it is dropped only if it can be: an
    error aborts the load's transaction, whose rollback drops the table, and any statement before that rollback
    fails with DuckDB's "transaction is aborted", which would be raised in place of the error that says what
    went wrong."""
    try:
        yield
    except BaseException:
        with suppress(duckdb.Error):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        raise
    con.execute(f"DROP TABLE IF EXISTS {table}")


def relink(
    con: duckdb.DuckDBPyConnection,
    policy: LinkagePolicy,
    *,
    batch_records: int | None = None,
    memory: SplinkMemory | None = None,
    group_units: int | None = None,
) -> RelinkResult:
    """Bring the clusters up to date with the units, inside the caller's transaction.

    Units that no contact carries any more (their rows were replaced) and units of a charity that no
    longer links records are dropped first, and the rest of their clusters awaits linking: an opted-out
    charity's keyed identifiers leave the warehouse, and its contacts become units of their own. Then
    the units awaiting are linked to each other and to the units that share a blocking key with them,
    and the clusters they join are merged (every unit, if the threshold or the fixed model changed). If nothing was
    dropped and nothing awaits, nothing is run. The same units always give the same clusters.

    Splink scores at most about ``batch_records`` records at once (``RELINK_BATCH_RECORDS`` by default), with
    ``memory`` its database's limit and spill directory, and the units awaiting are clustered at most about
    ``group_units`` at a time (``RELINK_GROUP_UNITS``): the step's memory does not grow with the warehouse.
    """
    dropped = con.execute(
        """
        DELETE FROM linkage_units
        WHERE charity_id NOT IN (SELECT unnest($linking::VARCHAR[]))
            OR unit_key IN (SELECT unit_key FROM linkage_units u ANTI JOIN contacts c ON c.person_key = u.unit_key)
        RETURNING unit_key
        """,
        {"linking": list(policy.linking)},
    ).fetchnumpy()["unit_key"]
    con.register("dropped_units", pl.DataFrame({"unit_key": dropped}, schema={"unit_key": pl.Int64}).to_arrow())
    _unlink(con, "SELECT unit_key FROM dropped_units")
    con.unregister("dropped_units")
    made_with = (policy.threshold, fixed_model())
    if con.execute("SELECT threshold, model FROM linkage_state").fetchall() != [made_with]:
        # Clusters made at another threshold or by another model (or none made yet): every unit is linked afresh.
        con.execute("DELETE FROM linkage_clusters")
        con.execute("DELETE FROM linkage_state")
        con.execute("INSERT INTO linkage_state (threshold, model) VALUES (?, ?)", made_with)
    awaiting = con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {_AWAITING} AS
        SELECT unit_key, {", ".join(f"{_key_hash(key)} AS {_key_column(key)}" for key in BLOCKING_KEYS)}
        FROM linkage_units ANTI JOIN linkage_clusters USING (unit_key)
        """
    ).fetchall()[0][0]
    with _temporary(con, _AWAITING):
        groups = -(-awaiting // (group_units or RELINK_GROUP_UNITS))
        for group in range(groups):
            _link_group(con, policy, _Group(group, groups), batch_records or RELINK_BATCH_RECORDS, memory)
    units, clusters = con.execute("SELECT count(*), count(DISTINCT cluster_key) FROM linkage_clusters").fetchall()[0]
    return RelinkResult(units=units, clusters=clusters, dropped=dropped.size, linked=awaiting)


@dataclass(frozen=True)
class _Group:
    """The units awaiting linking whose unit_key hashes to ``number`` of ``of`` groups."""

    number: int
    of: int

    def members(self) -> str:
        return f"hash(unit_key) % {self.of} = {self.number}"

    def later(self) -> str:
        """The units awaiting in the groups after this one: not yet clustered when this one is."""
        return f"hash(unit_key) % {self.of} > {self.number}"


def _link_group(
    con: duckdb.DuckDBPyConnection,
    policy: LinkagePolicy,
    group: _Group,
    batch_records: int,
    memory: SplinkMemory | None,
) -> None:
    """Cluster one ``group`` of the units awaiting linking with the units already clustered, earlier groups' among
    them. A pair of awaiting units in two groups is scored when the later group's turn comes, the other unit then
    clustered: every pair is scored once, as if all were linked at once, so the clusters are the same (the
    incremental relink's argument, ``privacy.clustering.relink_clusters``), and memory holds one group's units."""
    changed_units = con.sql(f"SELECT unit_key AS {UNIT_ID} FROM {_AWAITING} WHERE {group.members()}").pl()[UNIT_ID]
    _hold_candidates(con, group)
    with _temporary(con, _CANDIDATES), ThreadPoolExecutor(max_workers=PARTS_SCORED_AT_ONCE) as pool:
        scoring: deque[Future[pl.DataFrame]] = deque()
        found: list[pl.DataFrame] = []
        for number, (keys, records) in enumerate(_parts(con, batch_records)):
            if len(scoring) == PARTS_SCORED_AT_ONCE:
                found.append(scoring.popleft().result())
            part = con.sql(records).pl()
            # Part n is scored beside parts n-1 .. n-k+1 only: a spill directory per slot is never shared.
            slot = (
                None
                if memory is None
                else SplinkMemory(memory.limit, f"{memory.spill_directory}.{number % PARTS_SCORED_AT_ONCE}")
            )
            scoring.append(pool.submit(changed_links, part, threshold=policy.threshold, keys=keys, memory=slot))
        found.extend(future.result() for future in scoring)
        links = pl.concat(found)
    con.register("linked_pairs", links.to_arrow())
    earlier = con.sql(
        f"""
        SELECT unit_key AS {UNIT_ID}, cluster_key AS cluster_id FROM linkage_clusters
        WHERE unit_key IN (SELECT {UNIT_ID}_l FROM linked_pairs UNION SELECT {UNIT_ID}_r FROM linked_pairs)
        """
    ).pl()
    con.unregister("linked_pairs")
    # Public weights, never trained on the records: trained weights would let one person's records change how
    # everyone else's are compared, and so which clusters (privacy units) other people form.
    linked, merged = relink_clusters(changed_units, links, earlier)
    con.register("linked_units", linked.to_arrow())
    con.register("merged_clusters", merged.to_arrow())
    con.execute(f"INSERT INTO linkage_clusters SELECT {UNIT_ID}, cluster_id FROM linked_units")
    con.execute(
        """
        UPDATE linkage_clusters SET cluster_key = m.merged_into
        FROM merged_clusters m WHERE linkage_clusters.cluster_key = m.cluster_id
        """
    )
    con.unregister("linked_units")
    con.unregister("merged_clusters")


def _key_column(key: tuple[str, ...]) -> str:
    return "key_" + "_".join(key)


def _key_hash(key: tuple[str, ...], table: str = "") -> str:
    """A blocking key's value as one hash, null where a part is null (Splink never pairs on a null). Two
    values may share a hash: that only adds a record to a part, where Splink's exact blocking ignores it."""
    parts = [f"{table}{column}" for column in key]
    return f"CASE WHEN {' AND '.join(f'{p} IS NOT NULL' for p in parts)} THEN hash({', '.join(parts)}) END"


def _shares(key: tuple[str, ...]) -> str:
    return "shares_" + _key_column(key)


def _hold_candidates(con: duckdb.DuckDBPyConnection, group: _Group) -> None:
    """Hold, as ``_CANDIDATES``, the units that a ``group`` of the units awaiting linking may link to: every unit that
    shares a blocking key with one of the group (none else can link to them) but those of later groups, with the
    hash of each key's value, whether it is one of those shared, and whether the unit is one of the group. One scan
    of the warehouse's units for the group, where each part of its records used to scan them again: 48 scans for
    the 1,753,144 units of a 10M-contact warehouse linked at once, which now takes 59.8 and 64.0 s (84.6 and 90.0
    CPU s), against 77.1 and 74.8 s (111.6 and 109.5 CPU s) before, with the same clusters and peak memory (quiet
    machine, 2026-12-01). Marking the group's units here too, once, where each part's records were matched against
    a set of the group's keys built again for each: 50.5 s (75.2 CPU s)."""
    components = ", ".join(f"u.{c}" for c in (*COMPONENTS, VARIANTS))
    keyed = ", ".join(
        f"{_key_hash(key, 'u.')} AS {_key_column(key)}, {_key_hash(key, 'u.')} IN "
        f"(SELECT {_key_column(key)} FROM {_AWAITING} WHERE {_key_column(key)} IS NOT NULL AND {group.members()}) "
        f"AS {_shares(key)}"
        for key in BLOCKING_KEYS
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {_CANDIDATES} AS
        SELECT * FROM (
            SELECT u.unit_key AS {UNIT_ID}, {components}, {keyed},
                u.unit_key IN (SELECT unit_key FROM {_AWAITING} WHERE {group.members()}) AS {CHANGED}
            FROM linkage_units u
            WHERE u.unit_key NOT IN (SELECT unit_key FROM {_AWAITING} WHERE {group.later()})
        ) WHERE {" OR ".join(_shares(key) for key in BLOCKING_KEYS)}
        """
    )


def _parts(con: duckdb.DuckDBPyConnection, batch_records: int) -> Iterator[tuple[tuple[tuple[str, ...], ...], str]]:
    """The units held by ``_hold_candidates``, each marked ``CHANGED`` if it is one of the group, as queries of at most
    about ``batch_records`` records each, with the blocking keys to pair them on.

    If every key's sharers fit in one batch, they are one part on every key; else each key's sharers are
    split by the hash of their value, so that the records of one value are in one part (a part is only
    bigger than ``batch_records`` if one value alone has more): every pair sharing a key meets in a part.
    """
    components = ", ".join((UNIT_ID, *COMPONENTS, VARIANTS, CHANGED))
    counts = dict(
        zip(
            BLOCKING_KEYS,
            con.execute(
                f"SELECT {', '.join(f'count(*) FILTER (WHERE {_shares(key)})' for key in BLOCKING_KEYS)} FROM {_CANDIDATES}"
            ).fetchall()[0],
            strict=True,
        )
    )
    if sum(counts.values()) <= batch_records:
        yield BLOCKING_KEYS, f"SELECT {components} FROM {_CANDIDATES}"
        return
    for key, count in counts.items():
        parts = -(-count // batch_records)
        for part in range(parts):
            yield (
                (key,),
                f"SELECT {components} FROM {_CANDIDATES} WHERE {_shares(key)} AND {_key_column(key)} % {parts} = {part}",
            )


def _unlink(con: duckdb.DuckDBPyConnection, units: str) -> None:
    """Take every member of the clusters of ``units`` (a query of unit keys) out of its cluster."""
    con.execute(
        f"""
        DELETE FROM linkage_clusters WHERE cluster_key IN (
            SELECT cluster_key FROM linkage_clusters WHERE unit_key IN ({units}))
        """
    )


def linkage_policy(registry: Registry, settings: PrivacySettings) -> LinkagePolicy:
    """The policy of a load made now: every registered charity that links records, active or not (an
    inactive charity's rows stay in the warehouse), and the link threshold from settings."""
    return LinkagePolicy(
        linking=tuple(c.id for c in registry.all(include_inactive=True) if c.linkage),
        threshold=settings.link_threshold,
    )
