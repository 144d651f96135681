"""``collab demo``: fictional charities, their extracts, and the whole pipeline, headless."""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict

import typer

from collab.landing import LocalLandingZone
from collab.registry import Registry
from collab.workspace import Workspace
from collab_demo.generator import PROFILES, generate
from pipelines.cli.app import JsonOption, app, console, emit_json, fail, progress_bar, workspace
from pipelines.cli.pipeline import print_run_report
from pipelines.worker_server import start_worker_server

DEMO_MARKER = "demo/truth/summary.json"


def _reset(ws: Workspace) -> None:
    """Start from an empty workspace, refusing to touch one that holds real charities' data."""
    has_charities = any(ws.registry.glob("*/charity.yaml")) if ws.registry.exists() else False
    if has_charities and not (ws.home / DEMO_MARKER).exists():
        fail(
            f"{ws.home} holds real registrations; run the demo in another workspace (COLLAB_HOME=var-demo collab demo)"
        )
    if ws.home.exists():
        shutil.rmtree(ws.home)


@app.command()
def demo(
    contacts: int = typer.Option(60_000, min=100, help="Contacts to generate."),
    charities: int = typer.Option(6, min=1, max=len(PROFILES), help="Fictional charities."),
    quarters: int = typer.Option(4, min=1, max=12, help="Complete quarters, ending with the last one."),
    seed: int = typer.Option(2026, help="Random seed of the generator."),
    as_json: bool = JsonOption,
) -> None:
    """Generate demo extracts, register the charities, drop the files and run everything headless."""
    started = time.monotonic()
    _reset(workspace())
    ws = workspace()
    # The worker server's imports overlap the run's own and the generator's, as in `collab run`: started when the
    # run made its pool, the demo waited 9 s for it.
    if ws.max_concurrent_runs > 1:
        start_worker_server()

    from pipelines.runner import run_pending

    settings = ws.settings.model_copy(deep=True)
    settings.publication.auto_publish = True  # the demo has no analyst to approve releases
    # Budgets per person, for the worst case (four units in the demo: 2 per quarter at the default 0.125
    # per unit): room for the four quarters and one revision, so the demo can show a revised release.
    settings.privacy.period_rho, settings.privacy.lifetime_rho = 4.0, 10.0
    if not as_json:
        console.print(f"Generating {contacts:,} contacts for {charities} charities over {quarters} quarters…")
    data = generate(ws.demo, contacts=contacts, charities=charities, quarters=quarters, seed=seed)
    settings.publication.first_quarter = data.quarters[0]  # the collaborative reports from its first quarter
    ws.save_settings(settings)
    registry = Registry(ws)
    landing = LocalLandingZone(root=str(ws.home))
    for profile in data.charities:
        registry.add(profile.id, profile.name, profile.mapping(), linkage=profile.linkage)
        if profile.named:
            registry.set_publish_name(profile.id, True)
        landing.create_area(profile.id)
    for charity_id, path in data.files:
        landing.drop(charity_id, path)
    with progress_bar("Processing", total=len(data.files) + len(data.quarters), enabled=not as_json) as bar:
        report = run_pending(ws, progress=bar.advance)
    elapsed = time.monotonic() - started
    site = ws.publish / "site" / "index.html"
    if as_json:
        emit_json(
            {
                **asdict(report),
                "site": str(site),
                "feedback": str(ws.feedback),
                "truth": str(ws.demo / "truth"),
                "seconds": round(elapsed, 1),
            }
        )
        return
    print_run_report(ws, report)
    console.print(f"\n[bold]Demo finished in {elapsed:,.0f} s.[/]")
    console.print(f"Site:      {site}")
    console.print(
        f"           open {site.as_uri()} in a browser, or run `collab serve-site` and visit http://127.0.0.1:8000/site/"
    )
    console.print("Notebooks: notebooks/*.ipynb read the published releases (with the `notebooks` extra installed)")
    console.print(f"Feedback:  {ws.feedback}/<charity>/*.feedback.html")
    console.print(f"Truth:     {ws.demo / 'truth'} (true aggregates, kept apart from the pipeline)")
    console.print("Dagster:   `make dev` shows every run and asset of this workspace.")
