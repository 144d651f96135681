"""``collab``: the command line of the collaborative. Each module adds its commands to ``app``."""

import sys

CHECKER_ONLY = (
    "`collab` runs the collaborative itself and needs its full install (`pip install -c constraints.txt "
    '".[collaborative]"`): {missing} is not installed here. To check a file, use `collab-check FILE`; for the '
    "standard's templates and a mapping, `collab-standard`. To send a file, use the charity portal in a browser.\n"
)


def main() -> None:
    try:  # the commands register themselves on import; a charity's checker-only install lacks what they need
        from pipelines.cli import bucket, charities, demo, pipeline, portal, standard  # noqa: F401
    except ModuleNotFoundError as missing:
        sys.stderr.write(CHECKER_ONLY.format(missing=missing.name))
        raise SystemExit(2) from None
    from pipelines.cli.app import app

    app()
