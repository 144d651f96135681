"""``collab run | release | approve | budget | purge | serve-site``: the analyst's commands."""

from __future__ import annotations

import functools
import http.server
import re
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from collab import s3
from collab.landing import landing_zone_from_env
from collab.registry import Registry
from collab.workspace import Workspace
from pipelines.cli.app import (
    JsonOption,
    app,
    console,
    emit_json,
    existing_workspace,
    fail,
    instance_workspace,
    progress_bar,
    workspace,
)
from pipelines.run_lock import another_run_holds_the_lock
from pipelines.worker_server import start_worker_server, stop_worker_server

# The runner (Dagster), the warehouse (Splink) and OpenDP are imported by the commands that use them, so that registering a charity
# or checking a file does not wait seconds for the analyst's whole stack to load.
if TYPE_CHECKING:
    from collab.workspace import PrivacySettings
    from pipelines.runner import RunReport
    from privacy.accountant import Recharge

QUARTER = re.compile(r"(?:19|2\d)\d{2}Q[1-4]")  # years a calendar date holds, and a charity's records


def print_run_report(ws: Workspace, report: RunReport) -> None:
    if report.submissions:
        table = Table(title="Submissions", expand=True)
        table.add_column("file", overflow="fold", ratio=3)
        table.add_column("result", no_wrap=True)
        table.add_column("rows accepted", justify="right", no_wrap=True)
        table.add_column("issue codes", overflow="fold", ratio=2)
        results = {
            "accepted": "[green]✓ accepted[/]",
            "accepted_with_warnings": "[yellow]! warnings[/]",
            "rejected": "[red]✗ rejected[/]",
            "failed": "[bold red]✗ failed[/]",
        }
        for s in report.submissions:
            table.add_row(
                escape(f"{s.charity_id}/{s.file_name}") + (f"\n[dim]{escape(s.name)}[/]" if s.name else ""),
                results[s.status] + (f" {s.reference}" if s.reference else ""),
                f"{s.rows_accepted:,} / {s.rows_received:,}",
                " ".join(s.codes),
            )
        console.print(table)
        accepted = sum(s.status in {"accepted", "accepted_with_warnings"} for s in report.submissions)
        rejected = sum(s.status == "rejected" for s in report.submissions)
        rows = sum(s.rows_accepted for s in report.submissions), sum(s.rows_received for s in report.submissions)
        console.print(
            f"{len(report.submissions)} file(s): {accepted} accepted, {rejected} rejected, {len(report.failed)} failed; "
            f"{rows[0]:,} of {rows[1]:,} rows accepted."
        )
        for s in report.failed:
            console.print(
                f"[bold red]Failed:[/] {escape(f'{s.charity_id}/{s.file_name}')}: an error of ours, not the file's; "
                f"the charity was told reference {s.reference}. Details: `collab incident {s.reference}`."
            )
    for duplicate in report.duplicates:
        console.print(
            f"Duplicate: {duplicate['charity_id']}/{escape(duplicate['file'])} is identical to {duplicate['duplicate_of']}; not processed again."
        )
    if report.resumed:
        console.print(f"Taken up again from a run that stopped: {', '.join(report.resumed)}.")
    if report.abandoned_runs:
        console.print(f"Marked failed, their process gone: Dagster run(s) {', '.join(report.abandoned_runs)}.")
    if report.releases_waiting_for:
        console.print(
            f"[yellow]Releases wait:[/] submission(s) {', '.join(report.releases_waiting_for)} are not finished."
        )
    for skipped in report.skipped:
        console.print(
            f"[yellow]Left for the next run:[/] {skipped['charity_id']}/{escape(skipped['file'])}: {escape(skipped['reason'])}"
        )
    for refused in report.refused:
        console.print(
            f"[red]Refused unread:[/] {refused['charity_id']}/{escape(refused['file'])}: {escape(refused['reason'])}"
        )
    for release in report.releases:
        if release.error:
            console.print(f"[red]Release {release.period} failed:[/] {release.error}")
        else:
            state = "published" if release.published else f"awaiting approval (`collab approve {release.release_id}`)"
            console.print(f"Release {release.release_id}: {'new' if release.new_spend else 'existing'}, {state}.")
    if report.site_error:
        console.print(f"[red]The site was not rebuilt:[/] {escape(report.site_error)}")
    for period in report.stale_quarters:
        console.print(
            f"[yellow]{period}[/] received data after its release: `collab release {period} --revise` spends budget to update it."
        )
    if not (report.submissions or report.duplicates or report.releases or report.skipped or report.refused):
        console.print("Nothing pending.")
    feedback = "each charity's feedback-<id> bucket" if s3.configured() else ws.feedback
    console.print(f"Feedback reports: {feedback}")


