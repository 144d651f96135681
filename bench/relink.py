"""One linking charity's submission loaded into a warehouse of millions of linkage units.

`python -m bench.relink --warehouse-units 2000000 --submission-units 350000` (a few minutes). The
reproducer of the 10M-contact benchmark's out-of-memory loads without its 20 minutes: the warehouse is
built directly (one contact per unit, each unit its own cluster, identities drawn as the streamed demo
draws them: its 14 surnames, ages about 42 ± 15, districts of the UK), then one submission of a new
linking charity is loaded by ``collab.warehouse.load_submission`` and its units linked by
``collab.warehouse.link_units`` (what the next release does first), in a process of its own so that its
wall time, CPU seconds and peak resident memory are the load's alone. A fifth of the submission's people
are already in the warehouse, so links are found. The anchor, in the same run: DuckDB copying the
warehouse's linkage units into a new table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

KEY = bytes(range(32))
SEED = 2026
SUBMISSION = "newcomer-2026Q1"
# Of the submission's people, the share already in the warehouse (at another charity).
KNOWN_SHARE = 0.2


def _bases(people: np.ndarray, districts: np.ndarray) -> pl.Series:
    """``SURNAME|YYYY-MM-DD|DISTRICT`` of each person (a person's identity depends on its number alone)."""
    from collab_demo.generator import SURNAMES

    def uniform(stream: int) -> np.ndarray:  # the same for a person in every call
        return (pl.Series(people).hash(seed=SEED + stream).to_numpy() % 2**32 + 0.5) / 2**32

    normal = np.sqrt(-2 * np.log(uniform(1))) * np.cos(2 * np.pi * uniform(2))
    ages = np.clip(42 + 15 * normal, 16, 92).astype(int)
    days = (uniform(3) * 365).astype(int)
    where = (uniform(4) * districts.size).astype(int)
    birth = (2026 - ages - 1970).astype("datetime64[Y]").astype("datetime64[D]") + days
    return pl.Series(
        np.char.add(
            np.char.add(np.char.add(np.array(SURNAMES)[people % len(SURNAMES)], "|"), birth.astype(str)),
            np.char.add("|", districts[where]),
        )
    ).str.to_uppercase()


def _units(people: np.ndarray, charity_id: str, submission_id: str, districts: np.ndarray) -> pl.DataFrame:
    from privacy.linkage import keyed_components
    from privacy.minimise import minimise_units

    keyed = keyed_components(KEY, _bases(people, districts))
    refs = pl.DataFrame({"person_ref": [f"P{p}" for p in people]})
    return minimise_units(
        pl.concat([refs, keyed], how="horizontal"), key=KEY, charity_id=charity_id, submission_id=submission_id
    )


def contacts_of_units(units: pl.DataFrame) -> pl.DataFrame:
    """A contact row for each unit: its keys, its charity and submission, and nothing else filled."""
    from privacy.minimise import WAREHOUSE_SCHEMA

    return units.select(
        pl.col(name) if name in ("submission_id", "charity_id") else pl.lit(None, dtype).alias(name)
        for name, dtype in WAREHOUSE_SCHEMA.items()
    ).with_columns(units.get_column("unit_key").alias("person_key"), pl.lit("2026Q1").alias("quarter"))


def _districts() -> np.ndarray:
    from standards.geography import load_geography

    return np.array(sorted(load_geography().current_districts))


def build(path: Path, warehouse_units: int) -> None:
    """A warehouse of ``warehouse_units`` units of two linking charities, each unit its own cluster."""
    from collab.schema import migrate
    from collab.warehouse import connect
    from privacy.clustering import fixed_model
    from privacy.linkage import DEFAULT_THRESHOLD

    districts = _districts()
    with connect(path) as con:
        migrate(con)
        for index, charity in enumerate(("earlier-a", "earlier-b")):
            people = np.arange(index, warehouse_units, 2)
            units = _units(people, charity, f"{charity}-2025Q4", districts)
            con.register("built", units.to_arrow())
            con.execute("INSERT INTO linkage_units BY NAME SELECT * FROM built")
            con.execute("INSERT INTO linkage_clusters SELECT unit_key, unit_key FROM built")
            con.register("built_contacts", contacts_of_units(units).to_arrow())
            con.execute("INSERT INTO contacts BY NAME SELECT * FROM built_contacts")
            con.unregister("built")
            con.unregister("built_contacts")
        # The clusters are those of the pipeline's model: the load links only its own units, as in production.
        con.execute("INSERT INTO linkage_state VALUES (?, ?)", [DEFAULT_THRESHOLD, fixed_model()])


def load(path: Path, warehouse_units: int, submission_units: int) -> str:
    """Load the newcomer's submission and link its units (what the next release does first); return how it went."""
    from collab.linkage import LinkagePolicy
    from collab.warehouse import connect, link_units, load_submission
    from privacy.linkage import DEFAULT_THRESHOLD

    known = int(submission_units * KNOWN_SHARE)
    people = np.concatenate(
        [
            np.arange(0, warehouse_units, max(1, warehouse_units // known))[:known],
            np.arange(warehouse_units, warehouse_units + submission_units - known),
        ]
    )
    units = _units(people, "newcomer", SUBMISSION, _districts())
    contacts = path.with_name("newcomer-contacts.parquet")
    contacts_of_units(units).write_parquet(contacts)
    policy = LinkagePolicy(linking=("earlier-a", "earlier-b", "newcomer"), threshold=DEFAULT_THRESHOLD)
    with connect(path) as con:
        result = load_submission(
            con,
            submission_id=SUBMISSION,
            charity_id="newcomer",
            file_name="newcomer.csv",
            sha256="0" * 64,
            received_at=dt.datetime(2026, 4, 1, tzinfo=dt.UTC),
            contacts=contacts,
            standard_version="bench",
            units=units,
            linkage=policy,
        )
        relinked = link_units(con, policy)
        linked = con.execute(
            """
            SELECT count(*) FROM linkage_clusters l JOIN linkage_units u USING (unit_key)
            WHERE u.charity_id = 'newcomer'
              AND l.cluster_key IN (SELECT cluster_key FROM linkage_clusters GROUP BY 1 HAVING count(*) > 1)
            """
        ).fetchone()[0]
    return (
        f"loaded {result.rows_loaded:,} rows; {relinked.units:,} units, {relinked.clusters:,} clusters; {linked:,} of "
        "the newcomer's units linked"
    )


def anchor(path: Path) -> str:
    from collab.warehouse import connect

    with connect(path) as con:
        con.execute("CREATE OR REPLACE TABLE units_copy AS SELECT * FROM linkage_units")
        con.execute("DROP TABLE units_copy")
    return "copied"


def _measure(stage: str, args: argparse.Namespace) -> tuple[float, float, float, str]:
    """Wall s, CPU s and peak RSS MB of one stage in its own process, and its last line (or its error)."""
    command = [sys.executable, "-m", "bench.relink", "--stage", stage, "--home", str(args.home)]
    command += ["--warehouse-units", str(args.warehouse_units), "--submission-units", str(args.submission_units)]
    started = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
        output = process.stdout.read() if process.stdout else ""
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        errors.seek(0)
        error = (errors.read().strip().splitlines() or ["?"])[-1]
    outcome = output.strip().splitlines()[-1] if os.waitstatus_to_exitcode(status) == 0 else f"FAILED: {error[:400]}"
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse-units", type=int, default=2_000_000)
    parser.add_argument("--submission-units", type=int, default=350_000)
    parser.add_argument("--home", type=Path, help="directory to build in (default: a new temporary one)")
    parser.add_argument("--stage", choices=("build", "load", "anchor"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        path = args.home / "warehouse.duckdb"
        if args.stage == "build":
            build(path, args.warehouse_units)
            print("built")
        elif args.stage == "load":
            print(load(path, args.warehouse_units, args.submission_units))
        else:
            print(anchor(path))
        return
    with tempfile.TemporaryDirectory(prefix="collab-relink-") as scratch:
        args.home = (args.home or Path(scratch)).resolve()
        args.home.mkdir(parents=True, exist_ok=True)
        print(
            f"warehouse units {args.warehouse_units:,}, submission units {args.submission_units:,}, cores {os.cpu_count()}"
        )
        figures = {stage: _measure(stage, args) for stage in ("build", "anchor", "load")}
        for stage, (wall, cpu, rss, outcome) in figures.items():
            print(f"{stage:<7} {wall:>7.1f} s wall {cpu:>7.1f} s CPU {rss:>7,.0f} MB peak RSS  {outcome}")
        print(
            f"load / anchor: {figures['load'][0] / figures['anchor'][0]:.1f}x wall, "
            f"{figures['load'][1] / figures['anchor'][1]:.1f}x CPU"
        )


if __name__ == "__main__":
    main()
