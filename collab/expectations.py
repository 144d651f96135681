"""The Great Expectations suite of the standard: one expectation per rule, generated from the model.

It runs on each batch of a submission's staged contacts, on the analyst's side (the asset check
``check_staged_contacts_expectations``), never in the charity's checker. GX 1.x validates pandas, so
the Polars batch is converted at this boundary, in an ephemeral context. Its results are an
independent, analyst-readable record that what is about to be loaded meets the rules the standard's
validation enforced; they are summed over batches and kept whole as an artefact.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from pydantic import BaseModel

from collab.staging import staged_tables
from standards.codelists import load_codelist
from standards.extract import (
    AMOUNT_FIELDS,
    CODELIST_FIELDS,
    EARLIEST_BIRTH_DATE,
    EARLIEST_CONTACT_DATE,
    FIELDS,
    MAX_AMOUNT_GBP,
    MAX_TEXT_CHARS,
    REQUIRED_FIELDS,
    STANDARD_CONTACT_SCHEMA,
)
from standards.geography import SUCCESSOR_CODES, load_geography
from standards.personal_data import EMAIL, NI_NUMBER

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

# A validation run costs GX about half a second of planning whatever its size, and little per row once dates
# reach it as timestamps and codes as categories: large batches keep the suite a small share of intake.
# Read from the staged file (``ExpectationRun.validate_staged``), a batch of 1,000,000 contacts is about 70 MB
# in pandas; the asset check of a 1,000,000-row file peaked under 600 MB (`python -m bench.intake`).
EXPECTATION_BATCH_ROWS = 1_000_000
# Columns of a few distinct codes each: as pandas categories they cost GX one comparison per code, not
# per row, and almost no memory.
_CODE_FIELDS = [*CODELIST_FIELDS, "local_authority_code"]


class ExpectationOutcome(BaseModel):
    """One rule of the standard as checked by the Great Expectations suite."""

    expectation: str
    column: str | None
    rule: str
    success: bool
    element_count: int
    unexpected_count: int
    unexpected_percent: float


def _midnight(day: dt.date) -> dt.datetime:
    # pandas holds Polars dates as Timestamps, which compare with datetimes but not dates.
    return dt.datetime.combine(day, dt.time())


def build_expectations(columns: set[str]) -> list[Expectation]:
    """Expectations for the standard's rules on the fields present in a file."""
    import great_expectations as gx

    E = gx.expectations
    today = _midnight(dt.date.today())
    rules: list[Expectation] = [
        E.ExpectTableRowCountToBeBetween(min_value=1, meta={"rule": "The file has at least one contact"})
    ]
    for name in REQUIRED_FIELDS:
        rules.append(E.ExpectColumnValuesToNotBeNull(column=name, meta={"rule": f"{name} is present and readable"}))
    present = columns
    if "person_ref" in present:
        rules.append(
            E.ExpectColumnValueLengthsToBeBetween(
                column="person_ref",
                min_value=1,
                max_value=MAX_TEXT_CHARS,
                meta={"rule": f"person_ref has at most {MAX_TEXT_CHARS} characters"},
            )
        )
    if "person_ref" in present:
        rules.append(
            # The two shapes as one pattern (NI_NUMBER's case-blindness kept to its own part): GX reads the column
            # once per pattern, and with two this one rule was half the suite's time (mean 0.47 s, then 0.40 s, for
            # 1,000,000 contacts, six runs each).
            E.ExpectColumnValuesToNotMatchRegex(
                column="person_ref",
                regex=f"(?i:{NI_NUMBER.removeprefix('(?i)')})|{EMAIL}",
                meta={"rule": "person_ref is not shaped like a National Insurance number or an email address"},
            )
        )
    if "contact_date" in present:
        rules.append(
            E.ExpectColumnValuesToBeBetween(
                column="contact_date",
                min_value=_midnight(EARLIEST_CONTACT_DATE),
                max_value=today,
                meta={"rule": f"contact_date is between {EARLIEST_CONTACT_DATE:%d/%m/%Y} and today"},
            )
        )
    if "date_of_birth" in present:
        rules.append(
            E.ExpectColumnValuesToBeBetween(
                column="date_of_birth",
                min_value=_midnight(EARLIEST_BIRTH_DATE),
                max_value=today,
                meta={"rule": "date_of_birth is after 1900 and not in the future"},
            )
        )
    for name, codelist in CODELIST_FIELDS.items():
        if name in present:
            rules.append(
                E.ExpectColumnValuesToBeInSet(
                    column=name,
                    value_set=list(load_codelist(codelist).values),
                    meta={"rule": f"{name} is a code of the {codelist} codelist"},
                )
            )
    if "local_authority_code" in present:
        codes = [*load_geography().local_authorities, *SUCCESSOR_CODES]
        rules.append(
            E.ExpectColumnValuesToBeInSet(
                column="local_authority_code",
                value_set=codes,
                meta={"rule": "local_authority_code is a UK local authority (LAD 2025)"},
            )
        )
    if "postcode" in present:
        rules.append(
            E.ExpectColumnValuesToMatchRegex(
                column="postcode",
                regex=r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?(?:[0-9][A-Z]{2})?$",
                meta={"rule": "postcode is a UK postcode or district"},
            )
        )
    for name in AMOUNT_FIELDS:
        if name in present:
            rules.append(
                E.ExpectColumnValuesToBeBetween(
                    column=name,
                    min_value=0,
                    max_value=MAX_AMOUNT_GBP,
                    meta={"rule": f"{name} is between £0 and £{MAX_AMOUNT_GBP:,}"},
                )
            )
    if "children_in_household" in present:
        rules.append(
            E.ExpectColumnValuesToBeBetween(
                column="children_in_household",
                min_value=0,
                max_value=20,
                meta={"rule": "children_in_household is between 0 and 20"},
            )
        )
    return rules