@app.command()
def run(as_json: bool = JsonOption) -> None:
    """Process every pending submission, then release every ended quarter not yet released.

    Each release SPENDS PRIVACY BUDGET (see `collab budget`) and PUBLISHES its figures when the settings publish automatically; otherwise it waits for `collab approve`.
    """
    ws = instance_workspace()
    charities = Registry(ws).all()
    landing = landing_zone_from_env(ws.home)
    pending = len(landing.pending([c.id for c in charities]))
    try:
        # Its imports run on another core while this process makes its own; not while another run holds the
        # workspace, which this one waits for and whose files it then finds done (two runs at once spent a server's
        # imports for none).
        if min(pending, ws.max_concurrent_runs) > 1 and not another_run_holds_the_lock(ws):
            start_worker_server()

        from pipelines.runner import run_pending

        with progress_bar("Processing", total=pending if pending else None, enabled=not as_json) as bar:
            report = run_pending(ws, progress=bar.advance)
    except KeyboardInterrupt:
        # Stopping at any instant is safe (a killed run is finished by the next): nothing was failed or lost. The
        # server is stopped here too: interrupted before processing began, nothing else stops it (a trial's Ctrl-C
        # there exited in silence, the server left up).
        stop_worker_server()
        console.print("Interrupted. Nothing is lost: the next `collab run` takes up what was under way.")
        raise typer.Exit(130) from None
    if as_json:
        emit_json(asdict(report) | {"failed": [asdict(s) for s in report.failed]})
    else:
        print_run_report(ws, report)
    # A file our code failed on is that file's problem, listed above; only the run's own problems fail the command.
    if report.site_error or any(r.error for r in report.releases):
        raise typer.Exit(1)


@app.command()
def submissions(
    charity: str | None = typer.Option(None, "--charity", help="Only this charity's submissions."),
    as_json: bool = JsonOption,
) -> None:
    """Where every submission is (received ... loaded, rejected or failed), read without opening the warehouse,
    so it works while a run holds it."""
    from collab.states import submission_states

    ws = existing_workspace()
    if charity is not None and Registry(ws).find(charity) is None:
        fail(f"no charity {charity!r}: `collab charity list` shows them")
    states = submission_states(ws, charity)
    if as_json:
        emit_json([state.model_dump(mode="json") for state in states])
        return
    table = Table("submission", "file", "state", "status", "updated (UTC)", title="Submissions")
    _wrap_not_cut(table)
    for state in states:
        table.add_row(
            escape(state.name) if state.name else state.submission_id,
            escape(state.file_name),
            state.state
            + (f" ({state.reference})" if state.reference else "")
            # Its rows, or some, gone since from the warehouse: "loaded" alone read as held (the operator's trial).
            + ("; rows since replaced by a later file" if state.replaced else ""),
            state.status or "",
            state.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table if states else "No submissions yet.")


@app.command()
def incident(reference: str, as_json: bool = JsonOption) -> None:
    """Show the analyst's record of an internal error, by the reference its charity was given."""
    from collab.submissions import find_incident

    ws = existing_workspace()
    record = find_incident(ws, reference)
    if record is None:
        fail(f"no internal error with reference {reference!r}")
    if as_json:
        emit_json({"reference": reference, "record": str(record), "detail": record.read_text(encoding="utf-8")})
    else:
        console.print(f"{escape(str(record))}\n")
        console.print(escape(record.read_text(encoding="utf-8")), highlight=False)


