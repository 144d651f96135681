"""``collab check`` and ``collab standard ...``: the charity's commands (``standards.cli``) in the analyst's CLI."""

from pipelines.cli.app import app
from standards.cli import check, standard_app

app.command("check")(check)
app.add_typer(standard_app, name="standard")
