"""The warehouse schema has one owner: ordered migrations that build exactly the declared columns."""

import datetime as dt
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from collab.linkage import store_units
from collab.schema import LATEST_VERSION, MIGRATIONS, migrate, schema_version
from collab.staging import CONTACTS_FILE, LINKAGE_UNITS_FILE, minimise_staged_units
from collab.warehouse import load_submission
from privacy.bounding import CONTACTS_TABLE
from privacy.linkage import COMPONENTS, VARIANTS, component_values, keyed_components, surname_variants
from privacy.minimise import LINKAGE_UNIT_SCHEMA, WAREHOUSE_SCHEMA, minimise_units
from privacy.pseudonymise import keyed_hashes, keyed_int64s

KEY = bytes(range(32))

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
    # What bounding reads: every contact column, its privacy unit, and whether its reference is in a cluster.
    view = {row[0]: row[1] for row in con.execute(f"DESCRIBE {CONTACTS_TABLE}").fetchall()}
    contact_columns = {name: _duckdb_type(dtype) for name, dtype in WAREHOUSE_SCHEMA.items()}
    assert view == {**contact_columns, "unit_key": "BIGINT", "clustered": "BOOLEAN"}
    assert schema_version(con) == LATEST_VERSION
    assert migrate(con) == []  # idempotent


def test_a_warehouse_from_before_versioning_is_brought_up_to_date() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE contacts (submission_id VARCHAR, person_key VARCHAR)")  # as version 1 made it
    for statement in MIGRATIONS[0].statements[1:]:
        con.execute(statement)
    con.execute("INSERT INTO contacts VALUES ('s', ?)", [_hex_key("R1")])
    assert migrate(con) == list(range(1, LATEST_VERSION + 1))
    assert con.execute("SELECT linked FROM contacts").fetchall() == [(False,)]
    # Contacts from before linkage clusters are each their own unit, under their person_key.
    assert con.execute("SELECT person_key, unit_key FROM contact_units").fetchall() == [(_code("R1"), _code("R1"))]


def test_each_contact_s_privacy_unit_is_its_cluster_where_it_has_one_and_its_person_key_otherwise() -> None:
    con = duckdb.connect()
    migrate(con)
    con.executemany(
        "INSERT INTO contacts (submission_id, charity_id, person_key, quarter) VALUES ('s', ?, ?, '2026Q1')",
        [["a", 1], ["b", 2], ["c", 3]],
    )
    con.execute("INSERT INTO linkage_clusters VALUES (1, 1), (2, 1)")
    units = con.execute("SELECT person_key, unit_key FROM contact_units ORDER BY person_key").fetchall()
    assert units == [(1, 1), (2, 1), (3, 3)]


def test_a_warehouse_newer_than_the_code_is_refused() -> None:
    con = duckdb.connect()
    migrate(con)
    con.execute("INSERT INTO schema_version VALUES (?, 'from the future', now())", [LATEST_VERSION + 1])
    with pytest.raises(RuntimeError, match="newer than this code"):
        migrate(con)


def _at_version(version: int) -> duckdb.DuckDBPyConnection:
    """A new warehouse brought up to ``version`` only."""
    con = duckdb.connect()
    schema_version(con)  # creates the version table
    for migration in MIGRATIONS[:version]:
        for statement in migration.statements:
            con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (?, 'test', now())", [migration.version])
    return con


def test_linkage_units_and_clusters_keep_their_rows_and_lose_their_in_memory_index_at_version_7() -> None:
    con = _at_version(6)
    [hex_code] = keyed_hashes(KEY, ("link", "surname"), ["OBRIEN"])
    con.execute(
        "INSERT INTO linkage_units (unit_key, charity_id, submission_id, surname) VALUES (?, 'a', 's', ?)",
        [_hex_key("R1"), hex_code],
    )
    con.execute("INSERT INTO linkage_clusters VALUES (?, ?)", [_hex_key("R1")] * 2)
    assert migrate(con) == [migration.version for migration in MIGRATIONS[6:]]
    [code] = keyed_int64s(KEY, ("link", "surname"), ["OBRIEN"]).tolist()
    assert con.execute("SELECT unit_key, surname FROM linkage_units").fetchall() == [(_code("R1"), code)]
    assert con.execute("SELECT * FROM linkage_clusters").fetchall() == [(_code("R1"), _code("R1"))]
    indexed = con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE table_name IN ('linkage_units', 'linkage_clusters') "
        "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
    ).fetchall()
    assert indexed == [(0,)]


