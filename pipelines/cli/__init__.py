"""``collab``: the command line of the collaborative. Each module adds its commands to ``app``."""

from pipelines.cli import bucket, charities, demo, pipeline, portal, standard  # noqa: F401  (registers commands)
from pipelines.cli.app import app


def main() -> None:
    app()
