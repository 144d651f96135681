"""Intake of one large standard CSV against DuckDB on the same file: `python -m bench.intake` (`make bench-intake`).

Generates a 1,000,000-row extract in the standard's own columns and codes (the demo's streamed
generator: its people, visits and about one mistake in 200 rows), then, each in its own process so
that peak memory is its own:
- ours: ``check_extract`` with the pipeline's ``StagingSink`` (accepted contacts written to Parquet, rejected
  rows to quarantine), as a submission's intake runs it, for a charity that links records (each reference's
  identity keyed into a linkage record) and for one that does not: half the demo's charities are each. Until
  2026-12-04 it measured a mixture of the two, neither the pipeline's (identities keyed, but not looked into);
- DuckDB: ``read_csv`` of the same file (types sniffed) into a table of a DuckDB file, closed (persisted);
- the charity's own command: `collab-check FILE --json --html --rejected-rows` as a charity runs it, start-up
  included (what a charity waits for); it lists every affected row in the two files besides checking;
- Great Expectations: the suite of ``check_staged_contacts_expectations`` on the Parquet ours staged,
  batch by batch as the asset check runs it. Importing GX, making its context and planning the suite
  (``collab.expectations.warm_up``) are timed apart: a process does them once, and `collab run`'s worker
  server does them before forking the workers that check submissions.
Times are of the work itself (interpreter start and imports excluded); CPU seconds count every thread.
Target: ours at least 40% of DuckDB's rows/s, Great Expectations at most 15% of our intake's time.
On a shared machine wall time moves with the load; CPU seconds move less. So the three are measured in
``--rounds`` rounds (each stage a new process every round, the three side by side in each round), and the
figures and ratios are of their medians, each stage's range printed beside them: one round's figures moved
by a quarter between two runs of the same code (2.98 to 3.66 s for ours).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

LINKAGE_KEY = b"bench-intake-linkage-key-32bytes"


def standard_profile() -> Any:
    """The first demo charity exporting the standard as the template has it: field names, codes, ISO dates."""
    from collab_demo.generator import PROFILES

    first = PROFILES[0]
    return replace(
        first,
        columns={name: name for name in first.columns},
        date_format="%Y-%m-%d",
        uses_labels=False,
        need_wording={},
        extra_columns=(),
    )


def _ours(path: Path, work: Path, *, links_records: bool = True) -> dict[str, Any]:
    """The pipeline's check of a submission (``assets.submissions.submission_quality``) for a charity that links
    records (identities keyed into linkage records as they are staged; the demo's first, whose extract this is),
    or for one that does not (no identity staged)."""
    from collab.staging import StagingSink
    from standards.check import CheckOptions, check_extract

    started = _clock()
    key = LINKAGE_KEY if links_records else None
    with StagingSink(work / "staging", work / "quarantine", linkage_key=key) as sink:
        report = check_extract(path, sink=sink, options=CheckOptions(links_records=links_records)).report
    return _since(started) | {"rows": report.rows_received, "accepted": report.rows_accepted, "status": report.status}


def _ours_unlinked(path: Path, work: Path) -> dict[str, Any]:
    return _ours(path, work / "unlinked", links_records=False)


def _duckdb(path: Path, work: Path) -> dict[str, Any]:
    import duckdb

    anchor = work / "anchor.duckdb"
    anchor.unlink(missing_ok=True)  # the last round's
    started = _clock()
    with duckdb.connect(str(anchor)) as con:
        con.execute("CREATE TABLE contacts AS SELECT * FROM read_csv(?, header = true)", [str(path)])
        rows = int(con.execute("SELECT count(*) FROM contacts").fetchone()[0])  # type: ignore[index]
    return _since(started) | {"rows": rows}


def _collab_check(path: Path, work: Path) -> dict[str, Any]:
    command = [
        str(Path(sys.executable).with_name("collab-check")),
        str(path),
        "--json",
        "--html",
        str(work / "report.html"),
        "--rejected-rows",
        str(work / "rejected.csv"),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in (0, 1):  # 1: the file is rejected, which is an answer too
        raise SystemExit("collab-check failed")
    report = json.loads(output)
    return {
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "rows": report["rows_received"],
    }


def _great_expectations(path: Path, work: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from collab.expectations import ExpectationRun, warm_up
    from collab.staging import CONTACTS_FILE

    started = _clock()
    warm_up()
    set_up = _since(started)
    run = ExpectationRun()
    run.validate_staged(work / "staging" / CONTACTS_FILE)
    rows = pq.ParquetFile(work / "staging" / CONTACTS_FILE).metadata.num_rows
    failed = [o.rule for o in run.outcomes.values() if not o.success]
    return _since(started) | {
        "rows": rows,
        "set_up_seconds": set_up["seconds"],
        "set_up_cpu_seconds": set_up["cpu_seconds"],
        "rules_failed": failed,
    }


def _clock() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), usage.ru_utime + usage.ru_stime


def _since(started: tuple[float, float]) -> dict[str, float]:
    wall, cpu = _clock()
    return {"seconds": wall - started[0], "cpu_seconds": cpu - started[1]}


STAGES = {
    "ours": _ours,
    "ours-unlinked": _ours_unlinked,
    "duckdb": _duckdb,
    "collab-check": _collab_check,
    "gx": _great_expectations,
}


def _measure(stage: str, path: Path, work: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.intake", "--stage", stage, "--file", str(path), "--work", str(work)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"stage {stage} failed")
    figures = json.loads(output.strip().splitlines()[-1])
    # The stage's own process, or the command it ran (``_collab_check``), whichever took more.
    return figures | {"peak_rss_mb": max(usage.ru_maxrss / 1024, figures.get("peak_rss_mb", 0))}


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the rounds (the largest peak memory), and the wall times' range."""
    walls = [figures["seconds"] for figures in rounds]
    numbers = [name for name, value in rounds[0].items() if isinstance(value, int | float) and name != "peak_rss_mb"]
    return (
        rounds[0]
        | {name: statistics.median(figures[name] for figures in rounds) for name in numbers}
        | {"peak_rss_mb": max(figures["peak_rss_mb"] for figures in rounds), "range": (min(walls), max(walls))}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three, whose medians are reported")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(STAGES[args.stage](args.file, args.work)))
        return
    from collab_demo.stream import write_charity_extract

    measured: dict[str, list[dict[str, Any]]] = {name: [] for name in STAGES}
    with tempfile.TemporaryDirectory(prefix="collab-intake-") as scratch:
        work = Path(scratch)
        path = work / "contacts-standard.csv"
        started = time.perf_counter()
        written = write_charity_extract(path, standard_profile(), contacts=args.rows)
        print(
            f"generated {written:,} rows ({path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - started:.1f} s; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        for _ in range(max(1, args.rounds)):
            for name in STAGES:  # gx validates what ours staged in the same round
                measured[name].append(_measure(name, path, work))
    ours, unlinked, duck, command, gx = (_summary(measured[name]) for name in STAGES)
    print(f"medians of {max(1, args.rounds)} rounds")
    print(f"{'':<22} {'rows':>10} {'wall s':>8} {'cpu s':>8} {'rows/s':>10} {'peak RSS MB':>12} {'wall s range':>14}")
    for name, figures in (
        ("ours, linking charity", ours),
        ("ours, not linking", unlinked),
        ("DuckDB read_csv", duck),
        ("collab-check", command),
        ("Great Expectations", gx),
    ):
        low, high = figures["range"]
        print(
            f"{name:<22} {figures['rows']:>10,.0f} {figures['seconds']:>8.2f} {figures['cpu_seconds']:>8.2f} "
            f"{figures['rows'] / figures['seconds']:>10,.0f} {figures['peak_rss_mb']:>12,.0f} {low:>6.2f}-{high:.2f}"
        )
    print(f"ours: {ours['accepted']:,.0f} accepted, {ours['status']}")
    for name, figures in (("a charity that links records", ours), ("one that does not", unlinked)):
        ratio = (figures["rows"] / figures["seconds"]) / (duck["rows"] / duck["seconds"])
        print(f"ours / DuckDB rows per second, {name}: {ratio:.1%} (target at least 40%)")
    validating = statistics.median(g["seconds"] - g["set_up_seconds"] for g in measured["gx"])
    validating_cpu = statistics.median(g["cpu_seconds"] - g["set_up_cpu_seconds"] for g in measured["gx"])
    print(
        f"Great Expectations / intake: {validating / ours['seconds']:.1%} of the wall time validating "
        f"({validating / unlinked['seconds']:.1%} of the intake of a charity not linking), "
        f"{validating_cpu / ours['cpu_seconds']:.1%} of the CPU time (target at most 15%); with importing GX, "
        f"making its context and planning the suite ({gx['set_up_seconds']:.1f} s, once per process) {gx['seconds'] / ours['seconds']:.1%} of the "
        f"wall time; rules failed: {sorted({rule for g in measured['gx'] for rule in g['rules_failed']}) or 'none'}"
    )
    print(f"ours / DuckDB rows per CPU second: {duck['cpu_seconds'] / ours['cpu_seconds']:.1%}")
    print(
        f"collab-check (start-up and the two row files included) / DuckDB rows per second: "
        f"{(command['rows'] / command['seconds']) / (duck['rows'] / duck['seconds']):.1%}"
    )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
