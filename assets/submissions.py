"""One landed file's path: received (copied and hashed), checked against the standard, fed back to its
charity, loaded. A rejected file is the pipeline working: every step up to its feedback materialises,
with status "rejected", the run succeeds, and only the load does not happen."""

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetObservation,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)

from assets.partitions import run_going, submission_partitions
from assets.resources import WAREHOUSE_POOL, CollabWorkspace, LandingZoneResource, Warehouse
from collab.expectations import ExpectationRun
from collab.faults import crash_point, worker_dies_on
from collab.intake import (
    SubmissionManifest,
    load_manifest,
    manifest_of_partition,
    read_receipt,
    receive_partition,
    submission_dir,
)
from collab.landing import LandingObjectGone, LandingObjectRefused
from collab.linkage import linkage_policy
from collab.staging import CONTACTS_FILE, StagingSink, minimise_staged_contacts, minimise_staged_units
from collab.states import mark_replaced, mark_state, state_after_feedback
from collab.submissions import (
    check_options,
    describe_error,
    internal_error_report,
    load_report,
    record_incident,
    save_report,
    send_feedback,
    warn_of_quarters_in_later_files,
    warn_of_quarters_mostly_replaced,
)
from collab.warehouse import load_submission
from collab.workspace import Workspace
from privacy.linkage import COMPONENTS, VARIANTS
from privacy.minimise import LINKAGE_UNIT_SCHEMA, WAREHOUSE_SCHEMA
from standards import STANDARD_VERSION
from standards.check import check_extract, new_reference
from standards.feedback import FeedbackReport
from standards.reading import FAILURES

GX_FILE = "gx_validation.json"


def _report(workspace: CollabWorkspace, submission_id: str) -> FeedbackReport:
    report = load_report(workspace.workspace, submission_id)
    if report is None:
        raise FileNotFoundError(f"submission {submission_id} has no report: submission_quality has not run")
    return report


@asset(partitions_def=submission_partitions, group_name="intake", output_required=False)
def submission_file(
    context: AssetExecutionContext, workspace: CollabWorkspace, landing_zone: LandingZoneResource
) -> Iterator[MaterializeResult | AssetObservation]:
    """The landed file copied into its submission's staging area and hashed (here, not in the sensor's tick):
    a new submission, or a duplicate of one already received (not processed again, its charity told).
    A file gone or changed since it was listed materialises nothing; a changed one gets a partition of its own."""
    ws, zone, key = workspace.workspace, landing_zone.zone, context.partition_key
    try:
        receipt = receive_partition(ws, zone, key, is_active=lambda other: run_going(context.instance, other))
    except (LandingObjectGone, LandingObjectRefused) as problem:
        # Nothing is received, so nothing materialises (the later steps skip); the run says why.
        status = "refused" if isinstance(problem, LandingObjectRefused) else "skipped"
        context.log.warning(f"{key}: {status}: {problem}")
        yield AssetObservation(
            asset_key=context.asset_key, partition=key, metadata={"status": status, "reason": str(problem)}
        )
        return
    manifest = load_manifest(ws, receipt.submission_id)
    status = "duplicate" if receipt.duplicate else "received"
    if receipt.duplicate:
        context.log.info(f"{key} duplicates {manifest.name} ({receipt.submission_id}); archived, not processed again.")
    yield MaterializeResult(
        metadata={
            "status": status,
            "submission_id": receipt.submission_id,
            "duplicate_of": manifest.name if receipt.duplicate else "none",
            "file_name": manifest.original_name,
            "bytes": manifest.size,
            "sha256": manifest.sha256,
        },
    )


def _submission(workspace: CollabWorkspace, partition_key: str) -> SubmissionManifest | None:
    """The submission the partition's run processes, or None if its file duplicated an earlier one."""
    receipt = read_receipt(workspace.workspace, partition_key)
    if receipt is None:
        raise FileNotFoundError(f"partition {partition_key} has not been received: submission_file has not run")
    return None if receipt.duplicate else load_manifest(workspace.workspace, receipt.submission_id)


EXPECTATIONS_CHECK = "check_staged_contacts_expectations"


