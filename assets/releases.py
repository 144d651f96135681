"""A quarter's release: DP indicators under the privacy budget, gated, then published; and the public site built
from every published release."""

import json
from collections.abc import Iterator
from pathlib import Path

from dagster import (
    AllPartitionMapping,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetDep,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    Output,
    asset,
    asset_check,
)

from assets.partitions import quarter_partitions
from assets.resources import WAREHOUSE_POOL, CollabWorkspace, Warehouse
from assets.submissions import warehouse_contacts
from collab.backup import ledger_behind_packages, releases_missing_from_ledger
from collab.faults import crash_point
from collab.invariants import release_invariants, unit_caps
from collab.linkage import linkage_policy
from collab.publication import (
    MANIFEST,
    DisclosureRefused,
    ReleaseIntegrityError,
    code_version,
    disclosure_problems,
    publish_release,
    published_release_dirs,
    single_charity_cells,
    verify_release_package,
    write_release_package,
)
from collab.site import build_site
from collab.states import unfinished
from collab.warehouse import RELEASE_MEMORY_LIMIT, link_units, not_ended_problem, not_linkable_contacts
from privacy.accountant import BudgetExceeded, BudgetPolicy, periods_over_budget, recharges_due
from privacy.mechanisms import epsilon_at
from privacy.pseudonymise import derived_salt
from privacy.release import Contributors, ReleasePolicy, latest_release, release_period
from standards import STANDARD_VERSION
from standards.catalogue import load_catalogue

REVISE_TAG = "collab/revise"


def _latest_release_dir(workspace: CollabWorkspace, warehouse: Warehouse, period: str) -> Path:
    with warehouse.connect(read_only=True) as con:
        summary = latest_release(con, period)
    if summary is None:
        raise Failure(f"No release exists for {period}.")
    return workspace.workspace.releases / summary.release_id


