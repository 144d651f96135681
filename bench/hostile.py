"""The hostile corpus: each file's code, seconds and peak memory, `python -m bench.hostile`.

Every file of ``tests/fixtures/bad`` plus eleven too large to build in the test suite is checked by
`collab-check --json` in its own process, whose peak resident memory the kernel reports (``wait4``, the process
reading its sheets included): a 200 MB file on one line; a 4.7 MB file of 100,000 columns; a 960 MB file of
32,000-character cells; a workbook of 3,000,000 cells holding an Excel error, one of eight sheets each showing 300 MB
of text, one with eight parts of a million hidden rows that it does not name; a 320 KB Parquet file whose 200,000
cells show one 32,000-character text, and a 19 KB one of 200 lists of 10,000,000 numbers; 2 MB of line ends under 50
columns; 250,000 rows each with 15 problems (9 MB); 9,999,999 people never seen twice (338 MB). The anchor is the
same command on the clean baseline file, measured in the same run: what a charity waits for on any file. None may
crash (exit 0 or 1 with a JSON report) or pass 1 GB.

Then the pipeline's own checking step for a charity that links records (``check_extract`` with the
``StagingSink`` that keys every identity for linkage) on files no identity of which repeats: 300,000
people, each with a surname never seen before, and 100,000 with surnames of the longest kind (64 letters,
65 variants each). Its memory once grew with the file's distinct surnames and their lengths.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import random
import resource
import string
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import xlsxwriter

from standards.extract import FIELDS
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


def _error_cells(path: Path, rows: int) -> None:
    """A workbook whose sheet holds, below its header, ``rows`` rows of 20 cells each holding an Excel error (a tag
    with no value: 17 bytes a cell)."""
    headed = path.with_suffix(".header.xlsx")
    workbook = xlsxwriter.Workbook(str(headed))
    workbook.add_worksheet("Contacts").write_row(0, 0, ["person_ref", "contact_date", "need", "postcode"])
    workbook.close()
    letters = [chr(ord("A") + i) for i in range(20)]
    cells = [
        f'<row r="{row}">'.encode()
        + b"".join(f'<c r="{letter}{row}" t="e"/>'.encode() for letter in letters)
        + b"</row>"
        for row in range(2, rows + 2)
    ]
    with zipfile.ZipFile(headed) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            data = source.read(member.filename)
            if member.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"</row></sheetData>", b"</row>" + b"".join(cells) + b"</sheetData>")
            target.writestr(member, data)
    headed.unlink()


def _long_texts_on_many_sheets(path: Path, sheets: int) -> None:
    """A workbook of ``sheets`` sheets of 20 rows of 460 cells, each cell showing one shared text of 32,767 characters
    (Excel's longest): 300 MB of text a sheet, in a file of some tens of KB. Every sheet may be the one read, so each
    is previewed."""
    workbook = xlsxwriter.Workbook(str(path))
    text = "x" * 32_767
    for number in range(sheets):
        sheet = workbook.add_worksheet(f"Sheet {number + 1}")
        for row in range(20):
            sheet.write_row(row, 0, [text] * 460)
    workbook.close()


def _parts_no_sheet_names(path: Path, parts: int) -> None:
    """A workbook of one small sheet of contacts and ``parts`` parts it does not name, of 1,048,576 hidden rows each
    holding a formula saved without its result: every part is scanned as a sheet might be."""
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet("Contacts")
    sheet.write_row(0, 0, ["person_ref", "contact_date", "need", "postcode"])
    for row in range(1, 21):
        sheet.write_row(row, 0, [f"H-{row:04d}", "2026-07-18", "food", "BS1 4DJ"])
    workbook.close()
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        for part in range(parts):
            with archive.open(f"xl/worksheets/extra{part}.xml", "w", force_zip64=True) as out:
                for start in range(1, 1_048_577, 16_384):
                    out.write(
                        "".join(
                            f'<row hidden="1" r="{row}"><c r="A{row}"><f>1</f></c></row>'
                            for row in range(start, start + 16_384)
                        ).encode()
                    )


def _long_cells(path: Path, rows: int) -> None:
    """A CSV file of ``rows`` contacts, each with a 32,000-character reason (960 MB for 30,000)."""
    reason = "x" * 32_000
    with path.open("w", encoding="utf-8") as out:
        out.write("person_ref,contact_date,need,postcode\n")
        for i in range(rows):
            out.write(f"P{i},2026-07-18,{reason},BS1 4DJ\n")


def _inflating_parquet(path: Path, rows: int, *, lists_of: int = 0) -> None:
    """A Parquet table of ``rows`` contacts whose reason is one 32,000-character text, stored once (a dictionary);
    or, given ``lists_of``, with a column whose every cell is a list of that many zeros, stored as runs."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "person_ref": pa.array([f"P{i}" for i in range(rows)]),
        "contact_date": pa.array(["2026-07-18"] * rows),
        "need": pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["x" * 32_000])),
        "postcode": pa.array(["BS1 4DJ"] * rows),
    }
    if lists_of:
        columns["need"] = pa.array(["food"] * rows)
        zeros = pc.fill_null(pa.nulls(lists_of, pa.int8()), 0)
        one_list = pa.ListArray.from_arrays(pa.array([0, lists_of], pa.int32()), zeros)
        columns["scores"] = pa.chunked_array([one_list] * rows)  # the one list's memory, held once
    pq.write_table(pa.table(columns), path, compression="zstd")