@app.command()
def release(
    quarter: str = typer.Argument(..., help="The quarter, e.g. 2026Q1."),
    revise: bool = typer.Option(False, "--revise", help="Draw new noise and spend budget again (a revision)."),
    as_json: bool = JsonOption,
) -> None:
    """Release one quarter's indicators: spends privacy budget (re-running an existing release spends nothing)."""
    from pipelines.runner import release_quarter

    if not QUARTER.fullmatch(quarter):
        fail(f"{quarter!r} is not a quarter like 2026Q1", code=2)
    ws = instance_workspace()
    _say_if_waiting(ws, as_json)
    outcome = release_quarter(ws, quarter, revise=revise)
    if as_json:
        emit_json(asdict(outcome))
    elif outcome.error:
        console.print(f"[red]Release {quarter} failed:[/] {outcome.error}")
    else:
        state = "published" if outcome.published else f"awaiting approval: `collab approve {outcome.release_id}`"
        console.print(
            f"Release {outcome.release_id} ({'new noise drawn' if outcome.new_spend else 'existing, nothing spent'}); {state}."
        )
        _say_site_not_rebuilt(outcome.site_error)
    if outcome.error or outcome.site_error:
        raise typer.Exit(1)


@app.command()
def approve(
    release_ids: list[str] = typer.Argument(..., metavar="RELEASE_ID", help="e.g. 2026Q1-v1 (several at once)"),
    as_json: bool = JsonOption,
) -> None:
    """Approve releases for publication (each recorded in the audit log), then publish them and rebuild the site
    once. Each must be its quarter's latest release; if one is not, none is approved."""
    from pipelines.runner import approve_and_publish

    ws = instance_workspace()
    _say_if_waiting(ws, as_json)
    try:
        outcomes = approve_and_publish(ws, release_ids, actor=Path.home().name or "analyst")
    except LookupError as error:
        fail(str(error))
    if as_json:
        emit_json({"releases": [asdict(outcome) for outcome in outcomes]})
    else:
        for outcome in outcomes:
            if outcome.error:
                console.print(f"[red]{outcome.release_id}: approved, but publication failed:[/] {outcome.error}")
            elif outcome.already_approved:
                console.print(f"{outcome.release_id} was already approved and published; nothing was done again.")
            else:
                console.print(
                    f"Approved and published {outcome.release_id}: {ws.publish / 'releases' / outcome.release_id}"
                )
        # One rebuild for them all: the published ones share its error, if any.
        site_error = next((outcome.site_error for outcome in outcomes if outcome.site_error), None)
        _say_site_not_rebuilt(site_error)
        if site_error is None and any(outcome.published for outcome in outcomes):
            console.print(f"The site: {ws.publish / 'site' / 'index.html'}")
    if any(outcome.error or outcome.site_error for outcome in outcomes):
        raise typer.Exit(1)


def _say_if_waiting(ws: Workspace, as_json: bool) -> None:
    if not as_json and another_run_holds_the_lock(ws):
        console.print("Waiting for the run or release under way in this workspace to finish...")


def _say_site_not_rebuilt(site_error: str | None) -> None:
    """The release stands (published, its budget spent): only the site is behind, rebuilt by the next `collab run`
    once what stopped it is put right; releasing again would spend budget for nothing."""
    if site_error:
        console.print(
            f"[red]The site was not rebuilt:[/] {escape(site_error)}\nThe release is published and nothing more needs "
            "spending: put that right, and the next `collab run` rebuilds the site."
        )


def _wrap_not_cut(table: Table) -> None:
    """Long ids and names wrap in a narrow terminal instead of ending in '…': at 80 columns five indicators all read
    'people_…' and submissions 'north-pantry/nor…'."""
    for column in table.columns:
        column.overflow = "fold"


def _left(rho: float, budget: float) -> str:
    """ρ left to spend of ``budget``; OpenDP's maps sit a hair under the budget, which is nothing left in practice.
    Past it (releases already made, charged again after the caps on units per person were raised) it says by how much:
    a privacy audit's operator read "0 of 4" for a quarter at 6.24."""
    if rho < -1e-6:
        return f"over {budget:.3g} by {_rho(-rho)}"
    return f"{_rho(rho) if rho > 1e-6 else '0'} of {budget:.3g}"


