"""Record linkage in the warehouse: the linkage units of the charities that link records, and their clusters.

A unit is one reference at a linking charity, named by its person_key, with the keyed components of
its identity (``privacy.minimise.LINKAGE_UNIT_SCHEMA``). A load stores its submission's units and
relinks in the transaction that swaps its contacts in (``collab.warehouse.load_submission``), under
the warehouse's one writer: contacts, units and clusters change together or not at all, and no
release ever reads contacts whose units are not clustered. The view ``contact_units`` gives each
contact its privacy unit from ``linkage_clusters``.

Relinking is incremental, and gives the clusters a full relink would (``privacy.clustering.relink_clusters``
on the fixed weights). A unit without a row in ``linkage_clusters`` awaits linking: a new unit, a unit
whose components changed, and every other member of a cluster that lost or changed a unit (that cluster
may split). The others keep their clusters, which only grow when a unit awaiting links to them.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from collab.registry import Registry
from collab.workspace import PrivacySettings
from privacy.clustering import BLOCKING_KEYS, UNIT_ID, relink_clusters
from privacy.linkage import COMPONENTS, VARIANTS
from privacy.minimise import LINKAGE_UNIT_SCHEMA


@dataclass(frozen=True)
class LinkagePolicy:
    """Who links records now (the registry) and the link threshold (settings)."""

    linking: tuple[str, ...]
    threshold: float


@dataclass(frozen=True)
class RelinkResult:
    units: int
    clusters: int
    relinked: bool


def store_units(con: duckdb.DuckDBPyConnection, units: pl.DataFrame) -> int:
    """Insert each unit, replacing its earlier components (a reference's latest submission describes it).

    A unit that is new or whose components changed awaits the next ``relink``, and so does the rest of
    the cluster it was in."""
    if list(units.schema) != list(LINKAGE_UNIT_SCHEMA):
        raise ValueError(f"linkage units do not have the warehouse schema: {list(units.schema)}")
    if units.is_empty():
        return 0
    con.register("incoming_units", units.to_arrow())
    same = " AND ".join(f"i.{c} IS NOT DISTINCT FROM u.{c}" for c in (*COMPONENTS, VARIANTS))
    _unlink(con, f"SELECT unit_key FROM incoming_units i JOIN linkage_units u USING (unit_key) WHERE NOT ({same})")
    # Not INSERT OR REPLACE: under the load's memory limit it runs out of memory on a large submission's units.
    con.execute("DELETE FROM linkage_units WHERE unit_key IN (SELECT unit_key FROM incoming_units)")
    con.execute("INSERT INTO linkage_units BY NAME SELECT * FROM incoming_units")
    con.unregister("incoming_units")
    return units.height


def relink(con: duckdb.DuckDBPyConnection, policy: LinkagePolicy) -> RelinkResult:
    """Bring the clusters up to date with the units, inside the caller's transaction.

    Units that no contact carries any more (their rows were replaced) and units of a charity that no
    longer links records are dropped first, and the rest of their clusters awaits linking: an opted-out
    charity's keyed identifiers leave the warehouse, and its contacts become units of their own. Then
    the units awaiting are linked to each other and to the units that share a blocking key with them,
    and the clusters they join are merged (every unit, if the threshold changed). If nothing was
    dropped and nothing awaits, nothing is run. The same units always give the same clusters.
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
    con.register("dropped_units", pl.DataFrame({"unit_key": dropped}, schema={"unit_key": pl.String}).to_arrow())
    _unlink(con, "SELECT unit_key FROM dropped_units")
    con.unregister("dropped_units")
    if con.execute("SELECT threshold FROM linkage_state").fetchall() != [(policy.threshold,)]:
        # Clusters made at another threshold (or none made yet): every unit is linked afresh.
        con.execute("DELETE FROM linkage_clusters")
        con.execute("DELETE FROM linkage_state")
        con.execute("INSERT INTO linkage_state VALUES ($threshold)", {"threshold": policy.threshold})
    components = ", ".join(f"u.{c}" for c in (*COMPONENTS, VARIANTS))
    awaiting = con.sql(
        f"SELECT u.unit_key AS {UNIT_ID}, {components} FROM linkage_units u ANTI JOIN linkage_clusters USING (unit_key)"
    ).pl()
    if awaiting.is_empty():
        units, clusters = con.execute("SELECT count(*), count(DISTINCT cluster_key) FROM linkage_clusters").fetchall()[
            0
        ]
        return RelinkResult(units=units, clusters=clusters, relinked=dropped.size > 0)
    con.register("awaiting_units", awaiting.to_arrow())
    # Only a unit sharing a blocking key with one awaiting can be linked to it (the same keys as Splink's).
    sharing = " UNION ".join(
        "SELECT unit_key FROM linkage_units u SEMI JOIN awaiting_units a ON "
        + " AND ".join(f"u.{column} = a.{column}" for column in key)
        for key in BLOCKING_KEYS
    )
    neighbours = con.sql(
        f"""
        SELECT u.unit_key AS {UNIT_ID}, {components}, c.cluster_key AS cluster_id
        FROM linkage_units u JOIN linkage_clusters c USING (unit_key) SEMI JOIN ({sharing}) s USING (unit_key)
        """
    ).pl()
    con.unregister("awaiting_units")
    # Public weights, never trained on the records: trained weights would let one person's records change how
    # everyone else's are compared, and so which clusters (privacy units) other people form.
    linked, merged = relink_clusters(
        pl.concat([awaiting, neighbours.drop("cluster_id")]),
        awaiting.get_column(UNIT_ID),
        neighbours.select(UNIT_ID, "cluster_id"),
        threshold=policy.threshold,
    )
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
    units, clusters = con.execute("SELECT count(*), count(DISTINCT cluster_key) FROM linkage_clusters").fetchall()[0]
    return RelinkResult(units=units, clusters=clusters, relinked=True)


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
