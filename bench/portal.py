"""The charity portal under load: a 100,000-row workbook checked through the browser's path, and a
500 MB upload's effect on the server's memory.

    python -m bench.portal [--rows 100000] [--megabytes 500]

Starts `collab portal serve` in a temporary workspace and signs in as a charity, then:

1. (run second) Time to first feedback: upload a generated XLSX of ``--rows`` rows and follow the redirect to the
   report page (what the charity waits for). Anchor, measured in the same run: `check_extract` on the
   same file in this process, with no server; the ratio is the portal's overhead.
2. Peak RSS of the server process (sampled every 50 ms from /proc) while a ``--megabytes`` MB file
   streams in (chunked, never whole in this process's memory either), first, on the fresh server.
   The file's header names no field of the standard, so the check rejects it at once and the figure
   is the upload's alone. Anchor: the server's RSS just before the upload.

3. Check rounds each demo charity format needs to reach an accepted file through the mapping form.

Targets (issue 12): first feedback under 20 s on 2 cores; peak RSS under 300 MB during 500 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests
import xlsxwriter

from collab.bucket import free_port
from collab.landing import LocalLandingZone
from collab.portal import accounts
from collab.portal.mapping_form import mapping_form, mapping_from_answers
from collab.registry import Registry
from collab.workspace import Workspace
from collab_demo.generator import PROFILES, generate_contacts, last_complete_quarters, write_extract
from standards.check import check_extract
from standards.mapping import CharityMapping

COLLAB = Path(sys.executable).with_name("collab")
MB = 1_000_000
CHUNK = 1024 * 1024


def write_workbook(path: Path, rows: int) -> Path:
    """A charity's workbook: its own headers, day-first dates, a few rows with problems."""
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = workbook.add_worksheet("Contacts")
    sheet.write_row(0, 0, ["Client ID", "Visit Date", "Reason for referral", "Post Code", "Age", "Monthly Income"])
    needs = ["Food", "Fuel", "Debt advice", "Housing", "Benefits"]
    postcodes = ["B15 2TT", "S1 2AB", "LS1 4AP", "NE1 7RU", "CF10 3AT", "G2 1DY"]
    start = dt.date(2026, 1, 5)
    for i in range(rows):
        seen = "not known" if i % 97 == 0 else (start + dt.timedelta(days=i % 80)).strftime("%d/%m/%Y")
        sheet.write_row(i + 1, 0, [f"P{i:06d}", seen, needs[i % 5], postcodes[i % 6], 18 + i % 60, 900 + i % 700])
    workbook.close()
    return path


