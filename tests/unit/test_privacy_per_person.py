"""Group privacy: a person held as m privacy units (m charities that do not link records).

Property tests on real bounded queries: removing a person held as m keys moves every query by at
most m times its stated L2 sensitivity, and OpenDP's maps give m² times the ρ of one unit. The
accountant enforces the budgets for that worst-case person, refusing a release and storing nothing.
"""

from __future__ import annotations

import math
from collections import Counter

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privacy.accountant import BudgetExceeded, BudgetPolicy, UnitCaps, periods_over_budget, spent
from privacy.bounding import BoundedAggregates, bounded_aggregates, query_sensitivity
from privacy.estimators import MEDIAN_SHARES, RecordedMeasurement, recorded_charge, release_indicator
from privacy.mechanisms import discrete_gaussian, quantile_measurement, rho_at_units
from privacy.release import Contributors, ReleasePolicy, release_period
from standards.catalogue import Indicator, load_catalogue
from tests.unit.test_privacy_bounding import AGE_BANDS, AREAS, NEEDS, _distances, contacts_warehouse

INDICATORS = load_catalogue().indicators
# What a release spends of its rho: all but the median's count, which reuses the mean's.
SPENT = 1 - load_catalogue().get("median_debt_by_region").budget_share * MEDIAN_SHARES["count"]

visit = st.tuples(
    st.integers(0, len(AREAS) - 1),
    st.sampled_from(NEEDS),
    st.sampled_from(AGE_BANDS),
    st.one_of(st.none(), st.integers(0, 40_000)),  # debt
    st.one_of(st.none(), st.integers(0, 3_000)),  # income
    st.one_of(st.none(), st.integers(0, 3_000)),  # costs
)
others = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3), visit), max_size=30)  # (person, charity, visit)
one_unit = st.lists(visit, min_size=1, max_size=6)


def _warehouse(rows: list[tuple[str, int, tuple]], *, fresh: bool = False) -> duckdb.DuckDBPyConnection:
    records = [
        [charity, key, need, *AREAS[a], age, debt, income, costs]
        for charity, key, (a, need, age, debt, income, costs) in rows
    ]
    return contacts_warehouse(records, linked=False, fresh=fresh)


def _aggregates(indicator: Indicator, rows: list[tuple[str, int, tuple]]) -> BoundedAggregates:
    return bounded_aggregates(_warehouse(rows), indicator, period="2026Q1", salt="salt")


def _assert_within_m(indicator: Indicator, full: BoundedAggregates, without: BoundedAggregates, m: int) -> None:
    k = indicator.max_cells_per_person
    stated = query_sensitivity(indicator)
    names = {"people_count": ["people"], "contact_count": ["contacts"], "sum": ["total"], "mean": ["centred_total"]}
    for name in names.get(indicator.measure, []):
        for _, l2 in _distances(indicator, full.vectors[name], without.vectors[name]):
            assert l2 <= m * stated.l2 + 1e-9, (indicator.id, name, l2, m)
    if indicator.measure in ("mean", "median", "share"):
        diff = (full.vectors["people"] - without.vectors["people"]).astype(float)
        assert math.sqrt((diff**2).sum()) <= m * math.sqrt(k) + 1e-9
    if indicator.measure == "share":
        stacked = [
            np.concatenate([v.vectors["with_condition"], v.vectors["without_condition"]]) for v in (full, without)
        ]
        diff = (stacked[0] - stacked[1]).astype(float)
        assert math.sqrt((diff**2).sum()) <= m * stated.l2 + 1e-9
    if indicator.measure == "median":
        assert full.values is not None and without.values is not None
        changed = 0
        for ours, theirs in zip(full.values, without.values, strict=True):
            removed = Counter(ours) - Counter(theirs)
            assert sum(removed.values()) <= m  # one value per unit per cell
            changed += bool(removed)
        assert changed <= m * k


