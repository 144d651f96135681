"""The whole collaborative at scale: `python -m bench.scale --contacts N` (`make bench-scale`).

Stages, each in its own process so its wall time, CPU seconds (its worker processes included) and peak
resident memory are its own: generate the streamed demo, register the charities and drop the files,
run every submission (intake: check, feedback, load), release every quarter, publish every release.
The anchor, measured in the same run on the same files: DuckDB's `read_csv` of every extract into a
table, the least any intake of these files could cost. Prints rows per second, cores used (CPU / wall)
and warehouse bytes per contact. On a shared machine wall time moves with the load; CPU seconds less.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEMO_SEED = 2026
# What each landed file became, written by the intake stage for the report.
OUTCOMES_FILE = "bench-intake-outcomes.json"


@dataclass
class Stage:
    name: str
    wall: float
    cpu: float
    peak_rss_mb: float
    rows: int

    @property
    def cores(self) -> float:
        return self.cpu / self.wall if self.wall else 0.0


def _stage_in_process(stage: str, home: Path, contacts: int, charities: int, quarters: int) -> int:
    """Run one stage here and return the rows it handled (the parent measures the process)."""
    from collab.registry import Registry
    from collab.workspace import Workspace

    workspace = Workspace(home)
    if stage == "generate":
        from collab_demo.stream import generate_streaming

        return generate_streaming(
            workspace.demo, contacts=contacts, charities=charities, quarters=quarters, seed=DEMO_SEED
        ).contacts
    if stage == "drop":
        from collab.landing import LocalLandingZone
        from collab_demo.stream import streamed_profiles

        workspace.init()
        summary = json.loads((workspace.demo / "truth" / "summary.json").read_text(encoding="utf-8"))
        settings = workspace.settings.model_copy(deep=True)
        settings.intake.settle_seconds = 0
        # As `collab demo` declares it, the collaborative reports from the data's first quarter: else the calendar
        # starts at today's, and no quarter is released. A budget for its four quarters: a release costs the
        # worst-case person 3.12 (five units: the four charities that do not link, and a linked cluster).
        settings.publication.first_quarter = summary["quarters"][0]
        settings.privacy.period_rho, settings.privacy.lifetime_rho = 4.0, 16.0
        workspace.save_settings(settings)
        landing = LocalLandingZone(root=str(home))
        registry = Registry(workspace)
        for profile in streamed_profiles(charities):
            registry.add(profile.id, profile.name, profile.mapping(), linkage=profile.linkage)
            if profile.named:
                registry.set_publish_name(profile.id, True)
        for path in map(Path, summary["files"]):
            landing.drop(path.parent.name, path)
        return len(summary["files"])
    if stage == "anchor":
        return _duckdb_anchor(home)
    from pipelines.runner import approve_and_publish, process_submissions, release_quarter

    if stage == "intake":
        from collab.landing import landing_zone_from_env
        from pipelines.runner import PendingFile

        charity_ids = [c.id for c in Registry(workspace).all()]
        files = [PendingFile.of_landed(obj) for obj in landing_zone_from_env(home).pending(charity_ids)]
        outcomes = process_submissions(workspace, files)
        (home / OUTCOMES_FILE).write_text(json.dumps([dataclasses.asdict(o) for o in outcomes]), encoding="utf-8")
        return sum(o.rows_received for o in outcomes)
    from collab.invariants import first_quarter
    from collab.warehouse import connect, unreleased_complete_quarters

    first = first_quarter(Registry(workspace), workspace.settings.publication.first_quarter)
    with connect(workspace.warehouse_path, read_only=True) as con:
        contacts_stored = int(con.execute("SELECT count(*) FROM contacts").fetchone()[0])
        periods = unreleased_complete_quarters(con, first) if stage == "release" else []
    if stage == "release":
        if not periods:
            raise SystemExit(f"no quarter to release from {first}: every file's quarter should be")
        outcomes = [release_quarter(workspace, period) for period in periods]
        failed = [o for o in outcomes if o.error or not o.release_id]
        if failed:
            raise SystemExit(f"releases failed: {failed}")
        (home / "bench-releases.json").write_text(json.dumps([o.release_id for o in outcomes]), encoding="utf-8")
        return contacts_stored
    if stage == "publish":
        # As an analyst approves a year's quarters: at once, the site rebuilt once.
        release_ids = json.loads((home / "bench-releases.json").read_text(encoding="utf-8"))
        for outcome in approve_and_publish(workspace, release_ids, actor="bench"):
            if not outcome.published or outcome.site_error:
                raise SystemExit(f"{outcome.release_id} was not published: {outcome.error or outcome.site_error}")
        return contacts_stored
    raise SystemExit(f"unknown stage {stage}")


def _duckdb_anchor(home: Path) -> int:
    """DuckDB reading every extract into one table per file: the floor for reading these files."""
    import duckdb

    from collab_demo.generator import PROFILES

    profiles = {p.id: p for p in PROFILES}
    rows = 0
    with duckdb.connect(str(home / "anchor.duckdb")) as con:
        for index, path in enumerate(sorted((home / "demo" / "extracts").glob("*/*.csv"))):
            profile = profiles[path.parent.name]
            if profile.encoding == "cp1252":  # DuckDB reads cp1252 only through an extension: transcode (timed)
                path = _transcoded(path, home / "anchor" / path.name)
            con.execute(
                f"CREATE TABLE extract_{index} AS SELECT * FROM read_csv(?, delim = ?, header = true, all_varchar = true)",
                [str(path), profile.delimiter],
            )
            rows += int(con.execute(f"SELECT count(*) FROM extract_{index}").fetchone()[0])
    return rows


def _transcoded(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open(encoding="cp1252", newline="") as reader, target.open("w", encoding="utf-8", newline="") as writer:
        while chunk := reader.read(1 << 22):
            writer.write(chunk)
    return target


def _measure(name: str, home: Path, args: argparse.Namespace) -> Stage:
    command = [sys.executable, "-m", "bench.scale", "--stage", name, "--home", str(home)]
    command += ["--contacts", str(args.contacts), "--charities", str(args.charities), "--quarters", str(args.quarters)]
    env = {**os.environ, "COLLAB_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)  # its usage, the worker processes it waited for included
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"stage {name} failed")
    rows = int(output.strip().splitlines()[-1])
    return Stage(name, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--charities", type=int, default=8)
    parser.add_argument("--quarters", type=int, default=4)
    parser.add_argument("--home", type=Path, help="workspace to use (default: a new temporary one, removed after)")
    parser.add_argument("--generate-only", action="store_true", help="measure the streamed demo generator alone")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(_stage_in_process(args.stage, args.home, args.contacts, args.charities, args.quarters))
        return
    with tempfile.TemporaryDirectory(prefix="collab-scale-") as scratch:
        home = (args.home or Path(scratch) / "var").resolve()
        if args.generate_only:
            generated = _measure("generate", home, args)
            print(
                f"generated {generated.rows:,} contacts: {generated.wall:.1f} s wall, {generated.cpu:.1f} s CPU, ",
                end="",
            )
            print(f"peak RSS {generated.peak_rss_mb:,.0f} MB")
            return
        stages = [_measure(name, home, args) for name in ("generate", "drop", "intake", "release", "publish")]
        stages.append(_measure("anchor", home, args))
        warehouse_bytes = (home / "warehouse.duckdb").stat().st_size
        _report(args, stages, warehouse_bytes)
        _report_outcomes(json.loads((home / OUTCOMES_FILE).read_text(encoding="utf-8")))


def _report(args: argparse.Namespace, stages: list[Stage], warehouse_bytes: int) -> None:
    print(f"contacts {args.contacts:,}, charities {args.charities}, quarters {args.quarters}, cores {os.cpu_count()}")
    print(f"{'stage':<9} {'wall s':>8} {'cpu s':>8} {'cores':>6} {'rows':>11} {'rows/s':>10} {'peak RSS MB':>12}")
    for s in stages:
        print(
            f"{s.name:<9} {s.wall:>8.1f} {s.cpu:>8.1f} {s.cores:>6.2f} {s.rows:>11,} "
            f"{s.rows / s.wall:>10,.0f} {s.peak_rss_mb:>12,.0f}"
        )
    by_name = {s.name: s for s in stages}
    pipeline = [by_name[n] for n in ("drop", "intake", "release", "publish")]
    wall, cpu = sum(s.wall for s in pipeline), sum(s.cpu for s in pipeline)
    contacts = by_name["release"].rows
    print(f"dropped files to published releases: {wall:.1f} s wall, {cpu:.1f} s CPU ({cpu / wall:.2f} cores)")
    print(f"warehouse: {warehouse_bytes / 1e6:,.1f} MB, {warehouse_bytes / contacts:.1f} bytes per contact")
    anchor = by_name["anchor"]
    print(
        f"intake / DuckDB read_csv of the same files: {by_name['intake'].wall / anchor.wall:.1f}x wall, "
        f"{by_name['intake'].cpu / anchor.cpu:.1f}x CPU"
    )


def _report_outcomes(outcomes: list[dict[str, Any]]) -> None:
    """What became of each file: a run that failed, or rows never received, would otherwise pass unseen."""
    statuses = Counter(o["status"] for o in outcomes)
    print("submissions: " + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())))
    for o in outcomes:
        if o["status"] not in {"accepted", "accepted_with_warnings"}:
            detail = " ".join(o["codes"]) or o.get("reason") or ""
            print(
                f"  {o['status']}: {o['charity_id']}/{o['file_name']} ({o['rows_received']:,} rows) {detail}".rstrip()
            )


if __name__ == "__main__":
    main()
