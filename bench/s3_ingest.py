"""A large extract through the S3 landing zone: upload with the charity's keys, then ingest.

    python -m bench.s3_ingest --megabytes 500

Starts a SeaweedFS server in a temporary workspace, onboards a charity with `collab charity add`,
uploads a generated CSV of the given size with `collab submit`, then ingests it in a separate
process (intake from S3 into staging, then the submission job: check, feedback, warehouse load).
Prints the upload time, where the ingestion's time goes, and the ingestion process's peak RSS
(target: under 1 GB for 500 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from collab.access import AccessStore
from collab.bucket import free_port
from collab.workspace import Workspace
from collab_demo.generator import PROFILES, generate_contacts, last_complete_quarters, write_extract

COLLAB = Path(sys.executable).with_name("collab")
MB = 1_000_000


def build_extract(directory: Path, megabytes: int) -> tuple[Path, int]:
    """A CSV of about ``megabytes`` MB in a charity's own format: 50,000 generated rows repeated,
    each copy with its own person references. Returns the path and its row count."""
    profile = PROFILES[0]
    seed = write_extract(
        profile, generate_contacts(50_000, [profile], last_complete_quarters(1), seed=7), directory / "seed"
    )
    header, body = seed.read_bytes().split(b"\n", 1)
    prefix = profile.id[:3].upper().encode() + b"-"
    target = directory / "large-extract.csv"
    rows, copy = 0, 0
    with target.open("wb") as out:
        out.write(header + b"\n")
        while out.tell() < megabytes * MB:
            out.write(body.replace(prefix, b"%s%03d-" % (prefix[:-1], copy)))
            rows += body.count(b"\n")
            copy += 1
    seed.unlink()
    return target, rows


def ingest() -> None:
    """The ingestion process (run as a child so its peak RSS is its own): intake, then the submission job."""
    from dagster import DagsterInstance

    from collab.landing import landing_zone_from_env
    from collab.registry import Registry
    from pipelines.runner import PendingFile, process_submissions

    samples: list[tuple[float, int]] = []

    def sample() -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while True:
            with open("/proc/self/statm") as statm:  # noqa: PTH123
                samples.append((time.time(), int(statm.read().split()[1]) * page))
            time.sleep(0.1)

    threading.Thread(target=sample, daemon=True).start()

    def peak(start: float, end: float) -> int:
        return max((rss for at, rss in samples if start <= at <= end), default=0)

    ws = Workspace.from_env()
    landed = landing_zone_from_env(ws.home).pending([c.id for c in Registry(ws).all()])
    # The run's first step, submission_file, takes the object from S3 into staging and hashes it.
    [outcome] = process_submissions(ws, [PendingFile.of_landed(obj) for obj in landed])
    stats = DagsterInstance.get().get_run_step_stats(outcome.run_id)
    steps = [s for s in stats if s.start_time and s.end_time]
    timed = {s.step_key: [s.end_time - s.start_time, peak(s.start_time, s.end_time)] for s in steps}
    print(
        json.dumps(
            {
                "intake": timed.pop("submission_file"),
                "steps": timed,
                "status": outcome.status,
                "rows_received": outcome.rows_received,
                "rows_accepted": outcome.rows_accepted,
            }
        )
    )


def run(command: list[str], env: dict[str, str]) -> tuple[str, float, int]:
    """Run a command; return its output, wall seconds and peak RSS in bytes (its own, from wait4)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    output, errors = process.stdout.read(), process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed:\n{errors.decode()[-3000:]}")
    return output.decode(), time.perf_counter() - started, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=100, help="size of the extract (the target figure is for 500)")
    parser.add_argument(
        "--batch-rows", type=int, help="rows checked and loaded at a time (settings: intake.batch_rows)"
    )
    parser.add_argument("--ingest", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ingest:
        ingest()
        return
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as directory:
        ws = Workspace(Path(directory) / "var")
        ws.init()
        if args.batch_rows:
            settings = ws.settings.model_copy(deep=True)
            settings.intake.batch_rows = args.batch_rows
            ws.save_settings(settings)
        print(f"batch rows: {ws.settings.intake.batch_rows:,}")
        store = AccessStore(ws)
        state = store.serve(free_port())
        try:
            env = {**os.environ, **ws.environment(), **store.environment(state.endpoint)}
            mapping = Path(directory) / "mapping.yaml"
            PROFILES[0].mapping().dump(mapping)
            added, _, _ = run(
                [str(COLLAB), "charity", "add", PROFILES[0].id, "--name", "Bench", "--mapping", str(mapping), "--json"],
                env,
            )
            credentials = Path(directory) / "credentials.json"
            credentials.write_text(added)
            started = time.perf_counter()
            extract, rows = build_extract(Path(directory), args.megabytes)
            size = extract.stat().st_size
            print(f"extract: {size / MB:,.0f} MB, {rows:,} rows (generated in {time.perf_counter() - started:.0f} s)")

            _, upload_seconds, upload_rss = run(
                [str(COLLAB), "submit", "--credentials", str(credentials), str(extract), "--json"], env
            )
            extract.unlink()
            print(
                f"upload (collab submit):  {upload_seconds:7.1f} s  {size / MB / upload_seconds:6.1f} MB/s  "
                f"peak RSS {upload_rss / MB:,.0f} MB"
            )

            output, ingest_seconds, ingest_rss = run([sys.executable, "-m", "bench.s3_ingest", "--ingest"], env)
            report = json.loads(output.strip().splitlines()[-1])
            print(
                f"ingestion process:       {ingest_seconds:7.1f} s  {size / MB / ingest_seconds:6.1f} MB/s  "
                f"peak RSS {ingest_rss / MB:,.0f} MB ({ingest_rss / (1000 * MB):.2f} of the 1 GB target)"
            )
            print(f"  {'step':<55} {'seconds':>7}  {'peak RSS':>9}")
            for step, (seconds, rss) in {
                "intake (S3 -> staging, hashing)": report["intake"],
                **report["steps"],
            }.items():
                print(f"  {step:<55} {seconds:7.1f}  {rss / MB:6,.0f} MB")
            print(
                f"  status {report['status']}: {report['rows_accepted']:,} of {report['rows_received']:,} rows accepted"
            )
        finally:
            store.server.stop(timeout=5)


if __name__ == "__main__":
    main()
