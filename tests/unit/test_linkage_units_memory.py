"""A large submission's linkage units are stored under the load's memory limit (``collab.warehouse``)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from collab.linkage import store_units
from collab.schema import migrate
from collab.warehouse import LOAD_MEMORY_LIMIT
from privacy.minimise import LINKAGE_UNIT_SCHEMA

UNITS = 40_000  # about the largest charity-quarter of the 1M-contact benchmark (35,009 units)
WAREHOUSE_UNITS = 160_000  # the benchmark's warehouse when it failed


def _units(submission_id: str, count: int = UNITS, *, described: int = 1) -> pl.DataFrame:
    """``count`` references, each with its components as its ``described``-th description gives them."""

    def keyed(seed: int) -> pl.Series:  # keyed codes: 64-bit integers in no order
        return pl.int_range(count, eager=True).hash(seed=seed).reinterpret(signed=True)

    components = keyed(1 + described)
    return pl.DataFrame(
        {
            "unit_key": keyed(1),  # a person key
            "charity_id": "a",
            "submission_id": submission_id,
            **{column: components for column in list(LINKAGE_UNIT_SCHEMA)[3:-1]},
            "surname_variants": pl.Series([[code] * 8 for code in components]),
        }
    )


@pytest.mark.parametrize("from_file", [False, True], ids=["rows", "parquet file"])
def test_a_quarter_of_units_described_again_is_stored_within_the_load_memory_limit(
    tmp_path: Path, from_file: bool
) -> None:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    migrate(con)
    store_units(con, _units("a-1", WAREHOUSE_UNITS))
    con.execute("SET memory_limit = $limit", {"limit": LOAD_MEMORY_LIMIT})
    # The same references in the next quarter's file, every one described anew: every unit is written again.
    again = _units("a-2", described=2)
    if from_file:
        again.write_parquet(tmp_path / "units.parquet")
    con.begin()
    assert store_units(con, tmp_path / "units.parquet" if from_file else again).received == UNITS
    con.commit()
    assert con.execute("SELECT count(*) FROM linkage_units WHERE submission_id = 'a-2'").fetchall() == [(UNITS,)]


def test_units_stored_from_a_parquet_file_are_those_stored_from_the_rows(tmp_path: Path) -> None:
    """A large submission's units reach the warehouse as a file DuckDB reads (``collab.staging``)."""
    units = _units("a-1", 1_000)
    stored = []
    for source in (units, tmp_path / "units.parquet"):
        if isinstance(source, Path):
            units.write_parquet(source)
        con = duckdb.connect()
        migrate(con)
        assert store_units(con, source).received == units.height
        stored.append(con.sql("SELECT * FROM linkage_units ORDER BY unit_key").pl())
    assert stored[0].equals(stored[1]) and stored[0].height == units.height
    units.drop("surname").write_parquet(tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="warehouse schema"):
        store_units(con, tmp_path / "other.parquet")
    pl.concat([units, units.head(1)]).write_parquet(tmp_path / "twice.parquet")
    with pytest.raises(ValueError, match="own unit_key"):
        store_units(con, tmp_path / "twice.parquet")
