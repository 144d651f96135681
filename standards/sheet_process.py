"""A workbook's sheets read in a process of their own, whose memory is watched.

fastexcel (calamine) holds every cell of a sheet's span at once, filled or not, and a copy of a shared string in
every cell that shows it, and reads a workbook's parts by rules of its own (a reference attribute spelled exactly
``r``, part names found whatever their case): what reading a workbook costs is known only by reading it. A 34 MB
workbook of 450,000 rows took 700 MB; a 2 KB one holding a single value at T1048576 1.1 GB; 187 KB showing one
32,000-character text in 40,000 cells 2.7 GB; 10 KB of rows without references asked for 52 GB and aborted the
process. So fastexcel never runs in the checking process: a child reads the sheets asked for, one at a time, and is
stopped if its resident memory passes ``MAX_READING_MB``; the workbook is then refused (``E_SHEET_TOO_LARGE``), and
nothing else is held up. A child that fails to allocate (Rust aborts the process) takes nothing with it either.

The child writes each sheet, every cell as text, to Arrow IPC files of at most ``PIECE_CELLS`` cells and
``PIECE_BYTES`` of text each, which the caller reads one at a time. To choose among a workbook's sheets, it reads
only the first rows of each, their cells cut short, but for the one likeliest to be chosen, which it reads whole
(``preview_sheets_apart``); a sheet chosen otherwise is read whole after. Each sheet read whole to be looked at, 80
sheets of 20 rows showing a 32,000-character text in each of 500 cells (a 125 KB workbook) took the check 56 s.
Memory is watched where the system shows it (``/proc``, on Linux, where the pipeline and the portal run); elsewhere
the child only isolates.

Run as ``python -m standards.sheet_process WORKBOOK FOLDER PIECE_CELLS PIECE_BYTES``, the sheets to read listed in
``FOLDER/sheets.json`` with what is read of them (not on the command line, which Linux bounds: a sheet's name of
140,000 characters stopped the check with an error of ours).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from standards.issues import FileRejected

if TYPE_CHECKING:
    import polars as pl
    from fastexcel import ColumnInfoNoDtype, ExcelReader

# The child's limit: with the process that reads its pieces (a piece at a time), each stays within 1 GB. The child
# starts at about 60 MB.
MAX_READING_MB = 900
# How often the child's memory is looked at: fastexcel fills memory at a few hundred MB a second, so the child is
# stopped within a few MB of the limit.
_WATCH_SECONDS = 0.02
_FAILED = 3  # the child's exit code when fastexcel raised: the workbook is damaged
# What Rust says when an allocation fails, before it aborts the process: the sheet needed more memory than there is.
_OUT_OF_MEMORY = "memory allocation of"
# The most cells, and bytes of text (a cell counted 16 bytes more, as Polars holds it), in one piece of a sheet:
# 2,000,000 cells of short text (133,000 rows of 15 columns) is some tens of MB. Given to the child by the caller.
PIECE_CELLS = 2_000_000
PIECE_BYTES = 32 * 1024 * 1024
_SHEET = "sheet{}"
_PIECE = "piece-{:06d}.arrow"
_PR_SET_PDEATHSIG = 1
_SHEETS_LISTED = "sheets.json"  # in the child's folder: the names of the sheets it reads, in order, and how
_PREVIEWED = "previewed.json"  # in the child's folder: what it found of each sheet it previewed (``Preview``)
_WATCHER = "COLLAB_SHEET_WATCHER"  # the pid of the process that started the child, which should still be its parent
# A folder of sheets read apart is named after the process reading them, so that one left by a process that was
# killed is found and removed by the next (it holds a sheet's contacts as text).
_SCRATCH = "collab-sheets-{pid}-"
_SCRATCH_NAME = re.compile(r"collab-sheets-([0-9]+)-")


class SheetUnreadable(Exception):
    """fastexcel could not read the sheet, or the child reading it died; the message is for the analyst's log."""