@pytest.mark.parametrize("indicator", INDICATORS, ids=[i.id for i in INDICATORS])
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rest=others, units=st.lists(one_unit, min_size=1, max_size=4), max_cells=st.integers(1, 3))
def test_a_person_held_as_m_keys_moves_each_query_by_at_most_m_sensitivities(indicator, rest, units, max_cells) -> None:
    indicator = indicator.model_copy(update={"max_cells_per_person": max_cells})
    background = [(f"c{c}", 10 * p + c, v) for p, c, v in rest]  # person p's key at charity c
    # The person at len(units) charities that do not link records: one key at each.
    person = [(f"u{i}", 1000 + i, v) for i, unit in enumerate(units) for v in unit]
    _assert_within_m(
        indicator, _aggregates(indicator, background + person), _aggregates(indicator, background), len(units)
    )


@pytest.mark.parametrize("indicator", INDICATORS, ids=[i.id for i in INDICATORS])
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rest=others, twin=one_unit, other_twin=one_unit, max_cells=st.integers(1, 3))
def test_a_person_whose_twin_linkage_joined_to_them_moves_each_query_by_at_most_two_sensitivities(
    indicator, rest, twin, other_twin, max_cells
) -> None:
    # Linkage takes twins (one surname, birth date and district) for one person: their rows are one unit, named by
    # the smaller key. Without one of them the other is a unit of their own, bounded afresh: two units' worth, what
    # ``privacy.linked_units_per_person: 2`` declares.
    indicator = indicator.model_copy(update={"max_cells_per_person": max_cells})
    background = [(f"c{c}", 10 * p + c, v) for p, c, v in rest]
    joined = [("l0", 1000, v) for v in twin] + [("l1", 1000, v) for v in other_twin]
    alone = [("l1", 1001, v) for v in other_twin]
    _assert_within_m(
        indicator, _aggregates(indicator, background + joined), _aggregates(indicator, background + alone), 2
    )


def test_removing_a_twin_can_move_a_query_by_more_than_one_sensitivity() -> None:
    # Why one unit across linking charities does not cover twins: the pair, one unit, is counted in one area chosen
    # by keyed hash; the twin left is counted in their own. Some key puts the pair in the removed twin's area.
    indicator = load_catalogue().get("people_by_local_authority")
    stated = query_sensitivity(indicator).l2
    moved = []
    for key in range(1000, 1020):
        pair = [("l0", key, (0, "food", None, None, None, None)), ("l1", key, (1, "food", None, None, None, None))]
        alone = [("l1", key + 1, (1, "food", None, None, None, None))]
        full, without = _aggregates(indicator, pair), _aggregates(indicator, alone)
        moved.append(float(np.linalg.norm(full.vectors["people"] - without.vectors["people"])))
    assert max(moved) == pytest.approx(math.sqrt(2) * stated) and max(moved) <= 2 * stated


def test_openDP_maps_give_m_squared_rho_for_every_indicator() -> None:
    # The anchor: the Gaussian of sensitivity 1 at scale 2 costs 0.125, 0.5, 1.125 at 1, 2, 3 units.
    zeros = BoundedAggregates(cells=[], vectors={"people": np.zeros(3, dtype=np.int64)})
    gaussian = discrete_gaussian(zeros, lambda a: a.vectors["people"], l2_sensitivity=1.0, rho=0.125).measurement
    assert [gaussian.map(m) for m in (1, 2, 3)] == pytest.approx([0.125, 0.5, 1.125])
    rows = [(f"c{i % 3}", i, (i % len(AREAS), NEEDS[i % 4], None, 100 * i, 900, 1000)) for i in range(60)]
    for indicator in INDICATORS:
        released = release_indicator(indicator, _aggregates(indicator, rows), rho=0.5)
        one = released.rho_at(1)
        assert one == pytest.approx(0.5, rel=1e-6) and one <= 0.5 + 1e-12, indicator.id
        for m in (1, 2, 3, 4):
            assert released.rho_at(m) == pytest.approx(m**2 * one, rel=1e-9), (indicator.id, m)
            assert released.rho_at(m) == pytest.approx(sum(part.rho_at(m) for part in released.measurements))
            # What a recharge uses, from a measurement's ρ at one unit alone (all the ledger keeps of it).
            for part in released.measurements:
                assert rho_at_units(part.rho, m) == pytest.approx(part.rho_at(m), rel=1e-9), (indicator.id, part.name)


