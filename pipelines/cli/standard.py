"""``collab check`` and ``collab standard ...``: the charity's commands (``standards.cli``) in the analyst's CLI."""

import typer

from pipelines.cli.app import app
from standards.cli import check, export, suggest_mapping_file

standard_app = typer.Typer(help="The Charity Service-User Extract standard.", no_args_is_help=True)
app.add_typer(standard_app, name="standard")

app.command("check")(check)
standard_app.command("export")(export)
standard_app.command("suggest-mapping")(suggest_mapping_file)
