"""Mechanisms, estimators, accountant, release atomicity, pseudonyms, linkage and minimisation."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from collab.schema import migrate
from collab.staging import STAGED_CONTACT_SCHEMA
from privacy.accountant import BudgetExceeded, BudgetPolicy, Charge, charge, spent
from privacy.bounding import BoundedAggregates, bounded_aggregates, finest_cells
from privacy.estimators import MEDIAN_SHARES, count_signature, release_indicator
from privacy.linkage import identity_counts, keyed_components, merge_counts, reference_components
from privacy.mechanisms import (
    discrete_gaussian,
    epsilon_at,
    interval_half_width,
    private_quantile,
    rho_of,
    scale_for,
)
from privacy.minimise import LINKAGE_UNIT_SCHEMA, WAREHOUSE_SCHEMA, minimise, minimise_units
from privacy.pseudonymise import (
    KeyFileError,
    create_key,
    keyed_hash,
    keyed_hashes,
    keyed_int64s,
    linkage_tokens,
    load_key,
    person_keys,
)
from privacy.release import Contributors, ReleasePolicy, release_period
from standards.catalogue import cells, load_catalogue
from standards.extract import linkage_basis


def test_rho_follows_the_discrete_gaussian_zcdp_bound() -> None:
    # rho = Δ² / (2σ²); for Δ = √3, σ = 2: 3/8.
    assert rho_of(2.0, math.sqrt(3)) == pytest.approx(3 / 8)
    scale = scale_for(0.5, math.sqrt(3))
    assert rho_of(scale, math.sqrt(3)) <= 0.5
    assert scale == pytest.approx(math.sqrt(3), rel=1e-6)


def _vectors(**vectors: list[int]) -> BoundedAggregates:
    return BoundedAggregates(cells=[], vectors={k: np.asarray(v, dtype=np.int64) for k, v in vectors.items()})


def test_noise_has_the_stated_scale_and_intervals_cover() -> None:
    aggregates = _vectors(people=[100] * 4000)
    noisy = discrete_gaussian(aggregates, lambda a: a.vectors["people"], l2_sensitivity=1.0, rho=0.125)  # σ = 2
    assert noisy.scale == pytest.approx(2.0, rel=1e-6)
    errors = [v - 100 for v in noisy.values]
    assert abs(statistics.mean(errors)) < 0.2
    assert statistics.pstdev(errors) == pytest.approx(2.0, rel=0.1)
    half_width = interval_half_width(noisy.scale)
    coverage = sum(abs(e) <= half_width for e in errors) / len(errors)
    assert coverage >= 0.95


def test_the_quantile_mechanism_spends_what_it_states_and_finds_the_median() -> None:
    aggregates = BoundedAggregates(cells=[], vectors={}, values=[list(range(0, 10_001))])
    result = private_quantile(aggregates, 0, candidates=list(range(0, 10_001, 100)), alpha=0.5, rho=0.05)
    assert result.rho <= 0.05 and abs(result.value - 5_000) <= 300


def _aggregates(indicator_id: str, **vectors: list[int]) -> tuple:
    indicator = load_catalogue().get(indicator_id)
    size = len(finest_cells(indicator))
    full = {
        name: np.zeros(size, dtype=np.int64)
        for name in ("people", "contacts", "total", "centred_total", "with_condition", "without_condition")
    }
    for name, values in vectors.items():
        full[name][: len(values)] = values
    return indicator, BoundedAggregates(cells=finest_cells(indicator), vectors=full)


def test_a_hierarchical_count_is_consistent_non_negative_and_covers_the_truth() -> None:
    indicator, aggregates = _aggregates("people_by_local_authority", people=[1000, 0, 3, 250] * 40)
    released = release_indicator(indicator, aggregates, rho=0.5)
    assert released.rho == pytest.approx(0.5)
    assert [m.name for m in released.measurements] == ["uk", "nation", "region", "local_authority"]
    values = {(cell.level, cell.keys): f for cell, f in zip(released.cells, released.figures, strict=True)}
    uk = values[("uk", ("K02000001",))]
    nations = [f for (level, _), f in values.items() if level == "nation"]
    leaves = [f for (level, _), f in values.items() if level == "local_authority"]
    assert uk.value == sum(f.value for f in nations) == sum(f.value for f in leaves)
    assert all(
        f.value >= 0 and float(f.value).is_integer() and f.ci_low <= f.value <= f.ci_high for f in released.figures
    )
    truth = aggregates.vectors["people"]
    covered = [f.ci_low <= t <= f.ci_high for f, t in zip(leaves, truth, strict=True)]
    assert sum(covered) / len(covered) > 0.85
    assert any(f.low_reliability for f in leaves)  # the empty areas: interval wider than the figure


def test_a_share_and_a_mean_are_ratios_with_delta_method_intervals() -> None:
    indicator, aggregates = _aggregates(
        "negative_budget_share_by_region", with_condition=[300, 0], without_condition=[700, 0]
    )
    share = release_indicator(indicator, aggregates, rho=1.0).figures
    width = share[0].ci_high - share[0].ci_low
    assert 0 < width < 0.05 and abs(share[0].value - 0.3) <= 3 * width  # 3 widths: about 12 standard deviations
    assert share[1].ci_high - share[1].ci_low >= 0.5  # nobody covered: the interval says so
    indicator, aggregates = _aggregates("mean_debt_by_region", people=[2000], centred_total=[2000 * (4000 - 12_500)])
    mean = release_indicator(indicator, aggregates, rho=1.0).figures
    width = mean[0].ci_high - mean[0].ci_low
    assert 0 < width < 200 and abs(mean[0].value - 4000) <= 3 * width
    assert mean[1].ci_high - mean[1].ci_low >= 12_500  # nobody with debt: most of the clamp


def test_a_median_comes_from_the_quantile_mechanism_with_a_covering_interval() -> None:
    indicator, aggregates = _aggregates("median_debt_by_region", people=[3001])
    aggregates.values = [list(range(0, 6001, 2))] + [[] for _ in range(len(aggregates.cells) - 1)]
    released = release_indicator(indicator, aggregates, rho=1.0)
    assert {m.mechanism for m in released.measurements} == {"discrete_gaussian", "quantile"}
    assert released.rho <= 1.0 + 1e-9
    first, empty = released.figures[0], released.figures[1]
    assert first.ci_low <= 3000 <= first.ci_high and abs(first.value - 3000) <= 100
    assert empty.low_reliability and (empty.ci_low, empty.ci_high) == (0, 25_000)


def test_epsilon_conversion_is_openDP_and_monotone() -> None:
    assert epsilon_at(0.5, 1e-7) < epsilon_at(1.0, 1e-7)
    # Looser than the simple bound rho + 2 sqrt(rho ln 1/delta) is never needed.
    assert epsilon_at(0.5, 1e-7) <= 0.5 + 2 * math.sqrt(0.5 * math.log(1e7))


def test_accountant_refuses_overspend_and_records_nothing() -> None:
    con = duckdb.connect()
    migrate(con)
    policy = BudgetPolicy(period_rho=1.0, lifetime_rho=1.5)
    # A person held as 2 units: OpenDP's Gaussian map at d_in 2 is 4 times that at 1.
    one = [Charge("a", "cells", 0.15, "discrete_gaussian", 1.0, 1.0, 2, 0.6)]
    charge(con, release_id="2026Q1-v1", period="2026Q1", kind="release", charges=one, policy=policy)
    with pytest.raises(BudgetExceeded, match="period 2026Q1"):
        charge(con, release_id="2026Q1-v2", period="2026Q1", kind="revision", charges=one, policy=policy)
    charge(con, release_id="2026Q2-v1", period="2026Q2", kind="release", charges=one, policy=policy)
    with pytest.raises(BudgetExceeded, match="lifetime"):
        charge(con, release_id="2026Q3-v1", period="2026Q3", kind="release", charges=one, policy=policy)
    assert spent(con) == pytest.approx(1.2) and spent(con, per_person=False) == pytest.approx(0.3)


def _warehouse_with_contacts(people: int) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    migrate(con)
    con.execute(
        "INSERT INTO contacts (submission_id, charity_id, person_key, quarter, need, region_code, local_authority_code, "
        "nation_code, total_debt_gbp, monthly_income_gbp, monthly_essential_costs_gbp, linked) "
        "SELECT 's', 'c' || (i % 2), i, '2026Q1', 'food', 'E12000001', 'E06000001', 'E92000001', "
        "100 * (i % 50), 1000, 900 + i % 300, FALSE FROM range($n) t(i)",
        {"n": people},
    )
    return con


def catalogue_share(indicator_id: str) -> float:
    return load_catalogue().get(indicator_id).budget_share


def test_the_mean_and_the_median_of_debt_count_the_same_bounded_people() -> None:
    catalogue = load_catalogue()
    mean, median = catalogue.get("mean_debt_by_region"), catalogue.get("median_debt_by_region")
    assert count_signature(mean) == count_signature(median)
    con = _warehouse_with_contacts(300)
    people = [bounded_aggregates(con, i, period="2026Q1", salt="s").vectors["people"] for i in (mean, median)]
    assert (people[0] == people[1]).all() and people[0].sum() > 0


def test_a_release_is_stored_once_and_rerunning_it_spends_nothing() -> None:
    con = _warehouse_with_contacts(200)
    policy = ReleasePolicy(0.5, BudgetPolicy(1.0, 5.0))
    args = dict(
        period="2026Q1",
        catalogue=load_catalogue(),
        policy=policy,
        contributors=Contributors(2, ()),
        salt="x",
        standard_version="1.0",
        code_version="t",
    )
    first = release_period(con, **args)
    again = release_period(con, **args)
    assert first.created and not again.created and again.release_id == first.release_id == "2026Q1-v1"
    saving = 0.5 * catalogue_share("median_debt_by_region") * MEDIAN_SHARES["count"]
    assert spent(con, "2026Q1") == pytest.approx(0.5 - saving)
    revision = release_period(con, **args, revise=True)
    assert revision.release_id == "2026Q1-v2" and revision.created
    assert spent(con, "2026Q1") == pytest.approx(2 * (0.5 - saving))
    catalogue = load_catalogue()
    stored = dict(
        con.execute(
            "SELECT indicator_id, count(*) FROM release_cells WHERE release_id = '2026Q1-v1' GROUP BY ALL"
        ).fetchall()
    )
    assert stored == {i.id: len(cells(i)) for i in catalogue.indicators}  # every cell, including the empty ones
    assert stored["people_by_need_region"] == 120 and stored["people_by_local_authority"] == 378
    ledger = con.execute(
        "SELECT indicator_id, sum(rho) FROM privacy_ledger WHERE release_id = '2026Q1-v1' GROUP BY ALL"
    )
    # The median reuses the mean's noisy count of people with debt by region: its 1/20 is saved.
    saved = {"median_debt_by_region": 1 - MEDIAN_SHARES["count"]}
    for indicator_id, rho in ledger.fetchall():
        assert rho == pytest.approx(0.5 * catalogue.get(indicator_id).budget_share * saved.get(indicator_id, 1.0))
    measured = con.execute(
        "SELECT measurement FROM privacy_ledger WHERE release_id = '2026Q1-v1' AND indicator_id = 'median_debt_by_region'"
    ).fetchall()
    assert ("count",) not in measured
    units = con.execute(
        "SELECT contributors, units_per_person, rho, rho_per_person FROM releases WHERE release_id = '2026Q1-v1'"
    ).fetchall()
    assert units == [(2, 1, pytest.approx(0.5 - saving), pytest.approx(0.5 - saving))]  # the cap: one unit each


def test_an_overspending_release_leaves_no_trace() -> None:
    con = _warehouse_with_contacts(50)
    policy = ReleasePolicy(0.8, BudgetPolicy(1.0, 5.0))
    args = dict(
        period="2026Q1",
        catalogue=load_catalogue(),
        policy=policy,
        contributors=Contributors(2, ()),
        salt="x",
        standard_version="1.0",
        code_version="t",
    )
    release_period(con, **args)
    with pytest.raises(BudgetExceeded):
        release_period(con, **args, revise=True)
    assert con.execute("SELECT count(*) FROM releases").fetchall()[0][0] == 1
    assert con.execute("SELECT count(*) FROM release_cells WHERE release_id = '2026Q1-v2'").fetchall()[0][0] == 0
    assert spent(con, "2026Q1") == pytest.approx(
        0.8 * (1 - catalogue_share("median_debt_by_region") * MEDIAN_SHARES["count"])
    )
    assert con.execute("SELECT count(*) FROM release_measurements WHERE release_id = '2026Q1-v2'").fetchall()[0][0] == 0


def test_key_is_private_and_pseudonyms_are_keyed(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "key"
    assert create_key(path) and not create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    key = load_key(path)
    refs = pl.Series(["A1", "A1", "B2"])
    keys = person_keys(key, "charity-a", refs)
    assert keys[0] == keys[1] != keys[2]
    hmac = bytes.fromhex(keyed_hash(key, "person", "charity-a", "A1"))
    assert keys.dtype == pl.Int64 and keys[0] == int.from_bytes(hmac[:8], "big", signed=True)  # its first 8 bytes
    assert person_keys(key, "charity-b", refs)[0] != keys[0]  # same reference, other charity
    assert person_keys(b"k" * 32, "charity-a", refs)[0] != keys[0]  # another key
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="readable"):
        load_key(path)


def test_keyed_hashes_are_hmac_sha256_of_the_joined_parts() -> None:
    import hmac

    values = ["A1", "", "é\x1fx", "z" * 200]
    for key in (b"k" * 32, b"", bytes(range(64)), bytes(range(100))):  # short, empty, one block, hashed first
        expected = [
            hmac.digest(key, f"person\x1fc\x1f{v.replace(chr(31), ' ')}".encode(), "sha256").hex() for v in values
        ]
        assert keyed_hashes(key, ("person", "c"), values) == expected
        assert keyed_hash(key, "person", "c", values[0]) == expected[0]
        # The linkage components' codes: the same HMAC's first 8 bytes, a big-endian signed integer.
        codes = [int.from_bytes(bytes.fromhex(code)[:8], "big", signed=True) for code in expected]
        assert keyed_int64s(key, ("person", "c"), values).tolist() == codes
    assert keyed_int64s(b"k" * 32, ("link",), []).dtype == np.int64


def test_linkage_basis_normalises_identifiers_and_needs_all_three() -> None:
    import datetime as dt

    born = dt.date(1988, 4, 12)
    assert (
        linkage_basis("O'Brien-Smíth", born, "b15 2tt")
        == linkage_basis(" OBRIEN smith", born, "B15")
        == "OBRIENSMITH|1988-04-12|B15"
    )
    assert linkage_basis(None, born, "B15 2TT") is None
    assert linkage_basis("Okafor", None, "B15 2TT") is None
    assert linkage_basis("Okafor", born, None) is None
    # No more letters than a surname may have characters, though NFKD spells "ﬃ" out as three.
    assert linkage_basis("ﬃ" * 64, born, "B15 2TT") == "FFI" * 21 + "F|1988-04-12|B15"


def test_each_linking_reference_gets_one_keyed_linkage_record_of_its_most_common_identity() -> None:
    key = b"k" * 32
    bases = pl.Series(["OKAFOR|1988-04-12|B15", None, "OKAFOR|1988-04-12|B15", "OKAFR|1988-04-12|B15"])
    tokens = linkage_tokens(key, bases)
    assert tokens[0] == tokens[2] != tokens[3] and tokens[1] is None
    contacts = pl.DataFrame({"person_ref": ["A", "A", "A", "B"], "linkage_basis": bases})
    # Counted batch by batch, the counts add up.
    counts = merge_counts([identity_counts(contacts.head(2)), identity_counts(contacts.tail(2))])
    units = reference_components(key, counts)
    assert units.get_column("person_ref").to_list() == ["A", "B"]
    expected = keyed_components(key, pl.Series([bases[0], bases[3]]))
    assert units.drop("person_ref").equals(expected)
    rows = minimise_units(units, key=key, charity_id="charity-a", submission_id="s")
    assert rows.schema == LINKAGE_UNIT_SCHEMA
    # The unit is named by the reference's person_key, the key its contacts carry.
    assert rows.get_column("unit_key").to_list() == person_keys(key, "charity-a", pl.Series(["A", "B"])).to_list()
    assert "OKAFOR" not in str(rows.rows()).upper() and tokens[0] not in str(rows.rows())


def test_a_reference_with_tied_identities_keeps_the_one_with_the_smallest_token() -> None:
    key = b"k" * 32
    bases = ["OKAFOR|1988-04-12|B15", "OKAFR|1988-04-12|B15", "OKAFOR|1988-04-21|B15", "OKAFOR|1988-04-21|B15"]
    contacts = pl.DataFrame({"person_ref": ["A", "A", "B", "B"], "linkage_basis": bases})
    units = reference_components(key, identity_counts(contacts))
    smallest = min(bases[:2], key=lambda basis: linkage_tokens(key, pl.Series([basis])).item())
    expected = keyed_components(key, pl.Series([smallest, bases[2]]))
    assert units.get_column("person_ref").to_list() == ["A", "B"]
    assert units.drop("person_ref").equals(expected)
    assert reference_components(key, identity_counts(contacts.clear())).height == 0


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
            "linked": [True],
        },
        schema=STAGED_CONTACT_SCHEMA,
    )
    rows = minimise(contacts, key=b"k" * 32, charity_id="c", submission_id="c-1", standard_version="1.0")
    assert list(rows.schema) == list(WAREHOUSE_SCHEMA)
    row = rows.row(0, named=True)
    assert row["contact_month"] == dt.date(2026, 2, 1) and row["region_code"] == "E12000005" and row["linked"]
    assert "NFB-1" not in str(rows.to_dicts())