@pytest.mark.parametrize("people", [60, 3000])  # medians' brackets at their widest, and inside
def test_a_measurement_read_back_from_its_record_charges_what_its_release_charged(people: int) -> None:
    """What a release package records of each measurement (mechanism, ρ, scale, sensitivity, the indicator's cells per
    person) gives, through OpenDP's maps, the very figures the release charged: its ρ per unit, and at every number
    of units (a bracketing quantile's alpha, which is not recorded, found by OpenDP's search)."""
    rows = [(f"c{i % 3}", i, (i % len(AREAS), NEEDS[i % 4], None, (37 * i) % 9000, 900, 1000)) for i in range(people)]
    for indicator in INDICATORS:
        released = release_indicator(indicator, _aggregates(indicator, rows), rho=0.5)
        for part in released.measurements:
            recorded = RecordedMeasurement(
                indicator.id,
                part.name,
                part.mechanism,
                part.rho,
                part.scale,
                part.sensitivity,
                indicator.max_cells_per_person,
            )
            for m in (1, 2, 4):
                charged = recorded_charge(recorded, units=m)
                assert (charged.rho, charged.rho_per_person, charged.max_units) == (part.rho, part.rho_at(m), m), (
                    indicator.id,
                    part.name,
                )


def test_a_recorded_rho_that_openDP_maps_contradict_is_refused() -> None:
    # A count's cells at k = 3 (sensitivity √3) and a median's bracket, as a release records them.
    rho, scale, root_3 = 0.017499999965000002, 9.258201006983715, 3**0.5
    assert (
        recorded_charge(RecordedMeasurement("i", "cells", "discrete_gaussian", rho, scale, root_3, 3), units=2).rho
        == rho
    )
    for contradicted in (
        RecordedMeasurement("i", "cells", "discrete_gaussian", 0.0174, scale, root_3, 3),  # ρ lowered
        RecordedMeasurement("i", "cells", "discrete_gaussian", rho, scale, 1.0, 3),  # sensitivity lowered
        RecordedMeasurement("i", "cells", "laplace", rho, scale, root_3, 3),  # no release makes one
        RecordedMeasurement("i", "cells", "discrete_gaussian", rho, 1e-320, root_3, 3),  # infinite ρ passed for one
        RecordedMeasurement("i", "cells", "discrete_gaussian", rho, scale, 1e308, 3),  # OpenDP's map overflows
    ):
        with pytest.raises(ValueError, match=r"OpenDP's map|no release makes|OpenDP cannot measure"):
            recorded_charge(contradicted, units=2)
    # A bracket's ρ lies between its maps at alpha 1/2 and 0.99 (0.000128 and 0.0005 at this scale), and must be one
    # the part gives at some alpha in between: a quarter less than recorded is not.
    bracket_scale = 31.30654883566696
    bracket = RecordedMeasurement("median", "lower_bracket", "quantile", 0.0005, bracket_scale, 1.0, 1)
    assert recorded_charge(bracket, units=2).rho_per_person == 0.002
    for lowered in (0.000375, 0.0001, 0.0006):
        with pytest.raises(ValueError, match=r"at any alpha from 0\.5 to 0\.99"):
            recorded_charge(
                RecordedMeasurement("median", "lower_bracket", "quantile", lowered, bracket_scale, 1.0, 1), units=2
            )
    # A median's alpha is 1/2: a bracket's ρ under a median's name is refused.
    with pytest.raises(ValueError, match="OpenDP's map"):
        recorded_charge(RecordedMeasurement("median", "median", "quantile", 0.0005, bracket_scale, 1.0, 1), units=2)