def workbook_source(path: Path) -> str | bytes:
    """What fastexcel opens a workbook from: its path, or its bytes when its name does not end in .xlsx or .xlsm.
    Given a path, fastexcel goes by the name, and an .xlsx saved as "contacts.xls" was called damaged; given the
    bytes it goes by what they are (the file is an .xlsx by its bytes, or it would not be read as one)."""
    return str(path) if path.suffix.lower() in (".xlsx", ".xlsm") else path.read_bytes()


def scratch_folder() -> tempfile.TemporaryDirectory[str]:
    """A private folder for sheets read apart, after removing this user's that processes now gone left behind (on
    POSIX systems: on Windows, signal 0 is not a question but Ctrl+C, and the temporary folder is the user's own)."""
    if os.name == "posix":
        for left in Path(tempfile.gettempdir()).glob("collab-sheets-*"):
            named = _SCRATCH_NAME.match(left.name)
            if named is not None and left.is_dir() and left.stat().st_uid == os.getuid() and not _alive(int(named[1])):
                shutil.rmtree(left, ignore_errors=True)
    return tempfile.TemporaryDirectory(prefix=_SCRATCH.format(pid=os.getpid()))


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` runs (POSIX: signal 0 only asks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_sheets_apart(workbook: Path, sheets: list[str], folder: Path) -> dict[str, list[Path]]:
    """The sheets ``sheets`` of ``workbook``, every cell as text, written by a child process as pieces (Arrow IPC
    files, in order, by sheet) in the new folder ``folder``. Refused as ``E_SHEET_TOO_LARGE`` if reading one takes
    the child past ``MAX_READING_MB``, or more memory than there is; ``SheetUnreadable`` if fastexcel cannot read
    one or the child dies."""
    _read_apart(workbook, sheets, folder)
    return {name: _pieces(folder, index) for index, name in enumerate(sheets)}


@dataclass(frozen=True)
class PreviewAsked:
    """What a child reads of each sheet to be chosen from: its first ``rows`` rows (from its first values, as a sheet
    is read), of its first ``columns`` columns (the others are counted, not read), each cell's first ``cell_chars``
    characters; and no sheet after the one whose first rows' text, as read, takes that of all so far past
    ``text_bytes``."""

    rows: int
    columns: int
    cell_chars: int
    text_bytes: int


@dataclass(frozen=True)
class Preview:
    """A sheet read apart to be chosen from: its pieces (Arrow IPC files, in order), holding it ``whole`` as
    ``read_sheets_apart`` writes it or only its first rows as ``PreviewAsked`` says; how many columns it has; and the
    bytes of text its first rows held, as read."""

    pieces: list[Path]
    whole: bool
    columns: int
    text_bytes: int


def preview_sheets_apart(
    workbook: Path, sheets: list[str], folder: Path, asked: PreviewAsked, *, whole: str
) -> dict[str, Preview]:
    """The sheets ``sheets`` of ``workbook``, written by a child process in the new folder ``folder``: the first rows
    of each (``PreviewAsked``), and the sheet ``whole`` whole; of the sheets up to the one whose first rows took
    their text past ``asked.text_bytes``, if one did. Refused, or ``SheetUnreadable``, as ``read_sheets_apart`` is:
    fastexcel holds a sheet's every cell however few of its rows are asked for (a reference to each text, where
    pyarrow is installed)."""
    _read_apart(workbook, sheets, folder, preview=asked, whole=whole)
    found = json.loads((folder / _PREVIEWED).read_text(encoding="utf-8"))
    return {
        name: Preview(_pieces(folder, index), name == whole, **of_sheet)
        for index, (name, of_sheet) in enumerate(zip(sheets, found, strict=False))
    }


def _pieces(folder: Path, index: int) -> list[Path]:
    return sorted((folder / _SHEET.format(index)).glob("piece-*.arrow"))


def _read_apart(
    workbook: Path, sheets: list[str], folder: Path, *, preview: PreviewAsked | None = None, whole: str | None = None
) -> None:
    """Have a child read ``sheets`` of ``workbook`` into the new folder ``folder`` (``_read_and_write``)."""
    folder.mkdir(mode=0o700)
    asked = {"sheets": sheets, "preview": asdict(preview) if preview is not None else None, "whole": whole}
    (folder / _SHEETS_LISTED).write_text(json.dumps(asked), encoding="utf-8")
    # -P and a folder of its own to start in: nothing in the directory the check was started from (a charity's
    # folder, say) is imported. Importable from where this module is, whether installed or run from a checkout.
    command = [
        *(sys.executable, "-P", "-m", "standards.sheet_process", str(workbook.resolve()), str(folder)),
        *(str(PIECE_CELLS), str(PIECE_BYTES)),
    ]
    here = str(Path(__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])),
        _WATCHER: str(os.getpid()),
    }
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, env=env, cwd=folder
        )
        stopped = not _watched(child)
        errors.seek(0)
        said = errors.read(64 * 1024).decode(errors="replace").strip()  # Rust says what failed first
    if stopped or (child.returncode != 0 and _OUT_OF_MEMORY in said):
        # The sheet being read is the last one begun.
        begun = [name for index, name in enumerate(sheets) if (folder / _SHEET.format(index)).exists()]
        raise FileRejected(
            "E_SHEET_TOO_LARGE",
            f"The sheet {begun[-1] if begun else sheets[0]!r} needs more than {MAX_READING_MB:,} MB of memory to "
            "read, more than a sheet may take: Excel keeps every cell of it, filled or not, and a copy of its text in "
            "every cell that shows it. Save the sheet as CSV (File > Save As > CSV UTF-8), which is read a piece at a "
            "time whatever its size, or delete the rows below the table and the columns right of it.",
        )
    if child.returncode != 0:
        raise SheetUnreadable(f"the reading process ended with {child.returncode}: {said[:2000]}")


def _watched(child: subprocess.Popen[bytes]) -> bool:
    """Wait for ``child``; False if its resident memory passed ``MAX_READING_MB`` and it was stopped. A watcher that
    is itself stopped (Ctrl+C, SIGTERM) stops the child first: it would otherwise write the sheet's text after its
    caller's folder was removed."""
    try:
        while True:
            try:
                child.wait(timeout=_WATCH_SECONDS)
                return True
            except subprocess.TimeoutExpired:
                pass
            resident = _resident_mb(child.pid)
            if resident is not None and resident > MAX_READING_MB:
                return False
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


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


def _read_and_write(
    workbook: Path,
    folder: Path,
    sheets: list[str],
    *,
    cells: int,
    text_bytes: int,
    preview: PreviewAsked | None,
    whole: str | None,
) -> None:
    """Each of ``sheets``, one at a time, into its folder (made before the sheet is read: the last made names the
    sheet being read): whole, as pieces of at most ``cells`` cells and ``text_bytes``, or, where a ``preview`` is
    asked for, only its first rows as one piece but for the sheet ``whole``; and then what was found of each sheet in
    ``_PREVIEWED``, up to the one whose first rows took their text past ``preview.text_bytes``."""
    import importlib.util

    import fastexcel

    reader = fastexcel.read_excel(workbook_source(workbook))
    by_reference = importlib.util.find_spec("pyarrow") is not None
    found: list[dict[str, int]] = []
    for index, sheet in enumerate(sheets):
        pieces = folder / _SHEET.format(index)
        pieces.mkdir()
        if preview is not None and sheet != whole:
            found.append(_write_first_rows(reader, sheet, pieces, preview, by_reference=by_reference))
        else:
            frame = reader.load_sheet(sheet, header_row=None, dtypes="string").to_polars()
            _write_pieces(frame, pieces, cells=cells, text_bytes=text_bytes)
            if preview is not None:
                found.append({"columns": frame.width, "text_bytes": _text_bytes(frame.head(preview.rows))})
            del frame
        if preview is not None and sum(sheet_found["text_bytes"] for sheet_found in found) > preview.text_bytes:
            break
    if preview is not None:
        (folder / _PREVIEWED).write_text(json.dumps(found), encoding="utf-8")


def _write_pieces(frame: pl.DataFrame, pieces: Path, *, cells: int, text_bytes: int) -> None:
    """``frame`` into the folder ``pieces`` as pieces of at most ``cells`` cells and ``text_bytes`` (``_piece_ends``)."""
    start = 0
    for number, end in enumerate(_piece_ends(frame, cells=cells, text_bytes=text_bytes)):
        frame.slice(start, end - start).write_ipc(pieces / _PIECE.format(number), compression="lz4")
        start = end


def _write_first_rows(
    reader: ExcelReader, sheet: str, pieces: Path, preview: PreviewAsked, *, by_reference: bool
) -> dict[str, int]:
    """The first rows of ``sheet`` (``preview``) into the folder ``pieces`` as one piece, each cell cut short; and
    what was found: how many columns the sheet has, and the bytes of text the rows held as read.

    fastexcel holds every cell of a sheet however few of its rows are asked for and, unless it gives them as
    pyarrow's (``by_reference``), a copy in each cell of the text it shows: 20 rows below those asked for, of 500
    cells each showing a 32,000-character text, were 320 MB of copies a sheet (40 ms; the reader at 360 MB, against
    100 MB by reference). pyarrow is no dependency of the checker (the pipeline and the portal have it); either way
    gives the same rows."""
    import polars as pl

    columns = 0

    def counted(column: ColumnInfoNoDtype) -> bool:
        """Whether ``column`` is read; asked of each of the sheet's columns once."""
        nonlocal columns
        columns += 1
        return column.index < preview.columns

    if by_reference:
        read = reader.load_sheet(
            sheet, header_row=None, dtypes="string", n_rows=preview.rows, use_columns=counted, eager=True
        )
        rows = pl.DataFrame(pl.from_arrow(read))
    else:
        rows = reader.load_sheet(
            sheet, header_row=None, dtypes="string", n_rows=preview.rows, use_columns=counted
        ).to_polars()
    # Cut short in Polars, a cell's text is written as far as it was cut, and no further.
    rows.select(pl.all().str.slice(0, preview.cell_chars)).write_ipc(pieces / _PIECE.format(0), compression="lz4")
    return {"columns": columns, "text_bytes": _text_bytes(rows)}


def _text_bytes(frame: pl.DataFrame) -> int:
    return sum(int(column.str.len_bytes().sum()) for column in frame.iter_columns())


def _piece_ends(frame: pl.DataFrame, *, cells: int, text_bytes: int) -> list[int]:
    """Where each piece of ``frame`` ends (at most ``cells`` cells and ``text_bytes``, a cell counted 16 bytes more;
    a row larger than that is a piece alone)."""
    import polars as pl

    if not frame.width or not frame.height:
        return [frame.height]
    row_bytes = frame.select(
        pl.sum_horizontal(pl.col(name).str.len_bytes().fill_null(0) + 16 for name in frame.columns)
    ).to_series()
    through = row_bytes.cast(pl.Int64).cum_sum()
    most_rows = max(1, cells // frame.width)
    ends: list[int] = []
    start = 0
    while start < frame.height:
        before = int(through[start - 1]) if start else 0
        within = int(through.search_sorted(before + text_bytes, side="right"))
        start = min(start + most_rows, max(start + 1, within), frame.height)
        ends.append(start)
    return ends


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
    workbook, folder, cells, text_bytes = sys.argv[1:]
    asked = json.loads(Path(folder, _SHEETS_LISTED).read_text(encoding="utf-8"))
    preview = PreviewAsked(**asked["preview"]) if asked["preview"] is not None else None
    try:
        _read_and_write(
            Path(workbook),
            Path(folder),
            asked["sheets"],
            cells=int(cells),
            text_bytes=int(text_bytes),
            preview=preview,
            whole=asked["whole"],
        )
    except Exception as error:  # fastexcel raises its own hierarchy for every kind of damage
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        raise SystemExit(_FAILED) from None


if __name__ == "__main__":
    main()