def _rho(rho: float) -> str:
    """ρ to four figures: at three, four quarters of 0.12475 showed as 0.125 each and 0.499 together."""
    return f"{rho:.4g}"


@app.command()
def budget(
    detail: bool = typer.Option(False, "--detail", help="Also list every noisy measurement in the ledger."),
    as_json: bool = JsonOption,
) -> None:
    """The privacy budget: per quarter and lifetime, ρ per unit, for the worst-case person, and left to spend.

    Exits 1 if the ledger lacks a release whose package exists (a warehouse put back from before it): the figures
    then count less than was spent, and a script reading them must not take them as they are."""
    from collab.backup import ledger_behind_packages, releases_missing_from_ledger
    from collab.invariants import unit_caps
    from collab.warehouse import connect
    from privacy.accountant import recharges_due
    from privacy.mechanisms import epsilon_at

    ws = existing_workspace()
    settings = ws.settings.privacy
    delta = settings.report_delta
    with connect(ws.warehouse_path) as con:
        # A recharge (an earlier release charged again at more units, after the caps were raised) is an entry too.
        rows = con.execute(
            """
            SELECT period, release_id, indicator_id, measurement, kind, mechanism, rho, max_units, rho_per_person,
                noise_scale, recorded_at, spent_order, 1 AS source, rowid AS position FROM privacy_ledger
            UNION ALL
            SELECT period, release_id, '', format('recharged from {} to {} units by {}', units_before, units_after,
                charged_with), 'recharge', '', 0.0, units_after, rho_per_person, NULL, recorded_at, spent_order, 0, 0
            FROM privacy_recharges
            ORDER BY spent_order, source, position
            """
        ).fetchall()
        # Caps raised since the last release: what its next release will charge the earlier ones again, shown now.
        due = recharges_due(con, unit_caps(settings))
        missing = releases_missing_from_ledger(con, ws)
    rows += [
        (
            r.period,
            r.release_id,
            "",
            f"due from {r.units_before} to {r.units_after} units at the next release",
            "recharge due",
            "",
            0.0,
            r.units_after,
            r.rho_per_person,
            None,
            None,
        )
        for r in due
    ]
    per_unit: dict[str, float] = {}
    per_person: dict[str, float] = {}
    release_units: dict[tuple[str, str], int] = {}
    entries = []
    for period, release_id, indicator, measurement, kind, mechanism, rho, max_units, person, scale, at, *order in rows:
        per_unit[period] = per_unit.get(period, 0.0) + rho
        per_person[period] = per_person.get(period, 0.0) + person
        release_units[period, release_id] = max(release_units.get((period, release_id), 1), max_units)
        entries.append(
            {
                "period": period,
                "release_id": release_id,
                "indicator_id": indicator,
                "measurement": measurement,
                "kind": kind,
                "mechanism": mechanism,
                "rho": rho,
                "max_units": max_units,
                "rho_per_person": person,
                "noise_scale": scale,
                "recorded_at": at,
                "spent_order": order[0] if order else None,  # the ledger's order; None for a recharge not yet due
            }
        )
    units = {period: max(n for (p, _), n in release_units.items() if p == period) for period in per_person}
    fewest_units = {period: min(n for (p, _), n in release_units.items() if p == period) for period in per_person}
    lifetime = sum(per_person.values())
    periods = [
        {
            "period": p,
            "rho_per_unit": per_unit[p],
            "max_units": units[p],
            "rho_per_person": per_person[p],
            "epsilon_per_person": epsilon_at(per_person[p], delta),
            "rho_left": settings.period_rho - per_person[p],
        }
        for p in sorted(per_person)
    ]
    summary = {
        "delta": delta,
        "period_rho_budget": settings.period_rho,
        "lifetime_rho_budget": settings.lifetime_rho,
        "lifetime_rho_per_unit": sum(per_unit.values()),
        "lifetime_rho_per_person": lifetime,
        "lifetime_epsilon_per_person": epsilon_at(lifetime, delta),
        "lifetime_rho_left": settings.lifetime_rho - lifetime,
        "periods": periods,
        "entries": entries,
        "releases_missing_from_ledger": missing,
    }
    if as_json:
        emit_json(summary)
    else:
        if missing:
            console.print(f"[bold red]{escape(ledger_behind_packages(missing))}[/]")
        _print_budget(summary, due, fewest_units, detail, settings)
    if missing:
        raise typer.Exit(1)