def test_a_quantile_measurements_map_does_not_depend_on_its_candidates() -> None:
    """A package does not record a median's candidates: its measurement is rebuilt over others."""
    for alpha in (0.5, 0.73, 0.99):
        maps = {
            tuple(quantile_measurement(0, candidates=candidates, alpha=alpha, scale=7.5).map(m) for m in (1, 3))
            for candidates in ((0, 1), tuple(range(0, 25_001, 50)), (-5, 3, 1_000_000))
        }
        assert len(maps) == 1, alpha


def _contacts(people: int) -> duckdb.DuckDBPyConnection:
    con = _warehouse(
        [(f"c{i % 2}", i, (i % len(AREAS), "food", None, 10 * i, 900, 1000)) for i in range(people)], fresh=True
    )
    return con


def _release(con: duckdb.DuckDBPyConnection, policy: ReleasePolicy, period: str = "2026Q1", revise: bool = False):  # type: ignore[no-untyped-def]
    return release_period(
        con,
        period=period,
        catalogue=load_catalogue(),
        policy=policy,
        contributors=Contributors(4, ()),
        salt="x",
        standard_version="1.0",
        code_version="t",
        revise=revise,
    )


def test_the_ledger_records_rho_per_unit_and_for_the_worst_case_person() -> None:
    con = _contacts(80)
    summary = _release(con, ReleasePolicy(0.1, BudgetPolicy(period_rho=1.0, lifetime_rho=5.0), max_units=3))
    assert summary.rho == pytest.approx(0.1 * SPENT) and summary.rho_per_person == pytest.approx(0.9 * SPENT)
    assert spent(con, per_person=False) == pytest.approx(0.1 * SPENT) and spent(con) == pytest.approx(0.9 * SPENT)
    rows = con.execute("SELECT DISTINCT max_units FROM privacy_ledger").fetchall()
    assert rows == [(3,)]
    assert con.execute("SELECT units_per_person, rho_per_person FROM releases").fetchall() == [
        (3, pytest.approx(0.9 * SPENT))
    ]


def test_a_release_within_the_budget_per_unit_but_not_per_person_is_refused_and_leaves_no_trace() -> None:
    con = _contacts(80)
    # 0.3 per unit fits a period budget of 1.0; a person held as 2 units spends 1.2.
    policy = ReleasePolicy(0.3, BudgetPolicy(period_rho=1.0, lifetime_rho=5.0), max_units=2)
    with pytest.raises(BudgetExceeded, match="worst-case person"):
        _release(con, policy)
    for table in ("releases", "release_cells", "release_measurements", "privacy_ledger"):
        assert con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] == 0, table
    # The lifetime: 0.2 per unit at 2 units is 0.8 per person a quarter; a lifetime budget of 2.0 stops the third.
    policy = ReleasePolicy(0.2, BudgetPolicy(period_rho=1.0, lifetime_rho=2.0), max_units=2)
    _release(con, policy, "2026Q1")
    _release(con, policy, "2026Q2")
    with pytest.raises(BudgetExceeded, match="lifetime"):
        _release(con, policy, "2026Q3")
    assert (
        spent(con) == pytest.approx(1.6 * SPENT) and con.execute("SELECT count(*) FROM releases").fetchall()[0][0] == 2
    )


def test_units_across_linking_charities_are_declared_exactly_when_a_contributor_links_records() -> None:
    with pytest.raises(ValueError, match="some of a person's units"):
        ReleasePolicy(0.1, BudgetPolicy(period_rho=1.0, lifetime_rho=5.0), max_units=2, linked_units=3)
    con = _contacts(10)
    budget = BudgetPolicy(period_rho=10.0, lifetime_rho=50.0)
    for policy, linking in (
        (ReleasePolicy(0.1, budget, 2, linked_units=1), ()),
        (ReleasePolicy(0.1, budget, 2), ("c0",)),
    ):
        with pytest.raises(ValueError, match="if and only if a contributor links records"):
            release_period(
                con,
                period="2026Q1",
                catalogue=load_catalogue(),
                policy=policy,
                contributors=Contributors(2, linking),
                salt="x",
                standard_version="1.0",
                code_version="t",
            )
    assert con.execute("SELECT count(*) FROM releases").fetchall() == [(0,)]