def footer_saying(path: Path, said: int, instead: int) -> None:
    """Rewrites every integer ``said`` in a Parquet file's footer as ``instead``, spelt in as many bytes (a longer
    varint than needed, which Thrift's readers take), so that its pages stay as written while its footer says
    otherwise."""

    def varint(value: int, length: int | None = None) -> bytes:
        groups = [(value >> shift) & 0x7F for shift in range(0, 70, 7)]
        length = length or max(1, next(i for i in range(10, 0, -1) if any(groups[i - 1 :])))
        return bytes(group | (0x80 if i < length - 1 else 0) for i, group in enumerate(groups[:length]))

    data = bytearray(path.read_bytes())
    length = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - length
    old = varint(said * 2)  # Thrift's compact protocol zigzags an integer into a varint
    if old not in data[start:-8]:
        raise ValueError(f"{said} is not in the footer")
    data[start:-8] = bytes(data[start:-8]).replace(old, varint(instead * 2, len(old)))
    path.write_bytes(bytes(data))


def _page_larger_than_its_footer(path: Path, megabytes: int) -> None:
    """Contacts whose reason is one text of ``megabytes`` in one page, compressed to some kilobytes, the footer saying
    the column takes 1,000 bytes: before the pages were bound by the footer, 900 MB of it took the check to 2.9 GB."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"person_ref": ["P1"], "contact_date": ["2026-07-18"], "postcode": ["BS1 4DJ"]}
    table = pa.table({**columns, "need": pa.array(["x" * (megabytes * 1024 * 1024)], pa.large_string())})
    pq.write_table(table, path, compression="zstd", use_dictionary=False)
    need = pq.ParquetFile(path).metadata.row_group(0).column(len(columns))
    footer_saying(path, need.total_uncompressed_size, 1_000)


def _blank_lines(path: Path) -> None:
    """The standard's columns and more, 50 in all, then a contact and 2,000,000 line ends: 2 MB."""
    header = [*FIELDS, *(f"column {i}" for i in range(50 - len(FIELDS)))]
    contact = "P1,2026-01-31,food,E08000025" + "," * (len(header) - 4)
    path.write_text(",".join(header) + "\n" + contact + "\n" * 2_000_000, encoding="utf-8")


def _all_rows_bad(path: Path, rows: int) -> None:
    """``rows`` rows of the standard's columns, every cell of each a problem (about 15 a row)."""
    with path.open("w", encoding="utf-8") as out:
        out.write(",".join(FIELDS) + "\n")
        for _ in range(rows):
            out.write("1E+9" + ",x" * (len(FIELDS) - 1) + "\n")


def _distinct_references(path: Path, rows: int) -> None:
    """``rows`` contacts, each of a person never seen before, none with an identity to link by."""
    with path.open("w", encoding="utf-8") as out:
        out.write("person_ref,contact_date,need,local_authority_code\n")
        for start in range(0, rows, 100_000):
            out.write("".join(f"{i},2026-01-31,food,E08000025\n" for i in range(start, min(rows, start + 100_000))))


def _distinct_identities(path: Path, people: int, letters_each: int) -> None:
    """A linking charity's extract of ``people`` contacts, each a new person with a surname of random letters."""
    letters = random.Random(2026)
    with path.open("w", encoding="utf-8") as out:
        out.write("person_ref,contact_date,need,postcode,date_of_birth,surname\n")
        for i in range(people):
            surname = "".join(letters.choices(string.ascii_uppercase, k=letters_each))
            born = dt.date(1940, 1, 1) + dt.timedelta(days=letters.randrange(25_000))
            out.write(f"H-{i:07d},2026-07-18,food,BS1 4DJ,{born.isoformat()},{surname}\n")


# The pipeline's checking step of a linking charity, as `submission_quality` runs it, printing its report as JSON
# (the file's path is argv[1]).
STAGE_FOR_LINKAGE = """
import sys, tempfile
from pathlib import Path
from collab.staging import StagingSink
from standards.check import CheckOptions, check_extract
with tempfile.TemporaryDirectory() as work:
    with StagingSink(Path(work, "staging"), Path(work, "quarantine"), linkage_key=bytes(32)) as sink:
        report = check_extract(Path(sys.argv[1]), sink=sink, options=CheckOptions(links_records=True)).report
print(report.model_dump_json())
"""


