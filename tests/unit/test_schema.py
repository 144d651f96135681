"""The warehouse schema has one owner: ordered migrations that build exactly the declared columns."""

import duckdb
import polars as pl
import pytest

from collab.schema import LATEST_VERSION, MIGRATIONS, migrate, schema_version
from privacy.bounding import CONTACTS_TABLE
from privacy.minimise import LINKAGE_UNIT_SCHEMA, WAREHOUSE_SCHEMA

_DUCKDB_TYPES = {pl.String: "VARCHAR", pl.Date: "DATE", pl.Int64: "BIGINT", pl.Float64: "DOUBLE", pl.Boolean: "BOOLEAN"}


def _duckdb_type(dtype: pl.DataType) -> str:
    return f"{_duckdb_type(dtype.inner)}[]" if isinstance(dtype, pl.List) else _DUCKDB_TYPES[type(dtype)]


def test_migrations_are_numbered_in_order() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST_VERSION + 1))


def test_a_new_warehouse_is_migrated_to_the_declared_contact_columns() -> None:
    con = duckdb.connect()
    assert migrate(con) == list(range(1, LATEST_VERSION + 1))
    columns = {row[0]: row[1] for row in con.execute("DESCRIBE contacts").fetchall()}
    assert columns == {name: _duckdb_type(dtype) for name, dtype in WAREHOUSE_SCHEMA.items()}
    units = {row[0]: row[1] for row in con.execute("DESCRIBE linkage_units").fetchall()}
    assert units == {name: _duckdb_type(dtype) for name, dtype in LINKAGE_UNIT_SCHEMA.items()}
    # What bounding reads: every contact column, and its privacy unit.
    view = {row[0]: row[1] for row in con.execute(f"DESCRIBE {CONTACTS_TABLE}").fetchall()}
    assert view == {**{name: _duckdb_type(dtype) for name, dtype in WAREHOUSE_SCHEMA.items()}, "unit_key": "VARCHAR"}
    assert schema_version(con) == LATEST_VERSION
    assert migrate(con) == []  # idempotent


def test_a_warehouse_from_before_versioning_is_brought_up_to_date() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE contacts (submission_id VARCHAR, person_key VARCHAR)")  # as version 1 made it
    for statement in MIGRATIONS[0].statements[1:]:
        con.execute(statement)
    con.execute("INSERT INTO contacts VALUES ('s', 'k')")
    assert migrate(con) == list(range(1, LATEST_VERSION + 1))
    assert con.execute("SELECT linked FROM contacts").fetchall() == [(False,)]
    # Contacts from before linkage clusters are each their own unit, under their person_key.
    assert con.execute("SELECT person_key, unit_key FROM contact_units").fetchall() == [("k", "k")]


def test_each_contact_s_privacy_unit_is_its_cluster_where_it_has_one_and_its_person_key_otherwise() -> None:
    con = duckdb.connect()
    migrate(con)
    con.executemany(
        "INSERT INTO contacts (submission_id, charity_id, person_key, quarter) VALUES ('s', ?, ?, '2026Q1')",
        [["a", "a1"], ["b", "b1"], ["c", "c1"]],
    )
    con.execute("INSERT INTO linkage_clusters VALUES ('a1', 'a1'), ('b1', 'a1')")
    units = con.execute("SELECT person_key, unit_key FROM contact_units ORDER BY person_key").fetchall()
    assert units == [("a1", "a1"), ("b1", "a1"), ("c1", "c1")]


def test_a_warehouse_newer_than_the_code_is_refused() -> None:
    con = duckdb.connect()
    migrate(con)
    con.execute("INSERT INTO schema_version VALUES (?, 'from the future', now())", [LATEST_VERSION + 1])
    with pytest.raises(RuntimeError, match="newer than this code"):
        migrate(con)


def test_linkage_units_and_clusters_keep_their_rows_and_lose_their_in_memory_index_at_version_7() -> None:
    con = duckdb.connect()
    schema_version(con)  # creates the version table
    for migration in MIGRATIONS[:6]:
        for statement in migration.statements:
            con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (?, 'test', now())", [migration.version])
    con.execute("INSERT INTO linkage_units (unit_key, charity_id, submission_id, surname) VALUES ('u1', 'a', 's', 'x')")
    con.execute("INSERT INTO linkage_clusters VALUES ('u1', 'u1')")
    assert migrate(con) == [migration.version for migration in MIGRATIONS[6:]]
    assert con.execute("SELECT unit_key, surname FROM linkage_units").fetchall() == [("u1", "x")]
    assert con.execute("SELECT * FROM linkage_clusters").fetchall() == [("u1", "u1")]
    indexed = con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE table_name IN ('linkage_units', 'linkage_clusters') "
        "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
    ).fetchall()
    assert indexed == [(0,)]