def _print_budget(
    summary: dict[str, Any],
    due: list[Recharge],
    fewest_units: dict[str, int],
    detail: bool,
    settings: PrivacySettings,
) -> None:
    """`collab budget`'s tables, from its JSON ``summary``."""
    periods, entries, delta = summary["periods"], summary["entries"], summary["delta"]
    lifetime = summary["lifetime_rho_per_person"]
    table = Table(
        "quarter",
        "ρ per unit",
        "units",
        "ρ per person",
        "ε per person",
        "ρ left",
        title=f"Privacy budget (zCDP ρ; ε at δ = {delta:g}); budgets are per person",
        caption="A person counts as at most one unit for each reference held for them by a charity that does not link "
        "records, plus one across those that do, and one more for each extra group linkage split their records into "
        "and each record of someone else's it matched with one of theirs; the ρ of n units is n² times that of one. ρ "
        "per person is at the units shown, the most the settings declare: someone counted more may get less "
        "protection. A quarter's ρ per "
        "person adds up its releases, each at the units it was made with, or charged again at since the caps were "
        "raised (a range where they differ, after a charity started or stopped linking records).",
    )
    for p in periods:
        table.add_row(
            p["period"],
            _rho(p["rho_per_unit"]),
            str(p["max_units"])
            if fewest_units[p["period"]] == p["max_units"]
            else f"{fewest_units[p['period']]}–{p['max_units']}",
            _rho(p["rho_per_person"]),
            f"{p['epsilon_per_person']:.3g}",
            _left(p["rho_left"], settings.period_rho),
        )
    table.add_row(
        "lifetime",
        _rho(summary["lifetime_rho_per_unit"]),
        "",
        _rho(lifetime),
        f"{summary['lifetime_epsilon_per_person']:.3g}",
        _left(summary["lifetime_rho_left"], settings.lifetime_rho),
        style="bold",
    )
    console.print(table, width=min(console.width, 80))
    if due:
        console.print(
            f"The caps on units per person were raised since the last release: {len(due)} release(s) already made "
            "count at their new units above, and the next release charges them so."
        )
    if not detail:
        console.print(f"{len(entries)} ledger entries: `collab budget --detail` lists them.")
        return
    ledger = Table("quarter", "release", "indicator", "measurement", "ρ per unit", "ρ per person", "noise scale")
    _wrap_not_cut(ledger)
    for e in entries:
        ledger.add_row(
            e["period"],
            e["release_id"],
            e["indicator_id"],
            e["measurement"],
            _rho(e["rho"]),
            _rho(e["rho_per_person"]),
            "" if e["noise_scale"] is None else f"{e['noise_scale']:.3g}",
        )
    console.print(ledger)


@app.command()
def purge(
    submission: str = typer.Argument(..., help="The submission, as `collab submissions` names it, or its id."),
    as_json: bool = JsonOption,
) -> None:
    """Delete a submission's raw copies (staging, quarantine, archive). Its warehouse rows stay."""
    from collab.intake import load_manifest, purge_submission, submission_dir
    from collab.states import submission_states
    from collab.warehouse import audit, connect

    ws = existing_workspace()
    # `collab submissions` lists a submission by its name (charity/file/hash): the id alone was refused as a path.
    named = {state.name: state.submission_id for state in submission_states(ws) if state.name}
    submission_id = named.get(submission, submission)
    try:
        submission_dir(ws, submission_id)
    except ValueError as error:  # a path, say: see `collab submissions` for the ids
        fail(str(error), code=2)
    try:
        manifest = load_manifest(ws, submission_id)
    except FileNotFoundError:
        fail(f"no submission {submission_id!r}")
    removed = [str(p) for p in purge_submission(ws, submission_id)]
    removed += landing_zone_from_env(ws.home).purge_archive(manifest.charity_id, submission_id)
    with connect(ws.warehouse_path) as con:
        audit(
            con,
            actor=Path.home().name or "analyst",
            action="purge",
            subject=submission_id,
            detail=f"{len(removed)} paths",
        )
    if as_json:
        emit_json({"submission_id": submission_id, "removed": removed})
    else:
        console.print(f"Purged {len(removed)} path(s) of {submission_id}.")


