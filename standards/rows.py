"""Every row a check touched, written as it is checked: the rejected rows with their reasons and the
accepted rows (CSV, for spreadsheets), and every affected row (JSON lines, for a paged list).

The feedback report keeps a few examples per problem so that its size never grows with the file;
these files hold all of them. Spreadsheets run a cell starting with ``=`` (and a few other marks) as
a formula, so every cell written here is neutralised with a leading apostrophe.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from standards.validation import RowOutcome

# The full-width forms too, in case a spreadsheet set for East Asian input reads "＝" as "=": escaping costs nothing.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_FORMULA_STARTS = frozenset(_FORMULA_PREFIXES)


def spreadsheet_safe(value: str | None) -> str:
    """Text that a spreadsheet shows as typed, never evaluates."""
    if value is None:
        return ""
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


@dataclass(frozen=True)
class AffectedRow:
    """One row with at least one problem, as the charity's spreadsheet numbers it."""

    row: int
    accepted: bool
    codes: list[str]
    messages: list[str]


class RowFiles:
    """Receives every row's outcome from ``check_extract(on_rows=...)`` and writes the files asked for."""

    def __init__(
        self, *, rejected: Path | None = None, accepted: Path | None = None, affected: Path | None = None
    ) -> None:
        self._paths = {"rejected": rejected, "accepted": accepted, "affected": affected}
        self._handles: dict[str, IO[str]] = {}
        self._writers: dict[str, Any] = {}
        self.rows_affected = 0

    def _csv(self, kind: str, first: RowOutcome, leading: list[str]) -> Any:
        if kind not in self._writers:
            handle = self._paths[kind].open("w", newline="", encoding="utf-8")  # type: ignore[union-attr]
            self._handles[kind] = handle
            self._writers[kind] = csv.writer(handle)
            self._writers[kind].writerow([*leading, *(spreadsheet_safe(name) for name in first.raw)])
        return self._writers[kind]

    def __call__(self, outcomes: Sequence[RowOutcome]) -> None:
        for outcome in outcomes:
            kind = "accepted" if outcome.contact is not None else "rejected"
            issues = outcome.issues
            codes = " ".join(issue.code for issue in issues) if issues else ""
            messages = " | ".join(issue.message for issue in issues) if issues else ""
            # spreadsheet_safe, inlined: this runs for every cell of every row of the file.
            raw = ["" if v is None else ("'" + v if v and v[0] in _FORMULA_STARTS else v) for v in outcome.raw.values()]
            if self._paths[kind] is not None:
                leading = ["row", "issue_codes", "messages"] if kind == "rejected" else ["row", "warning_codes"]
                extra = [codes, spreadsheet_safe(messages)] if kind == "rejected" else [codes]
                self._csv(kind, outcome, leading).writerow([outcome.row, *extra, *raw])
            if outcome.issues:
                self.rows_affected += 1
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
