"""One sheet of a workbook read whole in a process of its own, whose memory is watched.

fastexcel holds every cell of a sheet's span at once, filled or not, so what reading a sheet costs is known only by
reading it: a 34 MB workbook of 450,000 rows took 700 MB, and a 2 KB one holding a single value at T1048576 took
1.1 GB. A sheet that may be that large (``reading.SheetCells.may_be_large``) is read by a child process, stopped if
its resident memory passes ``MAX_READING_MB``: the sheet is then refused (``E_SHEET_TOO_LARGE``), and nothing else
is held up. A child that fails to allocate (fastexcel aborts the whole process) takes nothing with it either.

The child writes the sheet, every cell as text, to an Arrow IPC file, which the caller reads (and can read again
without a second parse). Memory is watched where the system shows it (``/proc``, on Linux, where the pipeline and
the portal run); elsewhere the child only isolates.

Run as ``python -m standards.sheet_process WORKBOOK OUT SHEET``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from standards.issues import FileRejected

# The child's limit: with the process that reads the Arrow file (the sheet as text, smaller than fastexcel's cells),
# each stays within 1 GB. The child starts at about 60 MB.
MAX_READING_MB = 900
# How often the child's memory is looked at: fastexcel fills memory at a few hundred MB a second, so the child is
# stopped within a few MB of the limit.
_WATCH_SECONDS = 0.02
_FAILED = 3
# The most cells in one piece of the Arrow file: a piece of 2,000,000 cells of text (133,000 rows of 15 columns) is
# some tens of MB.
PIECE_CELLS = 2_000_000
_PR_SET_PDEATHSIG = 1
_WATCHER = "COLLAB_SHEET_WATCHER"  # the pid of the process that started the child, which should still be its parent  # the child's exit code when fastexcel raised: the workbook is damaged


class SheetUnreadable(Exception):
    """fastexcel could not read the sheet, or the child reading it died; the message is for the analyst's log."""


def workbook_source(path: Path) -> str | bytes:
    """What fastexcel opens a workbook from: its path, or its bytes when its name does not end in .xlsx or .xlsm.
    Given a path, fastexcel goes by the name, and an .xlsx saved as "contacts.xls" was called damaged; given the
    bytes it goes by what they are (the file is an .xlsx by its bytes, or it would not be read as one)."""
    return str(path) if path.suffix.lower() in (".xlsx", ".xlsm") else path.read_bytes()


def read_sheet_apart(workbook: Path, sheet: str, out: Path) -> Path:
    """The sheet ``sheet`` of ``workbook``, every cell as text, written by a child process to the Arrow IPC file
    ``out`` (returned). Refused as ``E_SHEET_TOO_LARGE`` if reading it takes the child past ``MAX_READING_MB``;
    ``SheetUnreadable`` if fastexcel cannot read it or the child dies."""
    command = [sys.executable, "-m", "standards.sheet_process", str(workbook), str(out), sheet]
    # Importable from where this module is, whether installed or run from a checkout.
    here = str(Path(__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])),
        _WATCHER: str(os.getpid()),
    }
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, env=env)
        peak = _watched(child)
        errors.seek(0)
        said = errors.read()[-2000:].decode(errors="replace").strip()
    if peak is None:
        raise FileRejected(
            "E_SHEET_TOO_LARGE",
            f"The sheet {sheet!r} needs more than {MAX_READING_MB:,} MB of memory to read, more than a sheet may "
            "take: Excel keeps every cell of it, filled or not. Save the sheet as CSV (File > Save As > CSV UTF-8), "
            "which is read a piece at a time whatever its size, or delete the rows below the table and the columns "
            "right of it.",
        )
    if child.returncode != 0:
        raise SheetUnreadable(f"the reading process ended with {child.returncode}: {said}")
    return out


def _watched(child: subprocess.Popen[bytes]) -> int | None:
    """Wait for ``child``; its largest resident memory seen (MB), or None if it passed ``MAX_READING_MB`` and was
    stopped."""
    peak = 0
    while True:
        try:
            child.wait(timeout=_WATCH_SECONDS)
            return peak
        except subprocess.TimeoutExpired:
            pass
        resident = _resident_mb(child.pid)
        if resident is None:
            continue
        peak = max(peak, resident)
        if resident > MAX_READING_MB:
            child.kill()
            child.wait()
            return None


def _resident_mb(pid: int) -> int | None:
    """A process's resident memory in MB, where ``/proc`` shows it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return None


def _read_and_write(workbook: Path, out: str, sheet: str) -> None:
    import fastexcel
    import polars as pl

    loaded = fastexcel.read_excel(workbook_source(workbook)).load_sheet(sheet, header_row=None, dtypes="string")
    frame = loaded.to_polars()
    del loaded
    # In pieces (Arrow record batches) of at most ``PIECE_CELLS``, which the reader takes one at a time.
    rows = max(1, PIECE_CELLS // max(1, frame.width))
    pieces = [frame.slice(start, rows) for start in range(0, frame.height, rows)] or [frame]
    pl.concat(pieces, rechunk=False).write_ipc(out, compression="lz4")


def _end_with_the_parent() -> None:
    """Have the kernel stop this process if the process that watches it ends (a `collab run` killed mid-file): the
    child would otherwise read on unwatched. Linux only; and not if the parent has already gone."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(os.environ.get(_WATCHER, "0")):
        raise SystemExit(_FAILED)


def main() -> None:
    _end_with_the_parent()
    workbook, out, sheet = sys.argv[1:]
    try:
        _read_and_write(Path(workbook), out, sheet)
    except Exception as error:  # fastexcel raises its own hierarchy for every kind of damage
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        raise SystemExit(_FAILED) from None


if __name__ == "__main__":
    main()