@app.command()
def backup(
    destination: Path = typer.Argument(..., help="A new folder for the backup (or, with --verify, a backup to check)."),
    verify: bool = typer.Option(False, "--verify", help="Check a backup against its manifest instead of making one."),
    as_json: bool = JsonOption,
) -> None:
    """Back up the warehouse (the privacy ledger with it), the settings, the registry, the key, the release packages
    and the published site, with a manifest of checksums. Raw files are not copied."""
    from collab.backup import BackupError, back_up, verify_backup
    from pipelines.run_lock import run_lock

    ws = workspace()
    if not verify:
        _say_if_waiting(ws, as_json)
    try:
        if verify:
            manifest = verify_backup(destination)
        else:
            with run_lock(ws):  # no `collab run` writes meanwhile; the daemon's runs wait for the warehouse
                manifest = back_up(ws, destination)
    except BackupError as error:
        fail(str(error))
    if as_json:
        emit_json(asdict(manifest) | {"path": str(destination)})
        return
    releases = ", ".join(manifest.releases_charged) or "none"
    console.print(
        f"{'Checked' if verify else 'Backed up to'} {destination}: {len(manifest.files)} files, made "
        f"{manifest.made_at}, warehouse at schema version {manifest.schema_version}, releases charged: {releases}."
    )
    if manifest.links_left_out:
        console.print(
            f"[yellow]Links left out, not followed:[/] {escape(', '.join(manifest.links_left_out))} (the workspace "
            "makes none: put what they point at in the workspace itself if it belongs in the backup)."
        )


@app.command()
def restore(
    backup: Path = typer.Argument(..., help="A backup made by `collab backup`."),
    as_json: bool = JsonOption,
) -> None:
    """Put a backup back: its warehouse, settings, registry and key replace the workspace's; its release packages
    are added to those kept. Refused, changing nothing, if it is older than a release the workspace has made. Stop
    the daemon, the webserver and the portal first."""
    from collab.backup import BackupError
    from collab.backup import restore as put_back
    from pipelines.run_lock import run_lock

    ws = workspace(restoring=True)
    _say_if_waiting(ws, as_json)
    try:
        with run_lock(ws):
            restored = put_back(ws, backup)
    except BackupError as error:
        fail(str(error))
    if as_json:
        emit_json(asdict(restored) | {"path": str(backup)})
        return
    manifest = restored.manifest
    console.print(
        f"Restored {backup} (made {manifest.made_at}; releases charged: {', '.join(manifest.releases_charged) or 'none'}). "
        f"Packages added: {', '.join(restored.packages_added) or 'none'}."
    )
    if restored.submissions_resumed:
        console.print(
            f"Loaded after the backup, to be loaded again by the next `collab run`: {', '.join(restored.submissions_resumed)}."
        )
    if restored.settings_changed is None:
        console.print(
            "[yellow]The workspace's settings could not be read, so what the backup's put back changed cannot be "
            f"named:[/] check {ws.settings_path} before the next run."
        )
    elif restored.settings_changed:
        console.print("Settings put back from the backup, in place of the workspace's:")
        for change in restored.settings_changed:
            warning = " [yellow](a person may now lose more)[/]" if change.loosens_privacy else ""
            console.print(
                f"  {change.name}: {escape(repr(change.replaced))} -> {escape(repr(change.restored))}{warning}"
            )
        console.print(f"To keep any of the workspace's, set it again in {ws.settings_path}.")