# Three references, one with no identity (its components null).
_BASES = pl.Series(["OBRIEN|1980-02-29|BS35", None, "NOWAK|1979-12-01|EC1A"])
_REFERENCES = pl.DataFrame({"person_ref": ["R1", "R2", "R3"]})


def _hex_coded_records() -> pl.DataFrame:
    """The linkage records of ``_BASES`` as ``privacy.linkage`` made them before version 10: each code the whole
    HMAC (``keyed_hashes``) of the value the 64-bit code is now made from."""

    def hmac(name: str, value: str) -> str:
        return keyed_hashes(KEY, ("link", name), [value])[0]

    rows = [
        dict.fromkeys((*COMPONENTS, VARIANTS))
        if basis is None
        else {
            **{name: hmac(name, value) for name, value in component_values(basis).items()},
            VARIANTS: keyed_hashes(KEY, ("link", "surname_variant"), surname_variants(basis.split("|")[0])),
        }
        for basis in _BASES
    ]
    schema = {**dict.fromkeys(COMPONENTS, pl.String), VARIANTS: pl.List(pl.String)}
    return pl.concat([_REFERENCES, pl.DataFrame(rows, schema=schema)], how="horizontal")


def _units(records: pl.DataFrame) -> pl.DataFrame:
    return minimise_units(records, key=KEY, charity_id="a", submission_id="s").sort("unit_key")


def _hex_key(reference: str) -> str:
    """A reference's person key at charity ``a`` as it was before version 11: the whole HMAC."""
    return keyed_hashes(KEY, ("person", "a"), [reference])[0]


def _code(reference: str) -> int:
    """The same reference's person key now: the HMAC's first 8 bytes, a big-endian signed integer."""
    return int.from_bytes(bytes.fromhex(_hex_key(reference))[:8], "big", signed=True)


def _hex_keyed_units(records: pl.DataFrame) -> pl.DataFrame:
    """``records``' units keyed as before version 11."""
    keys = pl.Series("unit_key", [_hex_key(r) for r in records.get_column("person_ref")])
    return minimise_units(records, key=KEY, charity_id="a", submission_id="s").with_columns(keys)


def _coded_units() -> pl.DataFrame:
    """The same references' units as they are coded now."""
    return _units(pl.concat([_REFERENCES, keyed_components(KEY, _BASES)], how="horizontal"))


def test_hex_coded_linkage_units_become_the_64_bit_codes_of_their_values_at_version_10() -> None:
    con = _at_version(9)
    con.register("hex_coded", _hex_keyed_units(_hex_coded_records()).to_arrow())
    con.execute("INSERT INTO linkage_units BY NAME SELECT * FROM hex_coded")
    con.execute("INSERT INTO linkage_clusters SELECT unit_key, min(unit_key) OVER () FROM hex_coded")
    assert migrate(con) == list(range(10, LATEST_VERSION + 1))
    migrated = con.sql("SELECT * FROM linkage_units ORDER BY unit_key").pl()
    assert migrated.schema == LINKAGE_UNIT_SCHEMA
    assert migrated.equals(_coded_units())
    assert migrated.filter(pl.col("surname").is_null()).height == 1  # the reference without an identity
    codes = pl.concat([migrated.get_column(name) for name in COMPONENTS]).drop_nulls()
    assert codes.min() < 0 < codes.max()  # both halves of the range: the sign is read as Python reads it
    # One cluster still, named by its smallest member's code, as a relink names it.
    keys = sorted(_code(reference) for reference in _REFERENCES.get_column("person_ref"))
    assert con.execute("SELECT * FROM linkage_clusters ORDER BY ALL").fetchall() == [(k, keys[0]) for k in keys]


_MIGRATE_THEN_DIE = """
import os, sys
import duckdb
from collab.schema import migrate
con = duckdb.connect(sys.argv[1])
con.execute("PRAGMA disable_checkpoint_on_shutdown")
migrate(con)
os._exit(0)  # killed: nothing of the migrations checkpointed, all of them only in the write-ahead log
"""