def test_a_release_under_declared_caps_counts_the_units_they_give_its_contributors() -> None:
    con = _contacts(10)
    budget = BudgetPolicy(period_rho=10.0, lifetime_rho=50.0)
    caps = UnitCaps(unlinked=None, linked=2)
    with pytest.raises(ValueError, match="those its declared caps give its contributors"):
        release_period(
            con,
            period="2026Q1",
            catalogue=load_catalogue(),
            policy=ReleasePolicy(0.1, budget, 3, linked_units=2, caps=caps),  # 3 do not link, so 5
            contributors=Contributors(4, ("c0",)),
            salt="x",
            standard_version="1.0",
            code_version="t",
        )
    assert caps.units_per_person(3, linking=True) == 5 and caps.units_per_person(3, linking=False) == 3
    assert UnitCaps(unlinked=1, linked=1).units_per_person(3, linking=True) == 2
    assert UnitCaps(unlinked=0, linked=1).units_per_person(0, linking=False) == 1  # a person is at least one unit


def test_a_quarter_charged_again_past_its_budget_is_named() -> None:
    # A privacy re-trial: charged again after the caps were raised, an earlier quarter went past its budget and
    # nothing said so. The release that charged it goes ahead (refusing it would undo nothing); the quarter is named.
    con = _contacts(80)
    budget = BudgetPolicy(period_rho=1.0, lifetime_rho=50.0)
    linking = Contributors(2, ("c0",))  # one charity that does not link records, one that does

    def release_with(rho: float, caps: UnitCaps, period: str) -> None:
        units = caps.units_per_person(1, linking=True)
        policy = ReleasePolicy(rho, budget, units, linked_units=caps.linked, caps=caps)
        release_period(
            con,
            period=period,
            catalogue=load_catalogue(),
            policy=policy,
            contributors=linking,
            salt="x",
            standard_version="1.0",
            code_version="t",
        )

    release_with(0.1, UnitCaps(linked=1), "2026Q1")  # 2 units: 0.4 a person
    assert periods_over_budget(con, budget) == {}
    release_with(0.05, UnitCaps(linked=3), "2026Q2")  # 4 units: 0.8; and 2026Q1 charged again at 4, 1.6
    assert periods_over_budget(con, budget) == {"2026Q1": pytest.approx(1.6 * SPENT, rel=1e-9)}


def test_a_release_made_after_the_clock_was_set_back_still_counts_the_releases_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a release states it cost so far was cut at its own time: a clock set back between two releases (another
    host, a correction) left the earlier release out of the later one's lifetime figure, understating it."""
    import datetime as dt

    from collab.publication import per_person_privacy, release_record
    from privacy import accountant

    class Clock:
        UTC = dt.UTC

        class datetime:  # stands in for the module's datetime class
            at = dt.datetime(2026, 7, 2, 10, tzinfo=dt.UTC)

            @classmethod
            def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:
                return cls.at

    monkeypatch.setattr(accountant, "dt", Clock)
    con = _contacts(40)
    policy = ReleasePolicy(0.1, BudgetPolicy(period_rho=1.0, lifetime_rho=5.0), max_units=2)
    first = _release(con, policy, "2026Q1")
    Clock.datetime.at = dt.datetime(2026, 4, 2, 10, tzinfo=dt.UTC)  # set back a quarter
    second = _release(con, policy, "2026Q2")
    stated = {
        summary.release_id: per_person_privacy(con, release_record(con, summary.release_id), 1e-7)["lifetime_rho"]
        for summary in (first, second)
    }
    assert stated[second.release_id] == pytest.approx(spent(con)) == pytest.approx(2 * first.rho_per_person)
    assert stated[first.release_id] == pytest.approx(first.rho_per_person)  # as of its own release, not after
