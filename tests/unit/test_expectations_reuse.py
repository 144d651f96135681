"""Great Expectations is set up once per process and shared by every submission it checks: nothing of one
submission's batch stays in it for the next, another charity's included."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import polars as pl

from collab import expectations
from collab.expectations import ExpectationRun, warm_up
from standards.check import check_extract
from standards.extract import FIELDS
from tests.conftest import CollectingSink, contact_rows, write_csv

SECRET_NEED = "leaked_need_code"


def _staged(path: Path, rows: int, prefix: str) -> pl.DataFrame:
    sink = CollectingSink()
    assert check_extract(write_csv(path, contact_rows(rows, prefix=prefix)), sink=sink).report.accepted
    return pl.concat(sink.frames)


def _validated(contacts: pl.DataFrame) -> ExpectationRun:
    run = ExpectationRun()
    run.validate(contacts, [name for name in contacts.columns if name in FIELDS])
    return run


def test_one_charitys_batch_leaves_nothing_for_the_next(tmp_path: Path) -> None:
    warm_up()  # as a worker of `collab run` starts: set up before any submission
    first = _staged(tmp_path / "north.csv", 30, "N")
    second = _staged(tmp_path / "south.csv", 12, "S")
    bad = first.with_columns(pl.lit(SECRET_NEED).alias("need"))
    bad_run = _validated(bad)
    assert not bad_run.outcomes["need is a code of the need codelist"].success

    after = _validated(second)
    # The same suite object served both, and the second file's results are its own alone.
    assert all(o.success for o in after.outcomes.values())
    assert {o.element_count for o in after.outcomes.values() if o.column} == {12}
    kept = json.dumps(after.raw_results, default=str)
    assert SECRET_NEED in json.dumps(bad_run.raw_results, default=str) and SECRET_NEED not in kept
    # No result is kept in the process-wide context, where the next submission's run would find it.
    assert expectations._context().validation_results_store.list_keys() == []
    # And a second validation of the first file gives what the first did: nothing accumulated in between.
    again = _validated(bad)
    need = again.outcomes["need is a code of the need codelist"]
    assert (need.unexpected_count, need.element_count) == (30, 30)


def test_validations_in_two_threads_take_turns_and_leave_gx_its_own_configuration() -> None:
    from great_expectations.expectations.expectation import Expectation

    own = Expectation.configuration.fget
    holding, done = threading.Event(), threading.Event()

    def validating() -> None:
        with expectations._configurations_computed_once():
            holding.set()
            done.wait(10)

    first = threading.Thread(target=validating)
    first.start()
    assert holding.wait(10)
    waiting = threading.Thread(target=_enter_and_leave)
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive(), "a second validation swapped the configuration while the first held it"
    done.set()
    first.join(10)
    waiting.join(10)
    assert not waiting.is_alive()
    assert Expectation.configuration.fget is own


def _enter_and_leave() -> None:
    with expectations._configurations_computed_once():
        pass


def test_configurations_computed_once_give_gx_s_own_results(tmp_path: Path) -> None:
    """The validation with each expectation's configuration computed once finds what GX's own ``run`` finds."""
    contacts = _staged(tmp_path / "north.csv", 30, "N").with_columns(
        pl.when(pl.col("source_row") == 2).then(pl.lit(SECRET_NEED)).otherwise(pl.col("need")).alias("need")
    )
    fields = [name for name in contacts.columns if name in FIELDS]
    frame = contacts.select(fields).to_pandas()
    validation = expectations._validation_definition(tuple(sorted(fields)))

    def found(result: object) -> list[tuple[object, ...]]:
        as_json = result.to_json_dict()  # type: ignore[attr-defined]
        return sorted(
            (
                item["expectation_config"]["meta"]["rule"],
                item["success"],
                (item["result"] or {}).get("unexpected_count"),
            )
            for item in as_json["results"]
        )

    ours = found(expectations._run_unrecorded(validation, frame))
    own = found(validation.run(batch_parameters={"dataframe": frame}))
    assert ours == own
    assert ("need is a code of the need codelist", False, 1) in ours


def _batches(tmp_path: Path) -> list[pl.DataFrame]:
    """Batches a plan must not depend on: clean, with wrong codes, dates and amounts, with missing required
    values, of another size, and empty."""
    clean = _staged(tmp_path / "north.csv", 30, "N")
    broken = clean.with_columns(
        pl.when(pl.col("source_row") == 2).then(pl.lit(SECRET_NEED)).otherwise(pl.col("need")).alias("need"),
        pl.when(pl.col("source_row") == 3)
        .then(pl.lit(dt.date(2040, 1, 1)))
        .otherwise(pl.col("contact_date"))
        .alias("contact_date"),
        pl.when(pl.col("source_row") == 4)
        .then(pl.lit(-5.0))
        .otherwise(pl.col("monthly_income_gbp"))
        .alias("monthly_income_gbp"),
        pl.when(pl.col("source_row") == 5).then(None).otherwise(pl.col("person_ref")).alias("person_ref"),
    )
    return [clean, broken, _staged(tmp_path / "south.csv", 7, "S"), clean.clear()]


def _results(result: object) -> list[dict[str, object]]:
    """A validation's results, all of them, as JSON (the suite's run-specific ids and times are elsewhere)."""
    return json.loads(json.dumps(result.to_json_dict()["results"], default=str))  # type: ignore[attr-defined]


def test_a_reused_plan_finds_what_a_new_plan_finds_in_any_batch(tmp_path: Path) -> None:
    """The suite's metrics are planned once per process and the plan reused: each batch, whatever its contents,
    gets the results GX's own run (which plans anew) gives it, and planning is not done again."""
    from great_expectations.validator.validator import Validator

    planned = []
    plan = Validator._generate_metric_dependency_subgraphs_for_each_expectation_configuration

    def counting(*args: object, **kwargs: object) -> object:
        planned.append(1)
        return plan(*args, **kwargs)  # type: ignore[arg-type]

    batches = _batches(tmp_path)
    fields = [name for name in batches[0].columns if name in FIELDS]
    validation = expectations._validation_definition(tuple(sorted(fields)))
    expectations._PLANS.clear()
    Validator._generate_metric_dependency_subgraphs_for_each_expectation_configuration = counting  # type: ignore[method-assign,assignment]
    try:
        for batch in batches:
            frame = batch.select(fields).to_pandas()
            assert _results(expectations._run_unrecorded(validation, frame)) == _results(
                validation.run(batch_parameters={"dataframe": frame})
            )
    finally:
        Validator._generate_metric_dependency_subgraphs_for_each_expectation_configuration = plan  # type: ignore[method-assign]
    # GX's own runs planned each batch; ours planned once, for the first.
    assert len(planned) == len(batches) + 1
    assert len(expectations._PLANS) == 1
    assert Validator._generate_metric_dependency_subgraphs_for_each_expectation_configuration is plan
    broken = _validated(batches[1]).outcomes
    assert {outcome.column for outcome in broken.values() if not outcome.success} == {
        "person_ref",
        "contact_date",
        "need",
        "monthly_income_gbp",
    }


