"""The warehouse's schema: its one owner, as numbered migrations applied in order.

``migrate`` brings any warehouse up to ``LATEST_VERSION``, each migration in its own transaction with
the ``schema_version`` row that records it, so a process stopped mid-way leaves the warehouse at the
last whole version. A migration is history: once released it is never edited; a change is a new one.
The contact columns come from one declaration (``privacy.minimise.WAREHOUSE_SCHEMA``, itself derived
from the standard); a test checks that the migrations build exactly those columns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


def keyed_code_of_hex(value: str, *, listed: bool = False) -> str:
    """SQL of the keyed code (``privacy.pseudonymise.keyed_int64s``) of a linkage component or a person key given as
    its 64-hex HMAC, as units were coded before version 10 and person keys before version 11: the first 16 hex digits
    (8 bytes) read as a big-endian signed 64-bit integer; ``listed``: of each element of a list (the surname
    variants). Null stays null. Equal HMACs give equal codes, so clusters made of the HMACs are those the codes
    make."""
    if listed:
        return f"list_transform({value}, lambda v: {keyed_code_of_hex('v')})"
    unsigned = f"('0x' || left({value}, 16))::UBIGINT"
    return (
        f"CASE WHEN {unsigned} < 9223372036854775808 THEN {unsigned}::BIGINT"
        f" ELSE ({unsigned}::HUGEINT - 18446744073709551616)::BIGINT END"
    )


def with_codes_of_hex(rows: duckdb.DuckDBPyRelation, columns: tuple[str, ...]) -> duckdb.DuckDBPyRelation:
    """``rows`` with each of ``columns`` that holds 64-hex HMACs (text, or lists of text) as their keyed codes
    (``keyed_code_of_hex``): a file staged before version 10 or 11, waiting to be loaded across the upgrade, is
    stored as the migrations converted the rows already stored."""
    hex_coded = {
        name: str(kind) == "VARCHAR[]"
        for name, kind in zip(rows.columns, rows.types, strict=True)
        if name in columns and str(kind) in ("VARCHAR", "VARCHAR[]")
    }
    if not hex_coded:
        return rows
    return rows.project(
        ", ".join(
            f"{keyed_code_of_hex(name, listed=hex_coded[name])} AS {name}" if name in hex_coded else name
            for name in rows.columns
        )
    )


# The components version 10 converts: a migration is history, so not ``privacy.linkage.COMPONENTS``.
_LINKAGE_COMPONENTS_V10 = ("surname", "surname_sound", "birth_date", "birth_month", "district", "postcode_area")

_CONTACT_COLUMNS_V1 = """
    submission_id VARCHAR, charity_id VARCHAR, person_key VARCHAR, contact_month DATE, quarter VARCHAR,
    need VARCHAR, local_authority_code VARCHAR, region_code VARCHAR, nation_code VARCHAR, age_band VARCHAR,
    household_type VARCHAR, children_in_household BIGINT, tenure VARCHAR, employment_status VARCHAR,
    disability VARCHAR, monthly_income_gbp DOUBLE, monthly_essential_costs_gbp DOUBLE, total_debt_gbp DOUBLE,
    support_type VARCHAR, standard_version VARCHAR
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "contacts, submissions, audit log, releases and the privacy ledger",
        (
            f"CREATE TABLE IF NOT EXISTS contacts ({_CONTACT_COLUMNS_V1})",
            # A load's batches wait here, committed, until they replace the charity's rows in one transaction.
            f"CREATE TABLE IF NOT EXISTS contacts_incoming ({_CONTACT_COLUMNS_V1})",
            """
            CREATE TABLE IF NOT EXISTS submissions (
                submission_id VARCHAR PRIMARY KEY,
                charity_id VARCHAR NOT NULL,
                file_name VARCHAR NOT NULL,
                sha256 VARCHAR NOT NULL,
                received_at TIMESTAMP NOT NULL,
                loaded_at TIMESTAMP NOT NULL,
                rows_loaded BIGINT NOT NULL,
                rows_replaced BIGINT NOT NULL,
                quarters VARCHAR[] NOT NULL,
                standard_version VARCHAR NOT NULL
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS audit_log (
                recorded_at TIMESTAMP NOT NULL,
                actor VARCHAR NOT NULL,
                action VARCHAR NOT NULL,
                subject VARCHAR NOT NULL,
                detail VARCHAR
            )
            """,
            # One row per noisy measurement. ``sensitivity`` is the L2 sensitivity for the discrete Gaussian
            # and the per-cell score sensitivity (one value per person) for the quantile mechanism.
            """
            CREATE TABLE IF NOT EXISTS privacy_ledger (
                release_id   VARCHAR NOT NULL,
                period       VARCHAR NOT NULL,
                indicator_id VARCHAR NOT NULL,
                measurement  VARCHAR NOT NULL,
                kind         VARCHAR NOT NULL CHECK (kind IN ('release', 'revision')),
                mechanism    VARCHAR NOT NULL,
                rho          DOUBLE  NOT NULL CHECK (rho > 0),
                noise_scale  DOUBLE  NOT NULL,
                sensitivity  DOUBLE  NOT NULL,
                recorded_at  TIMESTAMP NOT NULL,
                PRIMARY KEY (release_id, indicator_id, measurement)
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS releases (
                release_id VARCHAR PRIMARY KEY,
                period VARCHAR NOT NULL,
                revision INTEGER NOT NULL,
                kind VARCHAR NOT NULL,
                rho DOUBLE NOT NULL,
                contributors INTEGER NOT NULL,
                linking_contributors INTEGER NOT NULL,
                units_per_person INTEGER NOT NULL,
                standard_version VARCHAR NOT NULL,
                code_version VARCHAR NOT NULL,
                created_at TIMESTAMP NOT NULL,
                UNIQUE (period, revision)
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS release_cells (
                release_id VARCHAR NOT NULL,
                indicator_id VARCHAR NOT NULL,
                cell_index INTEGER NOT NULL,
                area_level VARCHAR,
                keys VARCHAR[] NOT NULL,
                value DOUBLE NOT NULL,
                ci_low DOUBLE NOT NULL,
                ci_high DOUBLE NOT NULL,
                low_reliability BOOLEAN NOT NULL,
                PRIMARY KEY (release_id, indicator_id, cell_index)
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS release_measurements (
                release_id VARCHAR NOT NULL,
                indicator_id VARCHAR NOT NULL,
                measurement VARCHAR NOT NULL,
                position INTEGER NOT NULL,
                cell_index INTEGER NOT NULL,
                noisy_value DOUBLE NOT NULL,
                PRIMARY KEY (release_id, indicator_id, measurement, position)
            )
            """,
        ),
    ),
    Migration(
        2,
        "record linkage: which contacts were keyed by a linkage token",
        (
            # Warehouses made before record linkage: their contacts are all unlinked.
            "ALTER TABLE contacts ADD COLUMN IF NOT EXISTS linked BOOLEAN DEFAULT FALSE",
            "ALTER TABLE contacts_incoming ADD COLUMN IF NOT EXISTS linked BOOLEAN DEFAULT FALSE",
        ),
    ),
    Migration(
        3,
        "submission states: where each submission is on its way (collab.states); loaded set by the load itself",
        (
            """
            CREATE TABLE IF NOT EXISTS submission_states (
                submission_id VARCHAR PRIMARY KEY,
                charity_id VARCHAR NOT NULL,
                state VARCHAR NOT NULL CHECK (
                    state IN ('received', 'staged', 'checked', 'feedback_sent', 'loaded', 'rejected', 'failed')),
                updated_at TIMESTAMP NOT NULL,
                status VARCHAR,
                reference VARCHAR
            )
            """,
            # Submissions loaded before states were kept are loaded.
            """
            INSERT INTO submission_states
            SELECT submission_id, charity_id, 'loaded', loaded_at, NULL, NULL FROM submissions
            ON CONFLICT DO NOTHING
            """,
        ),
    ),
    Migration(
        4,
        "per-person privacy accounting: rho for the worst-case person beside rho per unit; unclipped estimates",
        (
            # Per published cell, the unclipped noisy estimate and its variance, from which every total and
            # comparison is computed (``privacy.combine``); NULL where there is none (medians).
            "ALTER TABLE release_cells ADD COLUMN IF NOT EXISTS estimate DOUBLE",
            "ALTER TABLE release_cells ADD COLUMN IF NOT EXISTS estimate_variance DOUBLE",
            # ``max_units``: the declared largest number of privacy units one person may be held as;
            # ``rho_per_person``: OpenDP's map of the measurement at that many units.
            "ALTER TABLE privacy_ledger ADD COLUMN IF NOT EXISTS max_units INTEGER",
            "ALTER TABLE privacy_ledger ADD COLUMN IF NOT EXISTS rho_per_person DOUBLE",
            "ALTER TABLE releases ADD COLUMN IF NOT EXISTS rho_per_person DOUBLE",
            # Entries recorded before this version: both mechanisms' maps are quadratic in the number of
            # units under zCDP (checked against OpenDP in tests/unit/test_privacy_per_person.py), so the
            # worst case of a release that held a person as m units is m² times its per-unit rho.
            """
            UPDATE privacy_ledger SET max_units = r.units_per_person,
                rho_per_person = privacy_ledger.rho * r.units_per_person * r.units_per_person
            FROM releases r WHERE r.release_id = privacy_ledger.release_id AND privacy_ledger.rho_per_person IS NULL
            """,
            """
            UPDATE releases SET rho_per_person = rho * units_per_person * units_per_person
            WHERE rho_per_person IS NULL
            """,
        ),
    ),
    Migration(
        5,
        "linkage clusters as the privacy unit: keyed components per unit, each unit's cluster, each contact's unit",
        (
            # One row per reference at a linking charity, under its person_key: the keyed components of its
            # identity (HMACs, never a raw identifier), as its latest submission gave them.
            """
            CREATE TABLE IF NOT EXISTS linkage_units (
                unit_key VARCHAR PRIMARY KEY,
                charity_id VARCHAR NOT NULL,
                submission_id VARCHAR NOT NULL,
                surname VARCHAR,
                surname_sound VARCHAR,
                birth_date VARCHAR,
                birth_month VARCHAR,
                district VARCHAR,
                postcode_area VARCHAR,
                surname_variants VARCHAR[]
            )
            """,
            # Splink's clusters of the units (``collab.linkage.relink``): a cluster is named by its smallest unit.
            "CREATE TABLE IF NOT EXISTS linkage_clusters (unit_key VARCHAR PRIMARY KEY, cluster_key VARCHAR NOT NULL)",
            # Each contact with its privacy unit (``unit_key``): its cluster at a linking charity, its own
            # person_key otherwise. Contacts linked before this version by the exact token already share one
            # person_key across charities and keep it. DuckDB binds a view when it is read, so columns added to
            # ``contacts`` later appear here too.
            """
            CREATE OR REPLACE VIEW contact_units AS
            SELECT c.*, coalesce(k.cluster_key, c.person_key) AS unit_key
            FROM contacts c LEFT JOIN linkage_clusters k ON k.unit_key = c.person_key
            """,
        ),
    ),
    Migration(
        6,
        "the link threshold the clusters were made at: they are brought up to date load by load until it changes",
        # One row, or none before the first relink (``collab.linkage.relink``): then every unit is linked afresh.
        ("CREATE TABLE IF NOT EXISTS linkage_state (threshold DOUBLE NOT NULL)",),
    ),
    Migration(
        7,
        "linkage units and clusters without a primary key: its index is held whole in memory by every load",
        # DuckDB keeps a primary key's index in memory, and a load inserting units or clusters loads all of it:
        # 279 MB for 2M units (``bench.relink``), under the load's memory limit, so a warehouse of millions of
        # units failed every linking load. ``collab.linkage`` keeps each unit_key unique instead (a unit is
        # deleted before it is inserted again, and a cluster row with it). DuckDB cannot drop a primary key:
        # each table is copied into one without it.
        (
            """
            CREATE TABLE linkage_units_unindexed (
                unit_key VARCHAR NOT NULL,
                charity_id VARCHAR NOT NULL,
                submission_id VARCHAR NOT NULL,
                surname VARCHAR,
                surname_sound VARCHAR,
                birth_date VARCHAR,
                birth_month VARCHAR,
                district VARCHAR,
                postcode_area VARCHAR,
                surname_variants VARCHAR[]
            )
            """,
            "INSERT INTO linkage_units_unindexed SELECT * FROM linkage_units",
            "DROP TABLE linkage_units",
            "ALTER TABLE linkage_units_unindexed RENAME TO linkage_units",
            "CREATE TABLE linkage_clusters_unindexed (unit_key VARCHAR NOT NULL, cluster_key VARCHAR NOT NULL)",
            "INSERT INTO linkage_clusters_unindexed SELECT * FROM linkage_clusters",
            "DROP TABLE linkage_clusters",
            "ALTER TABLE linkage_clusters_unindexed RENAME TO linkage_clusters",
        ),
    ),
    Migration(
        8,
        "the linkage model the clusters were made with, beside the threshold: a new model relinks every unit",
        # Empty in a warehouse from before: its clusters are linked afresh on the next relink, as after a new threshold.
        ("ALTER TABLE linkage_state ADD COLUMN IF NOT EXISTS model VARCHAR",),
    ),
    Migration(
        9,
        "no contacts_incoming: a load reads its minimised contacts from their Parquet file inside its transaction",
        # Its rows were only ever a load's in progress, deleted when the load ended or was retried.
        ("DROP TABLE IF EXISTS contacts_incoming",),
    ),
    Migration(
        10,
        "linkage components as 64-bit keyed codes, not 64-hex HMACs: an eighth of the bytes a load and a relink move",
        # Each code is the first 8 bytes of the HMAC the unit held: the same equalities hold, so its cluster stays.
        # Copied into a new table, not ALTER ... SET DATA TYPE ... USING: DuckDB logs that statement itself, and
        # replaying it from the write-ahead log after a crash (before the next checkpoint) runs before the functions
        # it calls are loaded, so the warehouse would not open again. An INSERT is logged as the rows it wrote.
        (
            """
            CREATE TABLE linkage_units_coded (
                unit_key VARCHAR NOT NULL,
                charity_id VARCHAR NOT NULL,
                submission_id VARCHAR NOT NULL,
                surname BIGINT,
                surname_sound BIGINT,
                birth_date BIGINT,
                birth_month BIGINT,
                district BIGINT,
                postcode_area BIGINT,
                surname_variants BIGINT[]
            )
            """,
            "INSERT INTO linkage_units_coded SELECT unit_key, charity_id, submission_id, "
            + ", ".join(f"{keyed_code_of_hex(column)} AS {column}" for column in _LINKAGE_COMPONENTS_V10)
            + f", {keyed_code_of_hex('surname_variants', listed=True)} AS surname_variants FROM linkage_units",
            "DROP TABLE linkage_units",
            "ALTER TABLE linkage_units_coded RENAME TO linkage_units",
        ),
    ),
    Migration(
        11,
        "person keys as 64-bit keyed codes, not 64-hex HMACs: half the warehouse's bytes, a third of a full relink",
        # Each key becomes the first 8 bytes of its HMAC, as ``privacy.pseudonymise.person_keys`` now makes it: a
        # contact keeps its unit, a unit its components. A cluster keeps its members and is named by its smallest
        # member's code, as a relink names it. Copied into new tables as version 10 copies (an INSERT is logged as
        # its rows); the view is dropped first and made again over the new tables.
        (
            "DROP VIEW contact_units",
            f"CREATE TABLE contacts_keyed AS SELECT * REPLACE ({keyed_code_of_hex('person_key')} AS person_key) "
            "FROM contacts",
            "DROP TABLE contacts",
            "ALTER TABLE contacts_keyed RENAME TO contacts",
            # CREATE TABLE AS keeps no default: contacts keep version 2's (a row inserted without it is not linked).
            "ALTER TABLE contacts ALTER COLUMN linked SET DEFAULT FALSE",
            # Made as version 10 made it, with its NOT NULLs (CREATE TABLE AS would drop them), the key a code.
            "CREATE TABLE linkage_units_keyed (unit_key BIGINT NOT NULL, charity_id VARCHAR NOT NULL, "
            "submission_id VARCHAR NOT NULL, "
            + "".join(f"{column} BIGINT, " for column in _LINKAGE_COMPONENTS_V10)
            + "surname_variants BIGINT[])",
            f"INSERT INTO linkage_units_keyed BY NAME SELECT * REPLACE ({keyed_code_of_hex('unit_key')} AS unit_key) "
            "FROM linkage_units",
            "DROP TABLE linkage_units",
            "ALTER TABLE linkage_units_keyed RENAME TO linkage_units",
            "CREATE TABLE linkage_clusters_keyed (unit_key BIGINT NOT NULL, cluster_key BIGINT NOT NULL)",
            f"""
            INSERT INTO linkage_clusters_keyed
            SELECT unit_key, min(unit_key) OVER (PARTITION BY cluster_key) FROM (
                SELECT {keyed_code_of_hex("unit_key")} AS unit_key, cluster_key FROM linkage_clusters)
            """,
            "DROP TABLE linkage_clusters",
            "ALTER TABLE linkage_clusters_keyed RENAME TO linkage_clusters",
            """
            CREATE VIEW contact_units AS
            SELECT c.*, coalesce(k.cluster_key, c.person_key) AS unit_key
            FROM contacts c LEFT JOIN linkage_clusters k ON k.unit_key = c.person_key
            """,
        ),
    ),
    Migration(
        12,
        "whether a contact's reference is in a linkage cluster: at a charity that links records, one that is not is "
        "not counted in releases (``privacy.bounding.hold_period``)",
        (
            """
            CREATE OR REPLACE VIEW contact_units AS
            SELECT c.*, coalesce(k.cluster_key, c.person_key) AS unit_key, k.cluster_key IS NOT NULL AS clustered
            FROM contacts c LEFT JOIN linkage_clusters k ON k.unit_key = c.person_key
            """,
        ),
    ),
    Migration(
        13,
        "the charities a release names, as they were when it was made: a package rendered again names the same ones",
        # A release made before it has none recorded (NULL): its package names whoever agrees when it is rendered.
        ("ALTER TABLE releases ADD COLUMN IF NOT EXISTS named_contributors VARCHAR[]",),
    ),
    Migration(
        14,
        "the privacy units a release counts a person as across the charities that link records (a declared cap)",
        (
            "ALTER TABLE releases ADD COLUMN IF NOT EXISTS linked_units_per_person INTEGER",
            # Releases made before it was declared counted one, wherever a contributor linked records.
            """
            UPDATE releases SET linked_units_per_person = CASE WHEN linking_contributors > 0 THEN 1 ELSE 0 END
            WHERE linked_units_per_person IS NULL
            """,
        ),
    ),
    Migration(
        15,
        "recharges: an earlier release charged again when the declared caps on units per person are raised",
        (
            # ``release_id``'s worst case went from ``units_before`` to ``units_after`` units when the release
            # ``charged_with`` was made under raised caps; ``rho_per_person``: what that added for the worst-case
            # person (``privacy.accountant.recharge``).
            """
            CREATE TABLE IF NOT EXISTS privacy_recharges (
                release_id     VARCHAR NOT NULL,
                period         VARCHAR NOT NULL,
                charged_with   VARCHAR NOT NULL,
                units_before   INTEGER NOT NULL,
                units_after    INTEGER NOT NULL CHECK (units_after > units_before),
                rho_per_person DOUBLE  NOT NULL CHECK (rho_per_person >= 0),
                recorded_at    TIMESTAMP NOT NULL,
                PRIMARY KEY (release_id, units_after)
            )
            """,
            # Everything spent, per unit and for the worst-case person: what budgets and statements sum.
            """
            CREATE OR REPLACE VIEW privacy_spend AS
            SELECT release_id, period, kind, rho, max_units, rho_per_person, recorded_at FROM privacy_ledger
            UNION ALL
            SELECT release_id, period, 'recharge', 0.0, units_after, rho_per_person, recorded_at FROM privacy_recharges
            """,
        ),
    ),
    Migration(
        16,
        "spending in the order it was charged, not by the wall clock's time",
        (
            # What a release states it cost "so far" was cut at its own ``recorded_at``: a clock set back between two
            # releases (another host, a correction) put the later one before the earlier, and its statement left the
            # earlier out. ``spent_order`` counts up with each charge or recharge (``privacy.accountant``), one
            # number for the rows of each; those recorded before it are numbered in the order their times give,
            # a release's recharges before its own charges (they are made first, in its transaction).
            "ALTER TABLE privacy_ledger ADD COLUMN IF NOT EXISTS spent_order BIGINT",
            "ALTER TABLE privacy_recharges ADD COLUMN IF NOT EXISTS spent_order BIGINT",
            """
            CREATE OR REPLACE TEMP VIEW spend_in_time_order AS
            SELECT *, dense_rank() OVER (ORDER BY recorded_at, recharge DESC) AS spent_order FROM (
                SELECT DISTINCT release_id, recorded_at, NULL::INTEGER AS units_after, FALSE AS recharge
                FROM privacy_ledger
                UNION ALL
                SELECT release_id, recorded_at, units_after, TRUE FROM privacy_recharges
            )
            """,
            """
            UPDATE privacy_ledger AS l SET spent_order = o.spent_order FROM spend_in_time_order o
            WHERE NOT o.recharge AND o.release_id = l.release_id AND o.recorded_at = l.recorded_at
            """,
            """
            UPDATE privacy_recharges AS r SET spent_order = o.spent_order FROM spend_in_time_order o
            WHERE o.recharge AND o.release_id = r.release_id AND o.units_after = r.units_after
            """,
            "DROP VIEW spend_in_time_order",
            """
            CREATE OR REPLACE VIEW privacy_spend AS
            SELECT release_id, period, kind, rho, max_units, rho_per_person, recorded_at, spent_order FROM privacy_ledger
            UNION ALL
            SELECT release_id, period, 'recharge', 0.0, units_after, rho_per_person, recorded_at, spent_order
            FROM privacy_recharges
            """,
        ),
    ),
    Migration(
        17,
        "a submission's load placed among the releases by the ledger's order, not by the wall clock's time",
        (
            # A quarter loaded into after its latest release needs a revision (``collab.warehouse.stale_quarters``),
            # which was told by comparing times: with the clock set back after a release, data loaded after it went
            # unflagged; set forward before it, the quarter was flagged for a paid revision after every run. A load
            # now records the ledger's last charge (``privacy.accountant.last_spent_order``) in its transaction; the
            # loads before it are placed by their times, as they were compared.
            "ALTER TABLE submissions ADD COLUMN IF NOT EXISTS loaded_after_charge BIGINT DEFAULT 0",
            """
            UPDATE submissions AS s SET loaded_after_charge = (
                SELECT coalesce(max(spent_order), 0) FROM privacy_spend p WHERE p.recorded_at < s.loaded_at
            )
            """,
        ),
    ),
)
LATEST_VERSION = MIGRATIONS[-1].version

_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL
)
"""


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The warehouse's schema version: 0 for a warehouse no migration has touched."""
    con.execute(_VERSION_DDL)
    return int(con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0])


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply every migration newer than the warehouse's version, in order; return the versions applied.

    Warehouses made before versioning have their tables already: every statement is idempotent
    (``IF NOT EXISTS``), so they are brought to the same schema as a new one.
    """
    current = schema_version(con)
    if current > LATEST_VERSION:
        raise RuntimeError(
            f"the warehouse is at schema version {current}, newer than this code's {LATEST_VERSION}: upgrade the code"
        )
    applied = []
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        con.begin()
        try:
            for statement in migration.statements:
                con.execute(statement)
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, ?)",
                [migration.version, migration.description, dt.datetime.now(dt.UTC).replace(tzinfo=None)],
            )
        except BaseException:
            con.rollback()
            raise
        con.commit()  # after the block: a commit that fails has ended the transaction (``collab.warehouse``)
        applied.append(migration.version)
    return applied