@cache
def _context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine
    from tqdm import tqdm

    # GX fingerprints every pandas batch (a hash of all its values: a third of a run's time here) unless it
    # is larger than this; it measures size without the strings' contents, so a batch of contacts never is.
    # The fingerprint is only a marker in the results; nothing we keep relies on it.
    pandas_execution_engine.HASH_THRESHOLD = 0
    # GX makes a (disabled) tqdm bar per validation, and tqdm's first bar starts a monitor thread: none is
    # wanted in a process that forks workers (`collab run`'s fork server warms GX up), nor is it needed.
    tqdm.monitor_interval = 0
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.data_sources.add_pandas("extracts").add_dataframe_asset("batch").add_batch_definition_whole_dataframe(
        "whole"
    )
    return context


def _validation_definition(fields: tuple[str, ...]) -> Any:
    """The validation definition of the suite for these fields, made on first use and kept for the process:
    a suite and its definition never change once made (the rules are the standard's), so every batch of every
    submission with the same fields shares them."""
    import great_expectations as gx

    context = _context()
    suite_name = "extract_v1:" + ",".join(fields)
    try:
        return context.validation_definitions.get(suite_name)
    except Exception:  # GX raises DataContextError subclasses for a missing definition
        suite = context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=build_expectations(set(fields))))
        batch_definition = context.data_sources.get("extracts").get_asset("batch").get_batch_definition("whole")
        return context.validation_definitions.add(
            gx.ValidationDefinition(name=suite_name, data=batch_definition, suite=suite)
        )


def _run_unrecorded(validation: Any, frame: Any) -> Any:
    """``validation.run`` on one pandas batch, without adding its result to the context's results store.

    The context lives as long as the process, across submissions and charities: its store would keep every
    batch's result (their sample unexpected values are charities' data) for the process's life, and storing
    each (with ``run``'s check that the definition is saved) cost about a tenth of a small file's validation.
    The result is what ``run`` returns, with the same identifying ``meta``; it is kept with its submission.
    """
    from great_expectations.constants import DATAFRAME_REPLACEMENT_STR
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.validator.v1_validator import Validator

    validator = Validator(
        batch_definition=validation.batch_definition,
        batch_parameters={"dataframe": frame},
        result_format="SUMMARY",
    )
    with _configurations_computed_once(), _plans_reused():
        result = validator.validate_expectation_suite(validation.suite)
    run_id = RunIdentifier(run_time=dt.datetime.now(dt.UTC))
    result.meta.update(
        validation_id=validation.id,
        checkpoint_id=None,
        run_id=run_id,
        validation_time=run_id.run_time,
        batch_parameters={"dataframe": DATAFRAME_REPLACEMENT_STR},
    )
    return result


