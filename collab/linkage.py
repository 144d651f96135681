"""Record linkage in the warehouse: the linkage units of the charities that link records, and their clusters.

A unit is one reference at a linking charity, named by its person_key, with the keyed components of
its identity (``privacy.minimise.LINKAGE_UNIT_SCHEMA``). A load stores its submission's units and
relinks in the transaction that swaps its contacts in (``collab.warehouse.load_submission``), under
the warehouse's one writer: contacts, units and clusters change together or not at all, and no
release ever reads contacts whose units are not clustered. The view ``contact_units`` gives each
contact its privacy unit from ``linkage_clusters``.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from collab.registry import Registry
from collab.workspace import PrivacySettings
from privacy.clustering import UNIT_ID, link_clusters
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
    """Insert each unit, replacing its earlier components (a reference's latest submission describes it)."""
    if list(units.schema) != list(LINKAGE_UNIT_SCHEMA):
        raise ValueError(f"linkage units do not have the warehouse schema: {list(units.schema)}")
    if units.is_empty():
        return 0
    con.register("incoming_units", units.to_arrow())
    con.execute("INSERT OR REPLACE INTO linkage_units BY NAME SELECT * FROM incoming_units")
    con.unregister("incoming_units")
    return units.height


def relink(con: duckdb.DuckDBPyConnection, policy: LinkagePolicy, *, changed: bool) -> RelinkResult:
    """Bring the clusters up to date with the units, inside the caller's transaction.

    Units that no contact carries any more (their rows were replaced) and units of a charity that no
    longer links records are dropped first: an opted-out charity's keyed identifiers leave the
    warehouse, and its contacts become units of their own. If units were stored (``changed``) or
    dropped, Splink clusters all units again and ``linkage_clusters`` is replaced; otherwise nothing
    is run. The same units always give the same clusters (``privacy.clustering.link_clusters``).
    """
    dropped = con.execute(
        """
        DELETE FROM linkage_units
        WHERE charity_id NOT IN (SELECT unnest($linking::VARCHAR[]))
           OR unit_key NOT IN (SELECT DISTINCT person_key FROM contacts)
        """,
        {"linking": list(policy.linking)},
    ).fetchall()[0][0]
    if not (changed or dropped):
        units, clusters = con.execute("SELECT count(*), count(DISTINCT cluster_key) FROM linkage_clusters").fetchall()[
            0
        ]
        return RelinkResult(units=units, clusters=clusters, relinked=False)
    records = con.sql(
        f"SELECT unit_key AS {UNIT_ID}, {', '.join(COMPONENTS)}, {VARIANTS} FROM linkage_units ORDER BY unit_key"
    ).pl()
    # Public weights, never trained on the records: trained weights would let one person's records change how
    # everyone else's are compared, and so which clusters (privacy units) other people form.
    clusters = link_clusters(records, threshold=policy.threshold, train=False)
    con.execute("DELETE FROM linkage_clusters")
    con.register("found_clusters", clusters.to_arrow())
    con.execute(f"INSERT INTO linkage_clusters SELECT {UNIT_ID}, cluster_id FROM found_clusters")
    con.unregister("found_clusters")
    return RelinkResult(units=clusters.height, clusters=clusters.get_column("cluster_id").n_unique(), relinked=True)


def linkage_policy(registry: Registry, settings: PrivacySettings) -> LinkagePolicy:
    """The policy of a load made now: every registered charity that links records, active or not (an
    inactive charity's rows stay in the warehouse), and the link threshold from settings."""
    return LinkagePolicy(
        linking=tuple(c.id for c in registry.all(include_inactive=True) if c.linkage),
        threshold=settings.link_threshold,
    )
