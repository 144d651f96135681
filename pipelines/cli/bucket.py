"""``collab bucket serve | stop | status``: the collaborative's own S3 server on this machine."""

from __future__ import annotations

import typer

from collab.access import AccessStore
from collab.bucket import BucketServer, BucketServerError
from collab.registry import Registry
from pipelines.cli.app import JsonOption, app, console, emit_json, fail, workspace

bucket_app = typer.Typer(help="The S3 server (SeaweedFS) that holds the charities' buckets.", no_args_is_help=True)
app.add_typer(bucket_app, name="bucket")


@bucket_app.command("serve")
def serve(
    port: int | None = typer.Option(None, "--port", help="S3 port on 127.0.0.1 (default: the last one, else 8333)."),
    as_json: bool = JsonOption,
) -> None:
    """Start the S3 server in the background, with every registered charity's buckets and identities."""
    ws = workspace()
    store = AccessStore(ws)
    try:
        state = store.serve(port)
    except BucketServerError as error:
        fail(str(error))
    if as_json:
        emit_json({"endpoint": state.endpoint, "pid": state.pid, "env_file": str(store.env_path)})
        return
    console.print(f"S3 server running at [bold]{state.endpoint}[/] (pid {state.pid}, data in {store.server.data}).")
    console.print(f"Point the pipeline and `collab` at it:  [bold]source {store.env_path}[/]")
    console.print("Then `collab charity add ID --name NAME` creates a charity's buckets and prints its keys once.")
    for charity in Registry(ws).all():
        if store.charity(charity.id) is None:
            console.print(f"{charity.id} has no keys yet: `collab charity rotate-key {charity.id}` issues them.")


@bucket_app.command("stop")
def stop(
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for a clean exit before killing it."),
    as_json: bool = JsonOption,
) -> None:
    """Stop the S3 server (its data stay)."""
    stopped = BucketServer(workspace()).stop(timeout=timeout)
    if as_json:
        emit_json({"stopped": stopped})
    else:
        console.print("S3 server stopped." if stopped else "No S3 server was running.")


@bucket_app.command("status")
def status(as_json: bool = JsonOption) -> None:
    """Whether the S3 server runs, and where."""
    state = BucketServer(workspace()).state()
    if as_json:
        emit_json({"running": state is not None, "endpoint": state.endpoint if state else None})
    else:
        console.print(f"Running at {state.endpoint} (pid {state.pid})." if state else "Not running.")
