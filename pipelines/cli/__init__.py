"""``collab``: the command line of the collaborative. Each module adds its commands to ``app``."""

import sys

CHECKER_ONLY = (
    "`collab` runs the collaborative itself and needs its full install (`pip install -c constraints.txt "
    '".[collaborative]"`): {missing} is not installed here. To check a file, use `collab-check FILE`; for the '
    "standard's templates and a mapping, `collab-standard`. To send a file, use the charity portal in a browser.\n"
)


OUR_PACKAGES = ("pipelines", "assets", "collab", "privacy", "standards", "collab_demo")


def register_commands() -> None:
    """Import the command modules: each adds its commands to ``app``."""
    from pipelines.cli import bucket, charities, demo, pipeline, portal, standard  # noqa: F401


def main() -> None:
    try:  # a charity's checker-only install lacks what the commands need
        register_commands()
    except ModuleNotFoundError as missing:
        if (missing.name or "").split(".")[0] in OUR_PACKAGES:
            raise  # an error of ours, not a missing install
        sys.stderr.write(CHECKER_ONLY.format(missing=missing.name))
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        # Ctrl-C while the commands load (a second or more on a cold start): nothing has started, so no traceback.
        sys.stderr.write("Interrupted before anything started.\n")
        raise SystemExit(130) from None
    from pipelines.cli.app import app

    app()