def test_a_plan_is_made_from_the_suite_alone_never_from_the_batch(tmp_path: Path) -> None:
    """What makes reusing a plan safe: GX plans the same metrics for every batch of a suite."""
    batches = _batches(tmp_path)
    fields = [name for name in batches[0].columns if name in FIELDS]
    validation = expectations._validation_definition(tuple(sorted(fields)))
    plans = set()
    for batch in batches:
        expectations._PLANS.clear()
        expectations._run_unrecorded(validation, batch.select(fields).to_pandas())
        [(graphs, configurations)] = expectations._PLANS.values()
        edges = frozenset(edge.id for graph in graphs for edge in graph.graph.edges)
        plans.add((edges, json.dumps([c.to_json_dict() for c in configurations], sort_keys=True, default=str)))
    assert len(plans) == 1


def test_a_kept_plan_keeps_no_batch_alive(tmp_path: Path) -> None:
    """The plan outlives its validation; the charity's batch it was made for does not (GX itself holds the
    latest batch until the next validation, with or without a kept plan)."""
    import gc
    import weakref

    contacts = _staged(tmp_path / "north.csv", 30, "N")
    fields = [name for name in contacts.columns if name in FIELDS]
    validation = expectations._validation_definition(tuple(sorted(fields)))
    expectations._PLANS.clear()
    frames = [contacts.select(fields).to_pandas(), contacts.head(3).select(fields).to_pandas()]
    planned_from = weakref.ref(frames[0])
    for _ in range(2):
        expectations._run_unrecorded(validation, frames.pop(0))
    gc.collect()
    assert expectations._PLANS and planned_from() is None