def test_a_warehouse_killed_right_after_its_migrations_opens_again(tmp_path: Path) -> None:
    """DuckDB replays the write-ahead log when a warehouse opens, before it loads the functions a logged statement
    may call (an ALTER ... USING one failed to open with "trying to automatically install ... core_functions")."""
    path = tmp_path / "warehouse.duckdb"
    con = _at_version(9)
    con.register("hex_coded", _hex_keyed_units(_hex_coded_records()).to_arrow())
    con.execute("INSERT INTO linkage_units BY NAME SELECT * FROM hex_coded")
    con.execute(f"ATTACH '{path}' AS on_disk")
    con.execute("COPY FROM DATABASE memory TO on_disk")
    con.close()
    fresh = tmp_path / "fresh.duckdb"
    for warehouse in (path, fresh):
        subprocess.run([sys.executable, "-c", _MIGRATE_THEN_DIE, str(warehouse)], check=True)
        assert Path(f"{warehouse}.wal").exists()
        with duckdb.connect(str(warehouse)) as reopened:
            assert schema_version(reopened) == LATEST_VERSION
    with duckdb.connect(str(path)) as reopened:
        assert reopened.sql("SELECT * FROM linkage_units ORDER BY unit_key").pl().equals(_coded_units())


def test_person_keys_become_their_64_bit_codes_at_version_11_and_so_do_those_staged_before(tmp_path: Path) -> None:
    """Contacts, units and clusters keep what they were: each contact its unit, each cluster its members, named by its
    smallest member's code. A submission checked before the upgrade, its contacts minimised with 64-hex keys, loads
    under the codes its references have now."""
    con = _at_version(10)
    con.executemany(
        "INSERT INTO contacts (submission_id, charity_id, person_key, quarter) VALUES ('s', 'a', ?, '2026Q1')",
        [[_hex_key(reference)] for reference in ("R1", "R2", "R3")],
    )
    # Named by the member whose code is not the smaller: the codes' order must name it, not the name it had.
    named_by = _hex_key("R1") if _code("R1") > _code("R2") else _hex_key("R2")
    con.executemany(
        "INSERT INTO linkage_clusters VALUES (?, ?)", [[_hex_key("R1"), named_by], [_hex_key("R2"), named_by]]
    )
    assert migrate(con) == list(range(11, LATEST_VERSION + 1))
    units = dict(con.execute("SELECT person_key, unit_key FROM contact_units").fetchall())
    cluster = min(_code("R1"), _code("R2"))
    assert units == {_code("R1"): cluster, _code("R2"): cluster, _code("R3"): _code("R3")}
    given = {"submission_id": "s2", "charity_id": "a", "person_key": _hex_key("R4"), "quarter": "2026Q2"}
    staged = pl.DataFrame(
        {name: [given.get(name)] for name in WAREHOUSE_SCHEMA}, schema={**WAREHOUSE_SCHEMA, "person_key": pl.String}
    )
    staged.write_parquet(tmp_path / "minimised.parquet")
    load_submission(
        con,
        submission_id="s2",
        charity_id="a",
        file_name="a.csv",
        sha256="0" * 64,
        received_at=dt.datetime(2026, 7, 1, tzinfo=dt.UTC),
        contacts=tmp_path / "minimised.parquet",
        standard_version="1.0",
    )
    assert con.execute("SELECT person_key FROM contacts WHERE submission_id = 's2'").fetchall() == [(_code("R4"),)]


def test_linkage_units_minimised_before_version_11_are_stored_under_the_codes_of_their_keys(tmp_path: Path) -> None:
    """A submission minimised before the upgrade holds its units under 64-hex keys and its components as codes (or
    HMACs, before version 10): stored after it, each unit is under the code its contacts now carry."""
    for records in (pl.concat([_REFERENCES, keyed_components(KEY, _BASES)], how="horizontal"), _hex_coded_records()):
        path = tmp_path / "units.minimised.parquet"
        _hex_keyed_units(records).write_parquet(path)
        con = duckdb.connect()
        migrate(con)
        assert store_units(con, path).received == 3
        assert con.sql("SELECT * FROM linkage_units ORDER BY unit_key").pl().equals(_coded_units())


def test_linkage_records_staged_before_version_10_are_stored_as_the_64_bit_codes(tmp_path: Path) -> None:
    """A submission checked before the upgrade may wait, its hex-coded records staged, to be loaded after it."""
    _hex_coded_records().write_parquet(tmp_path / LINKAGE_UNITS_FILE)
    minimised = minimise_staged_units(tmp_path / CONTACTS_FILE, key=KEY, charity_id="a", submission_id="s")
    assert minimised is not None
    con = duckdb.connect()
    migrate(con)
    assert store_units(con, minimised).received == 3
    assert con.sql("SELECT * FROM linkage_units ORDER BY unit_key").pl().equals(_coded_units())
    # Described again, coded as 64-bit integers: the same components, so no unit changed and every cluster stays.
    con.execute("INSERT INTO linkage_clusters SELECT unit_key, unit_key FROM linkage_units")
    store_units(con, _coded_units())
    assert con.execute("SELECT count(*) FROM linkage_clusters").fetchall() == [(3,)]