@asset(
    partitions_def=submission_partitions,
    group_name="intake",
    deps=[submission_file],
    kinds={"polars"},
    output_required=False,
    check_specs=[
        AssetCheckSpec(
            EXPECTATIONS_CHECK,
            asset="submission_quality",
            blocking=True,
            description="The staged contacts meet the standard's Great Expectations suite (blocking: no feedback "
            "or load follows a failure).",
        )
    ],
)
def submission_quality(
    context: AssetExecutionContext, workspace: CollabWorkspace
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """A submission checked against the standard: accepted contacts staged, rejected rows quarantined.
    A duplicate file is not checked again (nothing materialises; its original's report applies).

    Its blocking check, ``check_staged_contacts_expectations``, runs the Great Expectations suite on what was
    staged, in this step rather than a step of its own (a step costs a tiny file more than the check itself):
    if it fails, the check is recorded, the step fails and neither feedback nor load follows, as a blocking
    check of its own step would have done."""
    ws = workspace.workspace
    manifest = _submission(workspace, context.partition_key)
    if manifest is None:
        # Dagster wants the check's result from every run of its step; this one staged nothing to check.
        yield AssetCheckResult(
            check_name=EXPECTATIONS_CHECK,
            passed=True,
            description="Nothing to check: the file duplicates one already received and is not staged again.",
        )
        return
    staging = submission_dir(ws, manifest.submission_id)
    charity = workspace.registry.find(manifest.charity_id)
    links_records = charity is not None and charity.linkage
    options = check_options(ws.settings.intake, links_records=links_records)
    linkage_key = ws.key() if links_records else None
    try:
        worker_dies_on(manifest.original_name)
        with StagingSink(staging, ws.quarantine / manifest.submission_id, linkage_key=linkage_key) as sink:
            result = check_extract(
                staging / manifest.source_file,
                mapping=workspace.registry.mapping(manifest.charity_id, as_of=manifest.received_at),
                file_name=manifest.original_name,
                submission_id=manifest.submission_id,
                charity_id=manifest.charity_id,
                options=options,
                sink=sink,
            )
        report, error, reference = result.report, result.internal_error, result.reference
    except FAILURES as failure:  # an error of ours outside the check (staging, mapping) is this file's alone
        reference, error = new_reference(), failure
        report = internal_error_report(manifest, reference)
    if error is not None and reference is not None:
        record = record_incident(ws, manifest, reference, describe_error(error))
        context.log.error(
            f"{manifest.submission_id}: internal error {reference} ({type(error).__name__}); see {record}"
        )
    if not report.accepted:
        # Rows that passed before the file as a whole was rejected (its references are NI numbers, say) are never
        # loaded, so they do not stay staged: the blocking Great Expectations check reads what is to be loaded.
        (staging / CONTACTS_FILE).unlink(missing_ok=True)
    save_report(ws, manifest.submission_id, report)
    mark_state(ws, manifest, "checked", report)
    yield MaterializeResult(
        metadata={
            "dagster/row_count": report.rows_received,
            "status": report.status,
            "submission_id": manifest.submission_id,
            "rows_accepted": report.rows_accepted,
            "rows_rejected": report.rows_rejected,
            "issue_codes": MetadataValue.json({g.code: g.count for g in report.issues}),
            "quarters": ", ".join(report.quarters) or "none",
            "file_format": report.file.format or "unknown",
            "summary": MetadataValue.md(report.to_markdown()),
        }
    )
    expectations = _check_staged_contacts_expectations(staging)
    if report.accepted and expectations.passed:
        # Made here, beside other submissions' loads, so that this one's turn in the `warehouse` pool only loads.
        _minimised_for_load(ws, manifest)
    yield expectations


def _minimised_for_load(ws: Workspace, manifest: SubmissionManifest) -> tuple[Path | None, Path | None]:
    """The staged contacts and linkage records as the warehouse stores them, in files beside them: made once,
    when the submission passes its checks, or by its load if that run stopped first."""
    staged, key = submission_dir(ws, manifest.submission_id) / CONTACTS_FILE, ws.key()
    contacts = minimise_staged_contacts(
        staged,
        key=key,
        charity_id=manifest.charity_id,
        submission_id=manifest.submission_id,
        standard_version=STANDARD_VERSION,
        rows_per_batch=ws.settings.intake.batch_rows,
    )
    units = minimise_staged_units(staged, key=key, charity_id=manifest.charity_id, submission_id=manifest.submission_id)
    return contacts, units


def _check_staged_contacts_expectations(staging: Path) -> AssetCheckResult:
    """The staged contacts meet the standard's Great Expectations suite, batch by batch, before any is
    sent on or loaded: an independent check of what the standard's validation accepted."""
    run = ExpectationRun()
    run.validate_staged(staging / CONTACTS_FILE)
    (staging / GX_FILE).write_text(json.dumps(run.raw_results, indent=1, default=str), encoding="utf-8")
    failed = [outcome.rule for outcome in run.outcomes.values() if not outcome.success]
    return AssetCheckResult(
        check_name=EXPECTATIONS_CHECK,
        passed=not failed,
        description=f"{len(run.outcomes) - len(failed)} of {len(run.outcomes)} rules passed",
        metadata={
            "rules_failed": ", ".join(failed) or "none",
            "great_expectations_result": MetadataValue.path(str(staging / GX_FILE)),
        },
    )


ACCEPTED_CHECK = "check_submission_accepted"
MINIMISED_CHECK = "check_warehouse_contacts_minimised"


@asset(
    partitions_def=submission_partitions,
    group_name="intake",
    deps=[submission_quality],
    check_specs=[
        AssetCheckSpec(
            ACCEPTED_CHECK,
            asset="submission_feedback",
            description="Whether the charity's file was accepted (a warning when not: see the asset).",
        )
    ],
)
def submission_feedback(
    context: AssetExecutionContext, workspace: CollabWorkspace, landing_zone: LandingZoneResource
) -> MaterializeResult:
    """The feedback report (JSON and HTML) in the charity's feedback area.

    Its check, ``check_submission_accepted``, says whether the file was accepted. A rejected file is a
    warning, not a failed run: rejecting it, telling the charity why and not loading it
    (``warehouse_contacts`` loads only accepted files) is the pipeline working; a failed run means an
    error of ours. The check is evaluated in this step, from the report it sends, not in a step of its own.
    """
    manifest = manifest_of_partition(workspace.workspace, context.partition_key)
    report = _report(workspace, manifest.submission_id)
    if report.accepted:
        # Accepted rows are not stored yet: the charity is told they are being loaded, and told again once they are.
        report.loaded = False
        save_report(workspace.workspace, manifest.submission_id, report)
    json_at, html_at = send_feedback(landing_zone.zone, manifest, report)
    mark_state(workspace.workspace, manifest, state_after_feedback(report), report)
    crash_point("after-feedback")
    file_errors = [g.code for g in report.issues if g.severity == "error" and g.scope == "file"]
    return MaterializeResult(
        metadata={
            "dagster/row_count": report.rows_received,
            "status": report.status,
            "feedback_json": json_at,
            "feedback_html": html_at,
            "summary": MetadataValue.md(report.to_markdown()),
        },
        check_results=[
            AssetCheckResult(
                check_name=ACCEPTED_CHECK,
                passed=report.accepted,
                severity=AssetCheckSeverity.WARN,
                description=report.headline(),
                metadata={"status": report.status, "file_errors": ", ".join(file_errors) or "none"},
            )
        ],
    )


@asset(
    partitions_def=submission_partitions,
    group_name="warehouse",
    deps=[submission_feedback],
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    output_required=False,
    check_specs=[
        AssetCheckSpec(
            MINIMISED_CHECK,
            asset="warehouse_contacts",
            description="The warehouse holds only allowlisted columns and keyed pseudonyms for this submission.",
        )
    ],
)
def warehouse_contacts(
    context: AssetExecutionContext, workspace: CollabWorkspace, warehouse: Warehouse, landing_zone: LandingZoneResource
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """The submission's contacts, pseudonymised and minimised, replacing its charity's earlier rows
    for the same quarters in one transaction, with its linkage units (keyed identities of a linking
    charity's references), which the next release links (``quarterly_release``).
    A rejected submission is not loaded (nothing materialises).

    Its check, ``check_warehouse_contacts_minimised``, reads the loaded rows back on the same connection in
    the same step: one turn in the ``warehouse`` pool per submission, not two."""
    ws = workspace.workspace
    manifest = manifest_of_partition(ws, context.partition_key)
    if not _report(workspace, manifest.submission_id).accepted:
        context.log.info(f"{manifest.submission_id} was rejected: nothing of it is loaded.")
        yield AssetCheckResult(
            check_name=MINIMISED_CHECK,
            passed=True,
            description="Nothing to check: the file was rejected, so none of its rows is in the warehouse.",
            metadata={"rows_loaded": 0},
        )
        return
    contacts, units = _minimised_for_load(ws, manifest)
    if contacts is None:
        raise FileNotFoundError(f"{manifest.submission_id} was accepted, but no contact of it is staged")
    with warehouse.connect() as con:
        loaded = load_submission(
            con,
            submission_id=manifest.submission_id,
            charity_id=manifest.charity_id,
            file_name=manifest.original_name,
            sha256=manifest.sha256,
            received_at=manifest.received_at,
            contacts=contacts,
            standard_version=STANDARD_VERSION,
            units=units,
            linkage=linkage_policy(workspace.registry, ws.settings.privacy),
        )
        minimised = _check_minimised(con, manifest.submission_id)
        # The charity's earlier files whose rows this one replaced: dropped again, they are loaded again.
        replaced = mark_replaced(con, ws, manifest.charity_id)
    crash_point("after-load")
    # The rows are stored (and the warehouse says so, in the same transaction): now the charity is told.
    report = _report(workspace, manifest.submission_id)
    report.loaded = True
    report.rows_stored = loaded.rows_loaded
    warn_of_quarters_mostly_replaced(report, loaded.quarters_replaced)
    warn_of_quarters_in_later_files(report, loaded.quarters_superseded)
    save_report(ws, manifest.submission_id, report)
    send_feedback(landing_zone.zone, manifest, report)
    # A file whose quarter a later file keeps is taken up again if sent again, as one a later file replaced.
    mark_state(ws, manifest, "loaded", report, replaced=bool(loaded.quarters_superseded))
    yield MaterializeResult(
        metadata={
            "dagster/row_count": loaded.rows_loaded,
            "rows_replaced": loaded.rows_replaced,
            "quarters": ", ".join(loaded.quarters),
            "linkage_units_received": loaded.units.received if loaded.units else 0,
            "linkage_units_withdrawn": loaded.units.withdrawn if loaded.units else 0,
            "submissions_replaced": ", ".join(replaced) or "none",
            "dagster/column_schema": TableSchema(
                columns=[TableColumn(name, str(dtype)) for name, dtype in WAREHOUSE_SCHEMA.items()]
            ),
            "summary": MetadataValue.md(
                f"Loaded **{loaded.rows_loaded:,}** pseudonymised contacts for `{manifest.charity_id}` "
                f"({', '.join(loaded.quarters)}), replacing {loaded.rows_replaced:,} earlier rows."
            ),
        },
        check_results=[minimised],
    )


def _check_minimised(con: duckdb.DuckDBPyConnection, submission_id: str) -> AssetCheckResult:
    """The warehouse holds only allowlisted columns and keyed pseudonyms for this submission, and its
    linkage units only keyed components (64-bit keyed codes: a column of them cannot hold a raw surname, birth
    date or postcode; a numeric reference it can, so small person keys are counted as malformed)."""
    columns = dict(
        con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'contacts'").fetchall()
    )
    # Keys and components are keyed codes when their columns are: the type says so for every row.
    keyed = columns.get("person_key") == "BIGINT"
    # The type does not say so for a reference that is a number (a client or case number, stored unkeyed): a keyed
    # code is below 2^32 in magnitude with chance 2^-31, such a reference almost always.
    malformed = (
        con.execute(
            "SELECT count(*) FROM contacts WHERE submission_id = $s "
            "AND (person_key IS NULL OR person_key BETWEEN -4294967295 AND 4294967295)",
            {"s": submission_id},
        ).fetchall()[0][0]
        if keyed
        else 0
    )
    codes = {"unit_key": "BIGINT", **dict.fromkeys(COMPONENTS, "BIGINT"), VARIANTS: "BIGINT[]"}
    unit_columns = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'linkage_units'"
    ).fetchall()
    unkeyed_units = sorted(
        name
        for name, kind in unit_columns
        if name not in LINKAGE_UNIT_SCHEMA or (name in codes and kind != codes[name])
    )
    unexpected = sorted(set(columns) - set(WAREHOUSE_SCHEMA))
    return AssetCheckResult(
        check_name=MINIMISED_CHECK,
        passed=not unexpected and keyed and malformed == 0 and not unkeyed_units,
        metadata={
            "unexpected_columns": ", ".join(unexpected) or "none",
            "person_keys_keyed": keyed,
            "malformed_person_keys": malformed,
            "linkage_unit_columns_not_keyed": ", ".join(unkeyed_units) or "none",
        },
    )
