"""Mechanisms, accountant, release atomicity, pseudonyms and minimisation."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import duckdb
import polars as pl
import pytest

from privacy.accountant import BudgetExceeded, BudgetPolicy, Charge, charge, ensure_ledger, spent
from privacy.mechanisms import discrete_gaussian, epsilon_at, interval_half_width, rho_of, scale_for
from privacy.minimise import WAREHOUSE_SCHEMA, minimise
from privacy.postprocess import publish_counts
from privacy.pseudonymise import KeyFileError, create_key, keyed_hash, load_key, person_keys
from privacy.release import ReleasePolicy, release_period
from standards.catalogue import load_catalogue
from standards.check import STANDARD_CONTACT_SCHEMA


def test_rho_follows_the_discrete_gaussian_zcdp_bound() -> None:
    # rho = Δ² / (2σ²); for Δ = √3, σ = 2: 3/8.
    assert rho_of(2.0, math.sqrt(3)) == pytest.approx(3 / 8)
    scale = scale_for(0.5, math.sqrt(3))
    assert rho_of(scale, math.sqrt(3)) <= 0.5
    assert scale == pytest.approx(math.sqrt(3), rel=1e-6)


def test_noise_has_the_stated_scale_and_intervals_cover() -> None:
    noisy = discrete_gaussian([100] * 4000, l2_sensitivity=1.0, rho=0.125)  # σ = 2
    assert noisy.scale == pytest.approx(2.0, rel=1e-6)
    errors = [v - 100 for v in noisy.values]
    assert abs(statistics.mean(errors)) < 0.2
    assert statistics.pstdev(errors) == pytest.approx(2.0, rel=0.1)
    half_width = interval_half_width(noisy.scale)
    coverage = sum(abs(e) <= half_width for e in errors) / len(errors)
    assert coverage >= 0.95


def test_published_counts_are_non_negative_integers_with_intervals() -> None:
    noisy = discrete_gaussian([0, 1, 50, 1000], l2_sensitivity=math.sqrt(3), rho=0.5)
    for published in publish_counts(noisy):
        assert isinstance(published.value, int) and published.value >= 0
        assert 0 <= published.ci_low <= published.value <= published.ci_high or published.noisy_value < 0
        assert published.low_reliability == (published.ci_high - published.ci_low > published.value)


def test_epsilon_conversion_is_openDP_and_monotone() -> None:
    assert epsilon_at(0.5, 1e-7) < epsilon_at(1.0, 1e-7)
    # Looser than the simple bound rho + 2 sqrt(rho ln 1/delta) is never needed.
    assert epsilon_at(0.5, 1e-7) <= 0.5 + 2 * math.sqrt(0.5 * math.log(1e7))


def test_accountant_refuses_overspend_and_records_nothing() -> None:
    con = duckdb.connect()
    ensure_ledger(con)
    policy = BudgetPolicy(period_rho=1.0, lifetime_rho=1.5)
    one = [Charge("a", 0.6, "discrete_gaussian", 1.0, 1.0)]
    charge(con, release_id="2026Q1-v1", period="2026Q1", kind="release", charges=one, policy=policy)
    with pytest.raises(BudgetExceeded, match="period 2026Q1"):
        charge(con, release_id="2026Q1-v2", period="2026Q1", kind="revision", charges=one, policy=policy)
    charge(con, release_id="2026Q2-v1", period="2026Q2", kind="release", charges=one, policy=policy)
    with pytest.raises(BudgetExceeded, match="lifetime"):
        charge(con, release_id="2026Q3-v1", period="2026Q3", kind="release", charges=one, policy=policy)
    assert spent(con) == pytest.approx(1.2)


def _warehouse_with_contacts(people: int) -> duckdb.DuckDBPyConnection:
    from pipelines.warehouse import ensure_schema

    con = duckdb.connect()
    ensure_schema(con)
    con.execute(
        "INSERT INTO contacts (submission_id, charity_id, person_key, quarter, need, region_code, local_authority_code, nation_code) "
        "SELECT 's', 'c', 'p' || i, '2026Q1', 'food', 'E12000001', 'E06000001', 'E92000001' FROM range($n) t(i)",
        {"n": people},
    )
    return con


def test_a_release_is_stored_once_and_rerunning_it_spends_nothing() -> None:
    con = _warehouse_with_contacts(200)
    policy = ReleasePolicy(0.5, BudgetPolicy(1.0, 5.0))
    args = dict(
        period="2026Q1", catalogue=load_catalogue(), policy=policy, salt="x", standard_version="1.0", code_version="t"
    )
    first = release_period(con, **args)
    again = release_period(con, **args)
    assert first.created and not again.created and again.release_id == first.release_id == "2026Q1-v1"
    assert spent(con, "2026Q1") == pytest.approx(0.5)
    revision = release_period(con, **args, revise=True)
    assert revision.release_id == "2026Q1-v2" and revision.created
    assert spent(con, "2026Q1") == pytest.approx(1.0)
    cells = con.execute("SELECT count(*) FROM release_cells WHERE release_id = '2026Q1-v1'").fetchall()[0][0]
    assert cells == 120  # every region x need cell, including the empty ones


def test_an_overspending_release_leaves_no_trace() -> None:
    con = _warehouse_with_contacts(50)
    policy = ReleasePolicy(0.8, BudgetPolicy(1.0, 5.0))
    args = dict(
        period="2026Q1", catalogue=load_catalogue(), policy=policy, salt="x", standard_version="1.0", code_version="t"
    )
    release_period(con, **args)
    with pytest.raises(BudgetExceeded):
        release_period(con, **args, revise=True)
    assert con.execute("SELECT count(*) FROM releases").fetchall()[0][0] == 1
    assert con.execute("SELECT count(*) FROM release_cells WHERE release_id = '2026Q1-v2'").fetchall()[0][0] == 0
    assert spent(con, "2026Q1") == pytest.approx(0.8)


def test_key_is_private_and_pseudonyms_are_keyed(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "key"
    assert create_key(path) and not create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    key = load_key(path)
    refs = pl.Series(["A1", "A1", "B2"])
    keys = person_keys(key, "charity-a", refs)
    assert keys[0] == keys[1] != keys[2]
    assert keys[0] == keyed_hash(key, "person", "charity-a", "A1") and len(keys[0]) == 64
    assert person_keys(key, "charity-b", refs)[0] != keys[0]  # same reference, other charity
    assert person_keys(b"k" * 32, "charity-a", refs)[0] != keys[0]  # another key
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="readable"):
        load_key(path)


def test_minimise_keeps_only_the_allowlist() -> None:
    import datetime as dt

    contacts = pl.DataFrame(
        {
            "source_row": [2],
            "person_ref": ["NFB-1"],
            "contact_date": [dt.date(2026, 2, 14)],
            "quarter": ["2026Q1"],
            "need": ["food"],
            "local_authority_code": ["E08000025"],
            "age_band": ["25_34"],
            "household_type": [None],
            "children_in_household": [None],
            "tenure": [None],
            "employment_status": [None],
            "disability": [None],
            "monthly_income_gbp": [None],
            "monthly_essential_costs_gbp": [None],
            "total_debt_gbp": [None],
            "support_type": [None],
        },
        schema=STANDARD_CONTACT_SCHEMA,
    )
    rows = minimise(contacts, key=b"k" * 32, charity_id="c", submission_id="c-1", standard_version="1.0")
    assert list(rows.schema) == list(WAREHOUSE_SCHEMA)
    row = rows.row(0, named=True)
    assert row["contact_month"] == dt.date(2026, 2, 1) and row["region_code"] == "E12000005"
    assert "NFB-1" not in str(rows.to_dicts())