def test_a_warehouse_connection_draws_no_progress_bar(tmp_path: Path) -> None:
    """DuckDB draws one on standard output for any statement of a few seconds: into a run's logs. Asked in an
    interpreter of its own, as a run is: under pytest's captured output DuckDB turns it off by itself."""
    script = (
        "import sys; from pathlib import Path; from collab.warehouse import connect\n"
        "for read_only in (False, True):\n"
        "    with connect(Path(sys.argv[1]), read_only=read_only) as con:\n"
        "        print(con.execute(\"SELECT current_setting('enable_progress_bar')\").fetchall()[0][0])\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "warehouse.duckdb")], capture_output=True, text=True, check=True
    )
    assert ran.stdout.split() == ["False", "False"]


def test_version_11_keeps_the_constraints_and_defaults_of_the_tables_it_copies() -> None:
    """CREATE TABLE AS copies rows, not a table's NOT NULLs or defaults: contacts keep ``linked``'s default (version 2)
    and linkage units their NOT NULL keys (version 10)."""
    con = _at_version(10)
    migrate(con)
    default = con.execute(
        "SELECT column_default FROM duckdb_columns() WHERE table_name = 'contacts' AND column_name = 'linked'"
    ).fetchall()
    assert default == [("false",)]
    not_null = con.execute(
        "SELECT list(c ORDER BY c) FROM duckdb_constraints(), unnest(constraint_column_names) AS t(c) "
        "WHERE table_name = 'linkage_units' AND constraint_type = 'NOT NULL'"
    ).fetchall()
    assert not_null == [(["charity_id", "submission_id", "unit_key"],)]


def test_spending_recorded_before_version_16_is_numbered_in_the_order_of_its_times() -> None:
    con = _at_version(15)
    ledger = (
        "INSERT INTO privacy_ledger (release_id, period, indicator_id, measurement, kind, mechanism, rho, noise_scale, "
        "sensitivity, recorded_at, max_units, rho_per_person) VALUES (?, ?, ?, 'count', 'release', 'gaussian', 0.1, "
        "1.0, 1.0, ?, 2, 0.4)"
    )
    for release_id, indicator, at in (
        ("2026Q2-v1", "people", "2026-07-02 10:00:00"),
        ("2026Q2-v1", "contacts", "2026-07-02 10:00:00"),
        ("2026Q1-v1", "people", "2026-04-02 10:00:00"),
        ("2026Q3-v1", "people", "2026-10-02 10:00:00"),
    ):
        con.execute(ledger, [release_id, release_id[:6], indicator, at])
    # Made in 2026Q3-v1's transaction, before its charge, at the same second.
    con.execute(
        "INSERT INTO privacy_recharges VALUES ('2026Q1-v1', '2026Q1', '2026Q3-v1', 2, 3, 0.5, '2026-10-02 10:00:00')"
    )
    assert migrate(con) == list(range(16, LATEST_VERSION + 1))
    assert con.execute(
        "SELECT release_id, kind, list(DISTINCT spent_order) FROM privacy_spend GROUP BY ALL ORDER BY 3"
    ).fetchall() == [
        ("2026Q1-v1", "release", [1]),
        ("2026Q2-v1", "release", [2]),
        ("2026Q1-v1", "recharge", [3]),
        ("2026Q3-v1", "release", [4]),
    ]


def test_loads_made_before_version_17_are_placed_among_the_charges_by_their_times() -> None:
    con = _at_version(16)
    con.execute(
        "INSERT INTO privacy_ledger (release_id, period, indicator_id, measurement, kind, mechanism, rho, noise_scale, "
        "sensitivity, recorded_at, max_units, rho_per_person, spent_order) VALUES ('2026Q1-v1', '2026Q1', 'people', "
        "'count', 'release', 'gaussian', 0.1, 1.0, 1.0, '2026-04-02 10:00:00', 1, 0.1, 1)"
    )
    for submission, loaded_at in (("before", "2026-04-01 09:00:00"), ("after", "2026-04-03 09:00:00")):
        con.execute(
            "INSERT INTO submissions VALUES (?, 'c', 'f.csv', 'x', ?, ?, 1, 0, ['2026Q1'], '1.0')",
            [submission, loaded_at, loaded_at],
        )
    assert migrate(con) == list(range(17, LATEST_VERSION + 1))
    assert con.execute("SELECT submission_id, loaded_after_charge FROM submissions ORDER BY 1").fetchall() == [
        ("after", 1),
        ("before", 0),
    ]