# The swaps of GX's methods below are process-wide: one validation holds them at a time.
_SWAP = threading.Lock()


@contextmanager
def _configurations_computed_once() -> Iterator[None]:
    """While it lasts, each expectation object computes its ``configuration`` once, not on every lookup.

    GX's ``Expectation.configuration`` rebuilds an ``ExpectationConfiguration`` from the pydantic model's whole
    ``dict()`` each time it is read, and planning one validation reads it about 130 times per expectation:
    that was over a third of a small batch's validation. The objects GX plans with are made from the suite's
    configurations for the one validation and not changed while it runs, so their first answer stays right.
    Scoped to one validation (the objects and their answers are dropped after it), not installed for good;
    validations in other threads of the process wait for it, so none sees another's answers or restores them."""
    from great_expectations.expectations.expectation import Expectation

    computed: dict[int, tuple[Expectation, Any]] = {}

    with _SWAP:
        # Read under the lock: outside it, another validation's swapped property could be taken for GX's own.
        rebuild = Expectation.configuration.fget
        assert rebuild is not None

        def configuration(expectation: Expectation) -> Any:
            # Keyed by id with the object held alongside, so no id is reused by another object meanwhile.
            known = computed.get(id(expectation))
            if known is None:
                known = computed[id(expectation)] = (expectation, rebuild(expectation))
            return known[1]

        Expectation.configuration = property(configuration)  # type: ignore[assignment,method-assign]
        try:
            yield
        finally:
            Expectation.configuration = property(rebuild)  # type: ignore[assignment,method-assign]
            computed.clear()


# Each plan GX made, by what it was made from (see ``_plans_reused``): one per suite, a few per process.
_PLANS: dict[str, tuple[list[Any], list[Any]]] = {}


@contextmanager
def _plans_reused() -> Iterator[None]:
    """While it lasts, GX plans the metrics of a suite's expectations once per process, not once per validation.

    Before computing anything, a validation turns every expectation into a graph of the metrics it needs (about
    a thousand metric configurations for the standard's suite, each identified by a hash of its keyword
    arguments, code lists included): half of a small batch's validation. The plan is made from the
    expectations' configurations, the batch's id and the run's settings alone, never from the batch's data
    (its id is the same for every batch, ``extracts-batch``, since GX does not fingerprint them: see
    ``_context``); so a plan made from the same three is the same, and is kept, keyed by all three, and
    handed to the next validation in place of a new one. GX only reads a plan while it resolves it (the
    lists it edits are copies), and a kept plan keeps no batch alive. A plan in which GX failed an expectation
    is not kept. Taken only by a validation holding ``_SWAP`` (``_configurations_computed_once`` takes it)."""
    import json

    from great_expectations.validator.validator import Validator

    assert _SWAP.locked()
    plan = Validator._generate_metric_dependency_subgraphs_for_each_expectation_configuration

    def reuse(
        validator: Validator,
        expectation_configurations: list[Any],
        processed_configurations: list[Any],
        catch_exceptions: bool,
        runtime_configuration: dict[str, Any] | None = None,
    ) -> tuple[list[Any], list[Any], list[Any]]:
        made_from = [validator.active_batch_id, catch_exceptions, runtime_configuration]
        made_from.append([configuration.to_json_dict() for configuration in expectation_configurations])
        key = json.dumps(made_from, sort_keys=True, default=str)
        known = _PLANS.get(key)
        if known is None:
            graphs, failures, planned = plan(
                validator, expectation_configurations, processed_configurations, catch_exceptions, runtime_configuration
            )
            if failures:
                return graphs, failures, planned
            known = _PLANS[key] = (graphs, planned)
        graphs, planned = known
        return list(graphs), [], list(planned)

    Validator._generate_metric_dependency_subgraphs_for_each_expectation_configuration = reuse  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        Validator._generate_metric_dependency_subgraphs_for_each_expectation_configuration = plan  # type: ignore[method-assign]


