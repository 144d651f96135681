"""``collab charity ...`` and ``collab submit``: who takes part, and dropping a file."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from pipelines.cli.app import JsonOption, app, console, emit_json, fail, workspace
from pipelines.landing import LocalLandingZone
from pipelines.registry import Registry, RegistryError
from pipelines.resources import landing_zone_from_env
from standards.mapping import CharityMapping

charity_app = typer.Typer(help="Register and manage participating charities.", no_args_is_help=True)
app.add_typer(charity_app, name="charity")


@charity_app.command("add")
def add(
    charity_id: str = typer.Argument(..., help="Short id, e.g. northside-food-bank."),
    name: str = typer.Option(..., "--name", help="The charity's name."),
    mapping: Path | None = typer.Option(
        None, "--mapping", exists=True, dir_okay=False, help="Its mapping file (YAML)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Register a charity and create its landing and feedback areas."""
    ws = workspace()
    try:
        parsed = CharityMapping.load(mapping) if mapping else None
        charity = Registry(ws).add(charity_id, name, parsed)
    except (RegistryError, ValueError) as error:  # a bad mapping file: ValidationError or YAML
        fail(str(error))
    landing = landing_zone_from_env(ws)
    landing.create_area(charity.id)
    if as_json:
        emit_json({"charity_id": charity.id, "name": charity.name, "landing": landing.describe()})
    else:
        console.print(
            f"Registered [bold]{charity.name}[/] as [bold]{charity.id}[/]; landing area ready in {landing.describe()}."
        )


@charity_app.command("list")
def list_charities(as_json: bool = JsonOption) -> None:
    """List registered charities."""
    charities = Registry(workspace()).all(include_inactive=True)
    if as_json:
        emit_json([c.model_dump(mode="json") for c in charities])
        return
    table = Table("id", "name", "active", "added")
    for c in charities:
        table.add_row(c.id, c.name, "yes" if c.active else "no", c.added_at.date().isoformat())
    console.print(table)


@charity_app.command("remove")
def remove(charity_id: str, as_json: bool = JsonOption) -> None:
    """Stop accepting files from a charity. Its data stay until purged."""
    try:
        charity = Registry(workspace()).deactivate(charity_id)
    except RegistryError as error:
        fail(str(error))
    if as_json:
        emit_json({"charity_id": charity.id, "active": False})
    else:
        console.print(f"{charity.id} no longer submits; its data stay until purged.")


@app.command()
def submit(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="The extract to submit."),
    charity: str = typer.Option(..., "--charity", help="Your charity id."),
    as_json: bool = JsonOption,
) -> None:
    """Place an extract in a charity's landing area (what a charity does)."""
    ws = workspace()
    try:
        Registry(ws).get(charity)
    except RegistryError as error:
        fail(str(error))
    landing = landing_zone_from_env(ws)
    if not isinstance(landing, LocalLandingZone):
        fail("submitting to S3 is not available in this workspace")
    target = landing.drop(charity, file)
    if as_json:
        emit_json({"charity_id": charity, "file": file.name, "landed": str(target)})
    else:
        console.print(
            f"Submitted {file.name} for {charity}. It will be checked on the next `collab run` (or by the sensor)."
        )
