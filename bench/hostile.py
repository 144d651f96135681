"""The hostile corpus: each file's code, seconds and peak memory, `python -m bench.hostile`.

Every file of ``tests/fixtures/bad`` plus two too large to build in the test suite (a 200 MB file on one
line, a 4.7 MB file of 100,000 columns) is checked by `collab-check --json` in its own process, whose
peak resident memory the kernel reports (``wait4``). The anchor is the same command on the clean
baseline file, measured in the same run: what a charity waits for on any file. None may crash (exit 0
or 1 with a JSON report) or pass 1 GB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fixtures.bad.corpus import CASES, build

LIMIT_BYTES = 1024**3
CHECK = [sys.executable, "-c", "from standards.cli import main; main()"]


def _single_line(path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("Client ID,Visit Date,Reason for referral,Post Code\n")
        for _ in range(200):
            out.write("x" * 1_048_576)
        out.write("\n")


def _wide(path: Path) -> None:
    header = ",".join(f"column {i}" for i in range(100_000))
    row = ",".join("1" for _ in range(100_000))
    path.write_text("\n".join([header, *[row] * 20]) + "\n", encoding="utf-8")


def _measure(path: Path) -> tuple[str, float, int, str]:
    """(error codes, seconds, peak RSS bytes, status) of checking one file in a fresh process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen([*CHECK, str(path), "--json"], stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = exit_code = os.waitstatus_to_exitcode(status)
        peak = usage.ru_maxrss * 1024  # kilobytes on Linux
        out.seek(0)
        err.seek(0)
        if exit_code not in (0, 1):
            return "", seconds, peak, f"CRASH exit {exit_code}: {err.read().decode()[-300:]}"
        report = json.loads(out.read())
    codes = " ".join(group["code"] for group in report["issues"] if group["severity"] == "error")
    return codes, seconds, peak, report["status"]


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        paths = build(root / "corpus")
        _single_line(root / "two-hundred-megabytes-one-line.csv")
        _wide(root / "hundred-thousand-columns.csv")
        paths["two-hundred-megabytes-one-line.csv"] = root / "two-hundred-megabytes-one-line.csv"
        paths["hundred-thousand-columns.csv"] = root / "hundred-thousand-columns.csv"
        anchor = _measure(paths["utf-8.csv"])[1]
        print(f"anchor: collab-check on the clean baseline file: {anchor:.2f} s\n")
        print(f"{'file':40} {'status':24} {'error codes':28} {'s':>7} {'×anchor':>8} {'peak MB':>8}")
        worst, crashed = 0, []
        expected = {case.name: case for case in CASES}
        for name in sorted(paths, key=lambda n: paths[n].stat().st_size):
            codes, seconds, peak, status = _measure(paths[name])
            worst = max(worst, peak)
            if status.startswith("CRASH"):
                crashed.append(name)
            marker = (
                ""
                if name not in expected or expected[name].status == status
                else "  (expected " + expected[name].status + ")"
            )
            print(
                f"{name:40} {status[:24]:24} {codes[:28]:28} {seconds:7.2f} {seconds / anchor:8.2f} {peak / 1e6:8.0f}{marker}"
            )
        print(f"\nworst peak RSS: {worst / 1e6:,.0f} MB (limit {LIMIT_BYTES / 1e6:,.0f} MB); crashes: {len(crashed)}")
        if crashed or worst > LIMIT_BYTES:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