def warm_up() -> None:
    """Set up Great Expectations in this process before any submission: its imports, the context, and the
    suite of every staged field, run once on an empty batch so the first real batch finds everything loaded.
    The fork server of `collab run` calls it (see ``pipelines.worker_preload``): done once there, every worker
    it forks starts warm instead of paying several CPU seconds of its own. Nothing of a submission is in it.

    The empty batch is made in pandas, as GX receives it, never in Polars: Polars' thread pool, once started,
    is not in a forked child, and the child's first parallel Polars call would wait for it for ever."""
    import pandas as pd

    fields = [name for name in STANDARD_CONTACT_SCHEMA if name in FIELDS]
    empty = pd.DataFrame({name: pd.Series(dtype=_pandas_dtype(name)) for name in fields})
    _run_unrecorded(_validation_definition(tuple(sorted(fields))), empty)


def _pandas_dtype(name: str) -> str:
    """The pandas type of a staged field as ``ExpectationRun.validate`` hands it to GX."""
    if name in _CODE_FIELDS:
        return "category"
    dtype = STANDARD_CONTACT_SCHEMA[name]
    if dtype == pl.Date:
        return "datetime64[ns]"
    return {pl.Int64: "int64", pl.Float64: "float64"}.get(type(dtype), "object")


@dataclass
class ExpectationRun:
    """Results of the suite summed over a file's batches, plus each batch's raw GX result."""

    outcomes: dict[str, ExpectationOutcome] = field(default_factory=dict)
    raw_results: list[dict[str, Any]] = field(default_factory=list)

    def validate_staged(self, path: Path) -> None:
        """Validate the contacts staged at ``path``, batch by batch, read from the file straight into what GX
        receives: codes as categories from the file's own dictionaries, dates as timestamps. Each column is a block of
        its own (``split_blocks``): GX reads column by column, and gathering columns of one type into one block copied
        them all, in fresh memory, dear on a new worker. `bench.intake`'s suite over 995,093 staged contacts, ten
        alternating pairs of processes (quiet machine, 2026-12-04): median 0.293 s and 0.334 CPU s, against 0.338
        and 0.420."""
        for table in staged_tables(path, EXPECTATION_BATCH_ROWS, list(FIELDS), _CODE_FIELDS):
            frame = table.to_pandas(date_as_object=False, coerce_temporal_nanoseconds=True, split_blocks=True)
            self._validate(frame, table.column_names)

    def validate(self, batch: pl.DataFrame, fields: list[str]) -> None:
        """Validate one batch of contacts held in Polars."""
        frame = batch.select(fields).with_columns(
            pl.col(pl.Date).cast(pl.Datetime("ns")),
            pl.col([name for name in _CODE_FIELDS if name in fields]).cast(pl.Categorical),
        )
        self._validate(frame.to_pandas(), fields)

    def _validate(self, frame: Any, fields: list[str]) -> None:
        """Validate a pandas batch of ``fields``, typed as ``_pandas_dtype`` says. Dates as nanosecond timestamps:
        GX compares only those (and numbers) vectorised, anything else a value at a time in Python. They compare
        with the suite's midnights exactly as dates would."""
        validation = _validation_definition(tuple(sorted(fields)))
        result = _run_unrecorded(validation, frame)
        as_json = result.to_json_dict()
        self.raw_results.append(as_json)
        for item in as_json["results"]:
            self._add(item)

    def _add(self, item: dict[str, Any]) -> None:
        config = item["expectation_config"]
        rule = config["meta"]["rule"]
        stats = item.get("result") or {}
        elements = int(stats.get("element_count") or 0)
        unexpected = int(stats.get("unexpected_count") or 0)
        previous = self.outcomes.get(rule)
        if previous is not None:
            elements += previous.element_count
            unexpected += previous.unexpected_count
        self.outcomes[rule] = ExpectationOutcome(
            expectation=config["type"],
            column=config["kwargs"].get("column"),
            rule=rule,
            success=bool(item["success"]) and (previous is None or previous.success),
            element_count=elements,
            unexpected_count=unexpected,
            unexpected_percent=100 * unexpected / elements if elements else 0.0,
        )
