"""Counting the issues of rows alike at once (``IssueCollector.add_alike``) keeps what counting them one by one, in
row order, keeps: the counts, the examples of each code and the rows shown for each value."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from standards import feedback
from standards.feedback import IssueCollector
from standards.issues import Issue

_ISSUES = st.builds(
    Issue,
    code=st.sampled_from(["W_UNKNOWN_CODE", "E_INVALID_DATE", "W_INVALID_AMOUNT"]),
    message=st.just("is not one of the codes"),
    column=st.sampled_from(["Need", "Tenure", None]),
    value=st.sampled_from(["Fod", "zzz", "x", None]),
)


@settings(max_examples=200, deadline=None)
@given(
    groups=st.lists(st.lists(_ISSUES, min_size=1, max_size=3), min_size=1, max_size=12),
    rows=st.lists(st.integers(0, 11), min_size=1, max_size=80),
    tracked=st.integers(1, 4),
)
def test_rows_alike_added_at_once_are_counted_as_one_by_one(
    groups: list[list[Issue]], rows: list[int], tracked: int
) -> None:
    """Rows of a batch (numbered from 2) each fall in a group; each group's rows have its issues."""
    feedback.MAX_TRACKED_VALUES, original = tracked, feedback.MAX_TRACKED_VALUES
    try:
        group_of = {row: choice % len(groups) for row, choice in enumerate(rows, start=2)}
        one_by_one = IssueCollector()
        for row in sorted(group_of):
            for issue in groups[group_of[row]]:
                one_by_one.add(replace(issue, row=row))
        at_once = IssueCollector()
        members: dict[int, list[int]] = {}
        for row in sorted(group_of):
            members.setdefault(group_of[row], []).append(row)
        for group, at in sorted(members.items(), key=lambda item: item[1][0]):  # by first row, as validation gives
            for issue in groups[group]:
                at_once.add_alike(issue, at)
    finally:
        feedback.MAX_TRACKED_VALUES = original
    assert at_once.counts == one_by_one.counts
    assert at_once.first == one_by_one.first
    assert at_once.by_value == one_by_one.by_value
    assert at_once.value_counts == one_by_one.value_counts
