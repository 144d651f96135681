"""The warehouse schema has one owner: ordered migrations that build exactly the declared columns."""

import duckdb
import polars as pl
import pytest

from collab.schema import LATEST_VERSION, MIGRATIONS, migrate, schema_version
from privacy.minimise import WAREHOUSE_SCHEMA

_DUCKDB_TYPES = {pl.String: "VARCHAR", pl.Date: "DATE", pl.Int64: "BIGINT", pl.Float64: "DOUBLE", pl.Boolean: "BOOLEAN"}


def test_migrations_are_numbered_in_order() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST_VERSION + 1))


def test_a_new_warehouse_is_migrated_to_the_declared_contact_columns() -> None:
    con = duckdb.connect()
    assert migrate(con) == list(range(1, LATEST_VERSION + 1))
    for table in ("contacts", "contacts_incoming"):
        columns = {row[0]: row[1] for row in con.execute(f"DESCRIBE {table}").fetchall()}
        assert columns == {name: _DUCKDB_TYPES[type(dtype)] for name, dtype in WAREHOUSE_SCHEMA.items()}
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


def test_a_warehouse_newer_than_the_code_is_refused() -> None:
    con = duckdb.connect()
    migrate(con)
    con.execute("INSERT INTO schema_version VALUES (?, 'from the future', now())", [LATEST_VERSION + 1])
    with pytest.raises(RuntimeError, match="newer than this code"):
        migrate(con)