@app.command("recover-releases")
def recover_releases(
    release_ids: list[str] | None = typer.Argument(
        None, metavar="[RELEASE_ID]...", help="e.g. 2026Q3-v1; none: every release whose package the ledger lacks."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Charge the privacy ledger again for releases it lost (a warehouse lost, or put back from a copy older than
    them, and no backup holding them), exactly as each one's package says, and put back their rows, so that the next
    release takes a new id. Refused, changing nothing, if a package is not whole and consistent."""
    from collab.backup import RELEASE_ID
    from collab.invariants import unit_caps
    from collab.recovery import RecoveryRefused
    from collab.recovery import recover_releases as charge_again
    from pipelines.run_lock import run_lock

    if unlike := [r for r in release_ids or [] if not RELEASE_ID.fullmatch(r)]:
        message = f"{unlike[0]!r} is not a release id like 2026Q1-v1"
        refused = {"code": "E_RELEASE_ID", "package": "", "field": "", "message": message}
        fail(message, code=2, as_json={"refused": refused})
    ws = workspace()
    _say_if_waiting(ws, as_json)
    try:
        with run_lock(ws):  # no `collab run` releases meanwhile
            recovery = charge_again(
                ws, release_ids or [], caps=unit_caps(ws.settings.privacy), actor=Path.home().name or "analyst"
            )
    except RecoveryRefused as refusal:
        refused = {"code": refusal.code, "package": refusal.package, "field": refusal.field, "message": refusal.message}
        fail(str(refusal), as_json={"refused": refused})
    if as_json:
        emit_json(asdict(recovery))
        return
    for release in recovery.releases:
        made = release.created_at[:19].replace("T", " ")
        recharged = (
            f" With it, the releases before it were charged again at the raised caps on units per person, as they were "
            f"then ({_rho(release.recharged)} more for the worst-case person)."
            if release.recharged
            else ""
        )
        console.print(
            f"Charged {release.release_id} again from {escape(release.package)} (the {release.kind} of {release.period} "
            f"made {made} UTC): {release.measurements} measurements, ρ {_rho(release.rho)} per unit and "
            f"{_rho(release.rho_per_person)} for the worst-case person ({release.max_units} units), as its package says; "
            f"{release.cells:,} figures put back.{recharged}"
        )
    for release_id in recovery.already_charged:
        console.print(f"{release_id} is in the ledger already: nothing charged for it.")
    if recovery.releases:
        console.print(
            "The ledger holds every release charged above, in the order they were made: `collab budget` shows what they "
            "cost. Not in a package, so not put back: each one's raw noisy measurements (kept for auditors only), and "
            "the approval of one not yet published (`collab approve` it again)."
        )
    elif not recovery.already_charged:
        console.print("The ledger holds every release whose package exists: nothing was charged.")
    if recovery.submissions_resumed:
        console.print(
            f"Not in the warehouse, to be loaded again by the next `collab run`: {', '.join(recovery.submissions_resumed)}."
        )


@app.command("serve-site")
def serve_site(port: int = typer.Option(8000, help="Port on localhost.")) -> None:
    """Serve the published site on http://127.0.0.1:PORT for a reader."""
    ws = existing_workspace()
    site = ws.publish / "site"
    if not (site / "index.html").exists():
        fail("nothing is published yet; run `collab run` (or `make demo`) first")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(ws.publish))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as error:  # the port taken (an analyst's trial met a traceback), or not ours to take
        fail(f"cannot serve on port {port}: {error.strerror}; choose another with --port", code=2)
    with server:
        console.print(f"Serving the site at http://127.0.0.1:{port}/site/ (Ctrl+C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            console.print("Stopped.")


@app.command()
def init(as_json: bool = JsonOption) -> None:
    """Create the workspace (folders, pseudonymisation key, settings, Dagster instance) if missing."""
    ws = workspace()
    if as_json:
        emit_json({"home": str(ws.home), **ws.environment(), "settings": ws.settings.model_dump()})
    else:
        console.print(f"Workspace ready at {ws.home} (DAGSTER_HOME={ws.dagster_home}).")
