"""Many tiny files: `python -m bench.small_files [--postgres]` (`make bench-small-files`).

Fifty files of 100 rows each (one charity apiece) go through `collab run` (the user's path: intake,
check, feedback, load, one Dagster run per submission), on the default SQLite instance or, with
``--postgres``, on the production profile's PostgreSQL instance (a private server started here, as the
system test does). Prints files per minute, wall and CPU seconds per submission, and cores used (CPU s
/ wall s). The anchor, measured in the same run on the same files: ``check_extract`` alone on each file
in one process, the standard's check with no Dagster, staging or warehouse around it; the ratio is what
the pipeline costs per file beyond checking it. Targets: at least 60 files/min on SQLite (2 cores) and
120 on PostgreSQL. CPU seconds are `collab run`'s and its workers' (not the PostgreSQL server's). On a
shared machine wall time moves with the load; CPU seconds less so.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import contact_rows, write_csv

TARGETS = {"sqlite": 60.0, "postgres": 120.0}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _collab(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from pipelines.cli import main; main()", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True)


def prepare(home: Path, extracts: Path, files: int, rows: int, database: str) -> None:
    """A workspace with one charity per file, each file dropped in its landing area, settle time zero."""
    from collab.landing import LocalLandingZone
    from collab.registry import Registry
    from collab.workspace import Workspace

    workspace = Workspace(home)
    home.mkdir(parents=True)
    settings = workspace.settings.model_copy(deep=True)
    settings.intake.settle_seconds = 0
    settings.instance.database = database  # type: ignore[assignment]
    workspace.save_settings(settings)
    workspace.init()
    landing = LocalLandingZone(root=str(home))
    extracts.mkdir(parents=True, exist_ok=True)
    registry = Registry(workspace)
    for index in range(files):
        charity = f"pantry-{index:02d}"
        registry.add(charity, f"Pantry {index}", None)
        path = extracts / f"{charity} contacts.csv"
        write_csv(path, contact_rows(rows, prefix=f"C{index:02d}-"))
        landing.drop(charity, path)


def anchor_seconds(extracts: Path) -> tuple[float, float]:
    """Wall and CPU seconds of ``check_extract`` alone on every file, in this process."""
    from standards.check import check_extract

    paths = sorted(extracts.glob("*.csv"))
    check_extract(paths[0])  # imports and first-call caches are not the files' cost
    wall, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        result = check_extract(path)
        assert result.report.accepted, result.report.headline()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--postgres", action="store_true", help="run on the PostgreSQL instance (private server)")
    parser.add_argument("--keep", action="store_true", help="keep the workspace and print where it is")
    args = parser.parse_args(argv)
    database = "postgres" if args.postgres else "sqlite"
    root = Path(tempfile.mkdtemp(prefix="collab-bench-small-"))
    server = None
    try:
        home, extracts = root / "var", root / "extracts"
        env = {**os.environ, "COLLAB_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
        if args.postgres:
            from collab.postgres import LocalPostgres
            from collab.workspace import POSTGRES_URL_VARIABLE

            # Its own directory, not under ours: that is private to us, and under root the server runs as `postgres`.
            server_dir = Path(tempfile.mkdtemp(prefix="collab-postgres-"))
            server = LocalPostgres(server_dir)
            server.start()
            env[POSTGRES_URL_VARIABLE] = os.environ[POSTGRES_URL_VARIABLE] = server.url()
        os.environ.update(COLLAB_HOME=env["COLLAB_HOME"], DAGSTER_HOME=env["DAGSTER_HOME"])
        prepare(home, extracts, args.files, args.rows, database)
        load_before = os.getloadavg()[0]

        cpu_before, wall_before = _children_cpu(), time.perf_counter()
        result = _collab(env, "run", "--json")
        wall, cpu = time.perf_counter() - wall_before, _children_cpu() - cpu_before
        report = json.loads(result.stdout)
        statuses = [s["status"] for s in report["submissions"]]
        if statuses.count("accepted") != args.files:
            raise SystemExit(f"expected {args.files} accepted submissions, got {statuses}")
        anchor_wall, anchor_cpu = anchor_seconds(extracts)
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(server.directory, ignore_errors=True)
        if args.keep:
            print(f"workspace kept at {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    files_per_minute = args.files / wall * 60
    target = TARGETS[database]
    print(f"{args.files} files of {args.rows} rows through `collab run` on the {database} instance")
    print(f"  wall {wall:.1f} s, CPU {cpu:.1f} s, cores used {cpu / wall:.2f} (machine: {os.cpu_count()} cores)")
    print(
        f"  {files_per_minute:.0f} files/min (target >= {target:.0f}: {'met' if files_per_minute >= target else 'NOT met'})"
    )
    print(f"  per submission: {wall / args.files:.3f} s wall, {cpu / args.files:.3f} s CPU")
    print(f"anchor: check_extract alone on the same files: {anchor_wall:.2f} s wall, {anchor_cpu:.2f} s CPU")
    print(
        f"  per file: {anchor_wall / args.files * 1000:.1f} ms, {args.files / anchor_wall * 60:.0f} files/min; "
        f"`collab run` takes {wall / anchor_wall:.0f}x its wall time and {cpu / max(anchor_cpu, 1e-9):.0f}x its CPU"
    )
    print(f"  pipeline overhead per submission beyond the check: {(cpu - anchor_cpu) / args.files:.3f} s CPU")
    print(f"load average (1 min) before the run {load_before:.2f}, after it {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