@asset(
    partitions_def=quarter_partitions,
    group_name="release",
    deps=[AssetDep(warehouse_contacts, partition_mapping=AllPartitionMapping())],
    kinds={"duckdb", "opendp"},
    pool=WAREHOUSE_POOL,
)
def quarterly_release(
    context: AssetExecutionContext, workspace: CollabWorkspace, warehouse: Warehouse
) -> MaterializeResult:
    """Every catalogue indicator for the quarter: bounded in DuckDB, noised by OpenDP (discrete Gaussian,
    quantile mechanism), made consistent over the area hierarchy, charged to the ledger. The linkage units that
    loads stored since the last release are linked first: the privacy units are a person's clusters.

    Re-materialising returns the stored release without spending; a run tagged ``collab/revise``
    draws new noise and records the spend as a revision.
    """
    ws = workspace.workspace
    period = context.partition_key
    privacy = ws.settings.privacy
    catalogue = load_catalogue()
    revise = context.run.tags.get(REVISE_TAG) == "true"
    if problem := not_ended_problem(period):
        raise Failure(description=problem, metadata={"period": period})
    # Asked again here, in the warehouse pool, not only by whoever requested the run: a release the daemon's sensor
    # requested could otherwise run between the loads of a `collab run` and publish the quarter with part of its files.
    if waiting := unfinished(ws):
        raise Failure(description=waits_for_submissions(period, [s.submission_id for s in waiting]))
    with warehouse.connect() as con:
        if missing := releases_missing_from_ledger(con, ws):
            raise Failure(
                description=ledger_behind_packages(missing) + " Nothing was spent.", metadata={"period": period}
            )
        linked = link_units(con, linkage_policy(workspace.registry, privacy))
        con.execute("SET memory_limit = $limit", {"limit": RELEASE_MEMORY_LIMIT})
        invariants = release_invariants(con, ws, workspace.registry, privacy)
        policy = ReleasePolicy(
            privacy.release_rho,
            BudgetPolicy(privacy.period_rho, privacy.lifetime_rho),
            invariants.max_units,
            invariants.linked_units,
            invariants.caps,
        )
        # For the analyst, never published (a count of rows, not a DP output): what releases leave out, and why.
        left_out = not_linkable_contacts(con, period, invariants.linking)
        if left_out:
            context.log.warning(
                f"{period}: {sum(left_out.values()):,} contacts of charities that link records are left out, their "
                f"people having no identity to link (by charity: {left_out}); their feedback said so."
            )
        try:
            summary = release_period(
                con,
                period=period,
                catalogue=catalogue,
                policy=policy,
                contributors=Contributors(len(invariants.contributors), invariants.linking, invariants.named),
                salt=derived_salt(ws.key(), f"bounding:{period}"),
                standard_version=STANDARD_VERSION,
                code_version=code_version(),
                revise=revise,
            )
        except BudgetExceeded as error:
            raise Failure(description=str(error), metadata={"period": period}) from error
        if summary.created and (over := periods_over_budget(con, policy.budget)):
            context.log.warning(
                "Releases already made, charged again because the caps on units per person were raised, put these "
                f"quarters past their budget of {privacy.period_rho:g} per person: "
                + ", ".join(f"{period} at {rho:.4g}" for period, rho in over.items())
                + ". Nothing can take that back; `collab budget` shows it."
            )
        manifest = write_release_package(
            con,
            release_id=summary.release_id,
            catalogue=catalogue,
            destination=ws.releases / summary.release_id,
            period_rho=privacy.period_rho,
            lifetime_rho=privacy.lifetime_rho,
            delta=privacy.report_delta,
            named_now=list(invariants.named),
        )
    spend = manifest["privacy"]
    cells = sum(i["cells"] for i in manifest["indicators"])
    unreliable = sum(i["low_reliability_cells"] for i in manifest["indicators"])
    return MaterializeResult(
        metadata={
            "release_id": summary.release_id,
            "new_spend": summary.created,
            "dagster/row_count": cells,
            "low_reliability_cells": unreliable,
            "rho_spent": spend["rho_spent"],
            "epsilon_at_delta": spend["epsilon"],
            "period_rho_remaining": spend["period_rho_budget"] - spend["period_rho_spent"],
            "lifetime_rho_remaining": spend["lifetime_rho_budget"] - spend["lifetime_rho_spent"],
            "contributors": manifest["contributors"],
            "max_units_per_person": spend["per_person"]["max_units"],
            "linkage_units": linked.units,
            "linkage_clusters": linked.clusters,
            "linkage_units_linked": linked.linked,
            "linkage_units_dropped": linked.dropped,
            "contacts_left_out_not_linkable": sum(left_out.values()),
            "release_rho_per_person": spend["per_person"]["release_rho"],
            "lifetime_rho_per_person": spend["per_person"]["lifetime_rho"],
            "summary": MetadataValue.md(
                f"Release **{summary.release_id}**: {len(manifest['indicators'])} indicator(s), {cells:,} cells "
                f"({unreliable:,} low reliability). ρ = {spend['rho_spent']:.3g} per unit; "
                f"{spend['statement']} "
                + ("new noise drawn and charged." if summary.created else "stored release reused, nothing spent.")
            ),
        }
    )


def waits_for_submissions(period: str, submission_ids: list[str]) -> str:
    return (
        f"{period} was not released: {len(submission_ids)} submission(s) are not finished ({', '.join(submission_ids)}) "
        "and may cover it. Nothing has been spent. `collab run` finishes them, then releases it; `collab submissions` "
        "shows where each one is, and `collab run` names any whose record it cannot read, for an analyst to look at."
    )


@asset_check(asset=quarterly_release, blocking=True, pool=WAREHOUSE_POOL)
def check_release_disclosure(
    context: AssetCheckExecutionContext, workspace: CollabWorkspace, warehouse: Warehouse
) -> AssetCheckResult:
    """The disclosure gate: nothing is published unless the package passes every check
    (``collab.publication.disclosure_problems``)."""
    release_dir = _latest_release_dir(workspace, warehouse, context.partition_key)
    with warehouse.connect(read_only=True) as con:
        problems = disclosure_problems(
            release_dir, con, min_contributors=workspace.workspace.settings.publication.min_contributors
        )
        single = single_charity_cells(con, verify_release_package(release_dir)) if not problems else {}
    listing = "\n".join(f"- {problem}" for problem in problems)
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description=f"Release {release_dir.name} failed the disclosure gate: {'; '.join(problems)}"
        if problems
        else f"Release {release_dir.name} passed the disclosure gate.",
        metadata={
            "release_id": release_dir.name,
            "problems": MetadataValue.md(listing or "None."),
            "problem_count": len(problems),
            # Internal to the analyst: published anyway, as the methodology explains (SINGLE_CHARITY_STATEMENT).
            **{f"single_charity_cells/{indicator}": count for indicator, count in single.items()},
        },
    )


