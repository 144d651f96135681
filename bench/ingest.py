"""Ingestion throughput: `check_extract` on generated demo extracts of growing size.

Prints rows per second and seconds per 100k rows for CSV and Excel, so a change that slows the
reader, the normaliser or the validator shows up as a ratio against the previous run. CPU seconds
(all threads) are printed too: on a shared machine they move far less than wall-clock time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import polars as pl

from collab_demo.generator import PROFILES, generate_contacts, last_complete_quarters, write_extract
from standards.check import check_extract


class _Discard:
    def accepted(self, contacts: pl.DataFrame) -> None:
        self.rows = getattr(self, "rows", 0) + contacts.height

    def rejected(self, rows: object) -> None:
        return None


def _warm_up(quarters: list[str]) -> None:
    """Imports and the Great Expectations context cost seconds once per process: not per file."""
    with tempfile.TemporaryDirectory() as directory:
        path = write_extract(
            PROFILES[0], generate_contacts(200, [PROFILES[0]], quarters, seed=0), Path(directory) / "w"
        )
        check_extract(path, mapping=PROFILES[0].mapping())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    quarters = last_complete_quarters(1)
    _warm_up(quarters)
    print(f"{'format':<6} {'rows':>9} {'seconds':>8} {'rows/s':>10} {'s per 100k':>10} {'cpu s':>8}")
    for rows in args.rows:
        for profile in (PROFILES[0], PROFILES[1]):  # a CSV and an Excel charity
            contacts = generate_contacts(rows, [profile], quarters, seed=1)
            with tempfile.TemporaryDirectory() as directory:
                path = write_extract(profile, contacts, Path(directory) / "extract")
                started, cpu_started = time.perf_counter(), time.process_time()
                report = check_extract(path, mapping=profile.mapping(), sink=_Discard()).report
                seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            print(
                f"{profile.file_format:<6} {report.rows_received:>9,} {seconds:>8.2f} "
                f"{report.rows_received / seconds:>10,.0f} {100_000 * seconds / report.rows_received:>10.2f} "
                f"{cpu:>8.2f}"
            )


if __name__ == "__main__":
    main()
