"""A wide table costs the check its cells, not its columns times its batches: 500 columns of Parquet come in batches
of some 4,000 rows (``BATCH_TEXT_BYTES``), and a pass per column and batch took a 470 KB file of 250,000 rows 53 s
(`python -m bench.hostile`)."""

from __future__ import annotations

import sys

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from standards import reading
from standards.personal_data import ALL_KINDS, REFERENCE_KINDS, Kind, _totals, kind_masks
from standards.reading import ROW

_CELLS = st.sampled_from([None, "", " ", "\t", "\u00a0", "a", " b ", "0"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_CELLS, min_size=3, max_size=3), max_size=12))
def test_a_row_is_filled_if_any_cell_holds_more_than_whitespace(rows: list[list[str | None]]) -> None:
    frame = pl.DataFrame(rows, schema=dict.fromkeys(["c0", "c1", "c2"], pl.String), orient="row")
    expected = frame.select(
        pl.any_horizontal((pl.col(c).str.strip_chars() != "").fill_null(False) for c in frame.columns)
    )
    assert reading._filled_rows(frame).to_list() == expected.to_series().to_list()


def _column(values: list[str | None]) -> pl.Series:
    return pl.Series(values, dtype=pl.String)


def test_many_columns_are_screened_as_every_value_looked_into_kind_by_kind_would_be_in_a_few_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain = ["NNNN", None, "12", "a note"]
    columns = {f"u{i}_": _column(plain) for i in range(70)}  # more than are searched in one pass
    columns["u3_"] = _column(["jo@example.org", None, "ann@example.org", "call 07700 900123"])
    columns["u4_"] = _column([None, "jo@example.org", "jo@example.org", "jo@example.org"])  # one value, three rows
    columns["u50_"] = _column([None, None, None, None])
    frame = pl.DataFrame({ROW: [2, 3, 4, 5], **{name: values for name, values in columns.items()}})
    screened = {name: (pl.col(name), ALL_KINDS) for name in columns}
    # What the screen stands for: every value looked into for every kind.
    every_value: dict[str, int | None] = {}
    for name in columns:
        every_value[f"{name}filled"] = frame.get_column(name).is_not_null().sum()
        for kind, mask in kind_masks(pl.col(name), ALL_KINDS).items():
            rows = frame.filter(mask).get_column(ROW)
            every_value |= {f"{name}{kind.name}": rows.len(), f"{name}{kind.name}_row": rows.min()}

    passes = 0
    select = pl.DataFrame.select

    def counted(self: pl.DataFrame, *args: object, **kwargs: object) -> pl.DataFrame:
        nonlocal passes
        passes += sys._getframe(1).f_globals["__name__"] == "standards.personal_data"  # not Polars' own
        return select(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pl.DataFrame, "select", counted)
    totals = _totals(frame, screened)
    assert totals == every_value
    assert totals["u3_EMAIL"] == 2 and totals["u3_EMAIL_row"] == 2 and totals["u3_PHONE_row"] == 5
    assert (totals["u4_EMAIL"], totals["u4_EMAIL_row"]) == (3, 3)
    assert totals["u50_filled"] == 0
    # The texts, whether each may hold a kind (three passes of at most 32 columns), how many are filled, which
    # columns have any that may, and each of the two that have taken out to be looked into (together, lazily): not
    # a pass or more per column.
    assert passes <= 8


def test_a_reference_shaped_like_an_nhs_number_is_counted_as_a_shape_of_its_column() -> None:
    frame = pl.DataFrame({ROW: [2, 3, 4], "r": ["943 476 5919", "P1", "9434765919"]})
    shapes = {"ref_": {"ref_ten_digit": pl.col("ref_").str.contains(r"^\d{3} ?\d{3} ?\d{4}$")}}
    totals = _totals(frame, {"ref_": (pl.col("r"), REFERENCE_KINDS)}, shapes)
    assert (totals["ref_ten_digit"], totals["ref_ten_digit_row"]) == (2, 2)
    assert totals[f"ref_{Kind.EMAIL.name}"] == 0