def _measure(path: Path, command: list[str] = CHECK) -> tuple[str, float, int, str]:
    """(error codes, seconds, peak RSS bytes, status) of checking one file in a fresh process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen([*command, str(path), "--json"], stdout=out, stderr=err)
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


def _row(name: str, measured: tuple[str, float, int, str], anchor: float, marker: str = "") -> str:
    codes, seconds, peak, status = measured
    return (
        f"{name:40} {status[:24]:24} {codes[:28]:28} {seconds:7.2f} {seconds / anchor:8.2f} {peak / 1e6:8.0f}{marker}"
    )


def _wide_parquet(path: Path, rows: int) -> None:
    """A Parquet table of ``rows`` contacts and 496 more columns, each one short text stored once (a dictionary):
    125,000,000 cells for 250,000 rows, in 470 KB."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def repeated(text: str) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array([text]))

    columns = {
        "person_ref": repeated("P1"),
        "contact_date": repeated("2026-07-18"),
        "need": repeated("food"),
        "postcode": repeated("BS1 4DJ"),
    }
    columns |= {f"notes{i}": repeated("NNNN") for i in range(496)}
    pq.write_table(pa.table(columns), path, compression="zstd")


def _build(root: Path) -> dict[str, Path]:
    """Every file measured, by name, in ``root``."""
    paths = build(root / "corpus")
    for name, make in {
        "two-hundred-megabytes-one-line.csv": _single_line,
        "hundred-thousand-columns.csv": _wide,
        "three-million-error-cells.xlsx": lambda path: _error_cells(path, 150_000),
        "eight-sheets-of-long-texts.xlsx": lambda path: _long_texts_on_many_sheets(path, 8),
        "eight-parts-no-sheet-names.xlsx": lambda path: _parts_no_sheet_names(path, 8),
        "thirty-thousand-32k-cells.csv": lambda path: _long_cells(path, 30_000),
        "a-32k-text-in-200k-cells.parquet": lambda path: _inflating_parquet(path, 200_000),
        "lists-of-ten-million.parquet": lambda path: _inflating_parquet(path, 200, lists_of=10_000_000),
        "500-columns-of-250k-rows.parquet": lambda path: _wide_parquet(path, 250_000),
        "a-600-mb-page-its-footer-says-1-kb.parquet": lambda path: _page_larger_than_its_footer(path, 600),
        "two-million-line-ends.csv": _blank_lines,
        "quarter-million-rows-all-bad.csv": lambda path: _all_rows_bad(path, 250_000),
        "ten-million-people.csv": lambda path: _distinct_references(path, 9_999_999),
    }.items():
        make(root / name)
        paths[name] = root / name
    return paths


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        # Built by a process of its own: Linux counts what a measured process held before it started the command
        # (this one's memory, when it forked), so building here put a floor of 439 MB under every peak.
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as builder:
            paths = builder.submit(_build, root).result()
        floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(f"each peak is at least this process's own: {floor / 1e6:,.0f} MB")
        anchor = _measure(paths["utf-8.csv"])[1]
        print(f"anchor: collab-check on the clean baseline file: {anchor:.2f} s\n")
        print(f"{'file':40} {'status':24} {'error codes':28} {'s':>7} {'×anchor':>8} {'peak MB':>8}")
        measured = {}
        expected = {case.name: case for case in CASES}
        for name in sorted(paths, key=lambda n: paths[n].stat().st_size):
            measured[name] = _measure(paths[name])
            status = measured[name][3]
            marker = (
                ""
                if name not in expected or expected[name].status == status
                else f"  (expected {expected[name].status})"
            )
            print(_row(name, measured[name], anchor, marker))
        print("\nthe pipeline's checking step of a linking charity (identities keyed for linkage, staged):")
        for name, people, letters_each in (
            ("three-hundred-thousand-new-surnames.csv", 300_000, 12),
            ("hundred-thousand-64-letter-surnames.csv", 100_000, 64),
        ):
            _distinct_identities(root / name, people, letters_each)
            measured[name] = _measure(root / name, [sys.executable, "-c", STAGE_FOR_LINKAGE])
            print(_row(name, measured[name], anchor))
        worst = max(peak for _, _, peak, _ in measured.values())
        crashed = [name for name, (_, _, _, status) in measured.items() if status.startswith("CRASH")]
        print(f"\nworst peak RSS: {worst / 1e6:,.0f} MB (limit {LIMIT_BYTES / 1e6:,.0f} MB); crashes: {len(crashed)}")
        if crashed or worst > LIMIT_BYTES:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