def rss_bytes(pid: int) -> int:
    with Path(f"/proc/{pid}/status").open() as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Sampler:
    """The peak RSS of a process over a window, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._running = pid, 0, True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._running:
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(0.05)

    def stop(self) -> int:
        self._running = False
        self._thread.join()
        return self.peak


def multipart(csrf: str, name: str, path: Path, boundary: str) -> Iterator[bytes]:
    """A multipart body streamed from disk, chunk by chunk."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{csrf}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def rounds_to_accept(directory: Path) -> None:
    """Check rounds each of the demo's charity formats needs when the charity accepts every suggestion of
    the mapping form (and, where none is offered, the first code listed): what a new charity faces."""
    for profile in PROFILES:
        frame = generate_contacts(2_000, [profile], last_complete_quarters(1), seed=3)
        path = write_extract(profile, frame, directory / profile.id)
        mapping, statuses = CharityMapping(), []
        for _ in range(4):
            report = check_extract(path, mapping=mapping).report
            statuses.append(report.status)
            to_map = [g.code for g in report.issues if g.code.endswith("_UNKNOWN_CODE") or g.code == "E_MISSING_COLUMN"]
            if report.accepted and not to_map:
                break
            form = mapping_form(path, mapping)
            answers = {f"column-{i}": c.chosen or "" for i, c in enumerate(form.columns)}
            answers |= {f"value-{i}": v.chosen or v.codes[0] for i, v in enumerate(form.values)}
            mapping = mapping_from_answers(form, answers | {"date_format": form.date_format or ""}, mapping)
        print(f"rounds: {profile.id} ({path.suffix}): {len(statuses)} check(s): {' -> '.join(statuses)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--megabytes", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-portal-") as scratch:
        home = Path(scratch) / "var"
        workspace = Workspace(home)
        workspace.init()
        Registry(workspace).add("bench-pantry", "Bench Pantry")
        LocalLandingZone(str(home)).create_area("bench-pantry")
        password = accounts.issue_password(workspace, "bench-pantry")
        port = free_port()
        env = {**os.environ, **workspace.environment()}
        limit = str(args.megabytes + 50)
        server = subprocess.Popen(
            [str(COLLAB), "portal", "serve", "--port", str(port), "--max-upload-mb", limit], env=env
        )
        url = f"http://127.0.0.1:{port}"
        try:
            while True:
                try:
                    requests.get(url + "/sign-in", timeout=2)
                    break
                except requests.ConnectionError:
                    time.sleep(0.3)
            client = requests.Session()
            form = client.get(url + "/sign-in").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
            signed = client.post(url + "/sign-in", data={"csrf": csrf, "charity": "bench-pantry", "password": password})
            csrf = re.search(r'name="csrf" value="([^"]+)"', signed.text).group(1)  # type: ignore[union-attr]

            big = Path(scratch) / "large.csv"
            line = b"a,b,c,d,e,f,g,h\n" + b"x" * 200 + b"\n"
            with big.open("wb") as out:
                out.write(b"alpha,beta,gamma,delta,epsilon,zeta,eta,theta\n")
                block = line * (CHUNK // len(line))
                while out.tell() < args.megabytes * MB:
                    out.write(block)
            size = big.stat().st_size
            before = rss_bytes(server.pid)  # the server as started and signed in: nothing checked yet
            sampler = Sampler(server.pid)
            boundary = "benchportal" + os.urandom(8).hex()
            started = time.perf_counter()
            response = client.post(
                url + "/check",
                data=multipart(csrf, "large.csv", big, boundary),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            upload_seconds = time.perf_counter() - started
            peak = sampler.stop()
            assert response.status_code == 200, response.text[:300]
            print(
                f"{size / MB:,.0f} MB upload: {upload_seconds:.1f} s; server RSS {before / MB:.0f} MB before, peak "
                f"{peak / MB:.0f} MB during (growth {(peak - before) / MB:.0f} MB, "
                f"{(peak - before) / size:.3f} of the file's size; target peak < 300 MB)"
            )
            workbook = write_workbook(Path(scratch) / "contacts.xlsx", args.rows)
            print(f"workbook: {args.rows:,} rows, {workbook.stat().st_size / MB:.1f} MB", flush=True)
            started = time.perf_counter()
            anchor = check_extract(workbook).report
            anchor_seconds = time.perf_counter() - started
            sampler = Sampler(server.pid)
            started = time.perf_counter()
            with workbook.open("rb") as handle:
                page = client.post(url + "/check", data={"csrf": csrf}, files={"file": ("contacts.xlsx", handle)})
            portal_seconds = time.perf_counter() - started
            check_peak = sampler.stop()
            assert page.status_code == 200 and "/check/" in page.url, page.text[:300]
            print(
                f"time to first feedback: {portal_seconds:.1f} s through the portal; check_extract alone "
                f"{anchor_seconds:.1f} s (ratio {portal_seconds / anchor_seconds:.2f}); status {anchor.status}, "
                f"{anchor.rows_rejected:,} rows not accepted (target < 20 s on 2 cores); server RSS peak during the "
                f"check {check_peak / MB:.0f} MB"
            )

        finally:
            server.terminate()
            server.wait(timeout=30)
        rounds_to_accept(Path(scratch))


if __name__ == "__main__":
    main()