@asset(
    partitions_def=quarter_partitions,
    group_name="release",
    deps=[quarterly_release],
    output_required=False,
    pool=WAREHOUSE_POOL,
)
def published_release(
    context: AssetExecutionContext, workspace: CollabWorkspace, warehouse: Warehouse
) -> Iterator[Output[None]]:
    """The quarter's latest release in ``publish/``: only once an analyst has approved it (``collab approve``),
    unless the workspace publishes automatically. The site is rebuilt after (``published_site``)."""
    ws = workspace.workspace
    release_dir = _latest_release_dir(workspace, warehouse, context.partition_key)
    release_id = release_dir.name
    with warehouse.connect(read_only=True) as con:
        approved = (
            con.execute(
                "SELECT count(*) FROM audit_log WHERE action = 'approve' AND subject = $r", {"r": release_id}
            ).fetchall()[0][0]
            > 0
        )
        if not (approved or ws.settings.publication.auto_publish):
            context.log.warning(
                f"Release {release_id} awaits approval: run `collab approve {release_id}` to publish it."
            )
            return
        due = recharges_due(con, unit_caps(ws.settings.privacy))
        if due and not (ws.publish / "releases" / release_id).exists():
            # Its statement was written under the caps of its day: published now, it would understate what a person
            # risks, and pass a budget the releases already made, charged again, break (a privacy audit's finding).
            raise Failure(
                description=f"Release {release_id} was made before the caps on units per person were raised: its "
                f"statement understates a person's worst case, for which {len(due)} release(s) already made are due to "
                f"be charged again. Nothing was published. Make a new release of the quarter (`collab release "
                f"{context.partition_key} --revise`), which charges them, checks the budgets and says so, and approve it.",
                metadata={"release_id": release_id},
            )
        crash_point("before-publish")
        try:
            target = publish_release(
                release_dir, ws.publish, con, min_contributors=ws.settings.publication.min_contributors
            )
        except (ReleaseIntegrityError, DisclosureRefused) as error:
            raise Failure(description=str(error), metadata={"release_id": release_id}) from error
    manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
    yield Output(
        None,
        metadata={
            "release_id": release_id,
            "published_to": str(target),
            "approved_by": "analyst" if approved else "automatic publication",
            "epsilon_at_delta": epsilon_at(manifest["privacy"]["rho_spent"], manifest["privacy"]["delta"]),
        },
    )


# In the warehouse pool although it reads only ``publish/``: two builds at once would share ``.site.partial``.
@asset(group_name="site", deps=[published_release], pool=WAREHOUSE_POOL)
def published_site(workspace: CollabWorkspace, warehouse: Warehouse) -> MaterializeResult:
    """``publish/site/`` rebuilt from every published release: once after a run's publications, however many
    quarters they were (each build renders every quarter's pages and workbooks).

    Not while the privacy ledger lacks a release made: the site's record of the releases it was built from may be
    the only trace of one whose packages were lost with the warehouse, and rebuilt without it, the next release of
    its quarter would take its id again with new noise, its cost left out (a hostile trial)."""
    ws = workspace.workspace
    with warehouse.connect() as con:
        missing = releases_missing_from_ledger(con, ws)
    if missing:
        raise Failure(description=f"The site was not rebuilt: {ledger_behind_packages(missing)}")
    try:
        index = build_site(ws.publish, ws.settings.publication)
    except ReleaseIntegrityError as error:
        raise Failure(description=f"The site was not rebuilt: {error}") from error
    return MaterializeResult(metadata={"site": str(index), "releases": len(published_release_dirs(ws.publish))})
