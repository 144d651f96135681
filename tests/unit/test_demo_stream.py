"""The streamed demo: the small demo's charities, formats and mistakes, written batch by batch."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl

from collab_demo.generator import _SURNAME_ENDINGS, _SURNAME_STEMS, SURNAMES
from collab_demo.stream import generate_streaming, streamed_profiles
from standards.check import check_extract


def _rows(path: Path, encoding: str, delimiter: str) -> list[dict[str, str]]:
    with path.open(encoding=encoding, newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def test_streamed_demo_is_seeded_complete_and_checks_like_a_charity_file(tmp_path: Path) -> None:
    demo = generate_streaming(tmp_path / "a", contacts=6000, charities=8, quarters=2, batch_people=700)
    again = generate_streaming(tmp_path / "b", contacts=6000, charities=8, quarters=2, batch_people=700)
    assert [p.read_bytes() for _, p in demo.files] == [p.read_bytes() for _, p in again.files]
    assert 5000 < demo.contacts < 7000

    names = [path.name for _, path in demo.files]
    assert names[0].endswith("-first-attempt.csv") and names[-1] == "annual-report.pdf"
    assert names[-2].startswith("Copy of ")
    profiles = {p.id: p for p in streamed_profiles(8)}
    extracts = [(c, p) for c, p in demo.files if p.suffix == ".csv" and "first-attempt" not in p.name]
    rows_by_file = {p: _rows(p, profiles[c].encoding, profiles[c].delimiter) for c, p in extracts}
    assert sum(len(rows) for p, rows in rows_by_file.items() if not p.name.startswith("Copy")) == demo.contacts
    valleys = next(p for c, p in extracts if c == "valleys-debt-line")
    assert any(r["Issue"] == "Debt – priority" for r in rows_by_file[valleys])  # cp1252 wording survives
    assert all(r["Monthly income"].startswith("£") for r in rows_by_file[valleys])

    summary = json.loads((tmp_path / "a" / "truth" / "summary.json").read_text())
    truth = pl.read_csv(tmp_path / "a" / "truth" / "people_by_need_region.csv")
    assert truth["contacts"].sum() == demo.contacts - summary["contacts_with_injected_errors"]
    assert (truth["people_distinct"] <= truth["people_charity_units"]).all()
    assert summary["people_at_two_or_more_charities"] > 0

    # Every file passes the charity's own check with its mapping, but for the injected mistakes.
    for charity_id, path in extracts[:8]:
        report = check_extract(path, mapping=profiles[charity_id].mapping(), charity_id=charity_id).report
        assert report.rows_received == len(rows_by_file[path])
        assert report.rows_rejected <= max(3, 0.03 * report.rows_received)
        errors = {code for code in report.codes() if code.startswith("E_")}
        assert errors <= {"E_INVALID_DATE", "E_UNKNOWN_CODE", "E_MISSING_VALUE", "E_MISSING_AREA", "E_UNKNOWN_AREA"}, (
            report.codes()
        )


def test_streamed_demo_has_the_small_demos_surnames_and_identity_slips(tmp_path: Path) -> None:
    """What makes linkage hard and its cost realistic at scale: a long tail of surnames (not a handful shared by
    everyone, which would put a large share of all people in one blocking key's value), mistyped surnames and
    second references, as ``collab_demo.generator`` makes them."""
    demo = generate_streaming(tmp_path, contacts=20_000, charities=8, quarters=2, batch_people=3000)
    profiles = {p.id: p for p in streamed_profiles(8)}
    surnames: list[str] = []
    references: list[str] = []
    for charity_id, path in demo.files:
        profile = profiles[charity_id]
        if path.suffix != ".csv" or "surname" not in profile.columns:
            continue
        rows = _rows(path, profile.encoding, profile.delimiter)
        surnames += [r[profile.columns["surname"]] for r in rows]
        references += [r[profile.columns["person_ref"]] for r in rows]
    assert surnames and references
    written = {stem + ending.lower() for stem in _SURNAME_STEMS for ending in _SURNAME_ENDINGS} | set(SURNAMES)
    share_of_commonest = max(surnames.count(name) for name in set(surnames)) / len(surnames)
    assert len(set(surnames) & written) > 300 and share_of_commonest < 0.05
    assert set(surnames) - written  # mistyped
    assert any(reference.endswith("-2") for reference in references)  # registered twice
