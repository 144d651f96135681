"""Every row a check touched, written as it is checked: the rejected rows with their reasons and the
accepted rows (CSV, for spreadsheets), and every affected row (JSON lines, for a paged list).

The feedback report keeps a few examples per problem so that its size never grows with the file;
these files hold all of them. Spreadsheets run a cell starting with ``=`` (and a few other marks) as
a formula, so every cell written here is neutralised with a leading apostrophe.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import polars as pl

from standards.validation import BatchRows, RowOutcome

# The full-width forms too, in case a spreadsheet set for East Asian input reads "＝" as "=": escaping costs nothing.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_FORMULA_START = "^[" + "".join(f"\\x{{{ord(mark):x}}}" for mark in _FORMULA_PREFIXES) + "]"
_REJECTED_LEADING = ["row", "issue_codes", "messages"]
_ACCEPTED_LEADING = ["row", "warning_codes"]


def spreadsheet_safe(value: str | None) -> str:
    """Text that a spreadsheet shows as typed, never evaluates."""
    if value is None:
        return ""
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


def _spreadsheet_safe(column: str) -> pl.Expr:
    """``spreadsheet_safe`` of every value of ``column`` at once."""
    text = pl.col(column)
    return pl.when(text.str.contains(_FORMULA_START)).then(pl.lit("'") + text).otherwise(text).alias(column)


@dataclass(frozen=True)
class AffectedRow:
    """One row with at least one problem, as the charity's spreadsheet numbers it."""

    row: int
    accepted: bool
    codes: list[str]
    messages: list[str]


class RowFiles:
    """Receives every batch's rows from ``check_extract(on_rows=...)`` and writes the files asked for."""

    def __init__(
        self, *, rejected: Path | None = None, accepted: Path | None = None, affected: Path | None = None
    ) -> None:
        self._paths = {"rejected": rejected, "accepted": accepted, "affected": affected}
        self._handles: dict[str, IO[str]] = {}
        self._writers: dict[str, Any] = {}
        self.rows_affected = 0

    @property
    def wanted(self) -> bool:
        """Whether any file is asked for: if none, the check need not list its rows at all."""
        return any(path is not None for path in self._paths.values())

    def _csv(self, kind: str, labels: list[str], leading: list[str]) -> Any:
        if kind not in self._writers:
            handle = self._paths[kind].open("w", newline="", encoding="utf-8")  # type: ignore[union-attr]
            self._handles[kind] = handle
            self._writers[kind] = csv.writer(handle)
            self._writers[kind].writerow([*leading, *(spreadsheet_safe(name) for name in labels)])
        return self._writers[kind]

    def __call__(self, rows: BatchRows) -> None:
        accepted_with_warnings: list[RowOutcome] = []
        for outcome in rows.affected:
            self.rows_affected += 1
            codes = " ".join(issue.code for issue in outcome.issues)
            if outcome.contact is None:
                if self._paths["rejected"] is not None:
                    messages = spreadsheet_safe(" | ".join(issue.message for issue in outcome.issues))
                    raw = [spreadsheet_safe(value) for value in outcome.raw.values()]
                    self._csv("rejected", rows.labels, _REJECTED_LEADING).writerow([outcome.row, codes, messages, *raw])
            else:
                accepted_with_warnings.append(outcome)
            if self._paths["affected"] is not None:
                if "affected" not in self._handles:
                    self._handles["affected"] = self._paths["affected"].open("w", encoding="utf-8")
                line = {
                    "row": outcome.row,
                    "accepted": outcome.contact is not None,
                    "codes": [issue.code for issue in outcome.issues],
                    "messages": [issue.message for issue in outcome.issues],
                }
                self._handles["affected"].write(json.dumps(line) + "\n")
        if self._paths["accepted"] is not None and (rows.clean.height or accepted_with_warnings):
            self._write_accepted(rows, accepted_with_warnings)

    def _write_accepted(self, rows: BatchRows, accepted_with_warnings: list[RowOutcome]) -> None:
        """The batch's accepted rows, in row order, written by Polars as the csv module writes them (quoted only where
        needed, each line ending in CRLF): the rows without an issue are never made Python objects."""
        self._csv("accepted", rows.labels, _ACCEPTED_LEADING)
        self._handles["accepted"].flush()  # what the csv module buffered goes before what Polars writes
        cells = [f"c{i}" for i in range(len(rows.labels))]
        clean = rows.clean.select(
            pl.col("__row").alias("row"),
            pl.lit(None, pl.String).alias("warning_codes"),
            *(pl.col(name).alias(cell) for name, cell in zip(rows.clean.columns[1:], cells, strict=True)),
        )
        warned = pl.DataFrame(
            [
                (outcome.row, " ".join(issue.code for issue in outcome.issues), *outcome.raw.values())
                for outcome in accepted_with_warnings
            ],
            schema=clean.schema,
            orient="row",
        )
        written = pl.concat([clean, warned]).sort("row") if warned.height else clean
        written.with_columns(_spreadsheet_safe(cell) for cell in cells).write_csv(
            self._handles["accepted"], include_header=False, line_terminator="\r\n"
        )

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def __enter__(self) -> RowFiles:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def read_affected(path: Path, start: int = 0, count: int | None = None) -> Iterator[AffectedRow]:
    """Affected rows from a file written by ``RowFiles``, from the ``start``-th (0-based)."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        stop = None if count is None else start + count
        for line in islice(handle, start, stop):
            yield AffectedRow(**json.loads(line))
