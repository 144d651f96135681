"""``collab portal serve`` and the charity's portal password: ``collab charity portal-password | portal-revoke``."""

from __future__ import annotations

import typer

from collab.portal import accounts
from collab.registry import RegistryError
from pipelines.cli.app import JsonOption, app, console, emit_json, fail, workspace
from pipelines.cli.charities import charity_app

portal_app = typer.Typer(help="The charity portal: charities check, send and follow their files in a browser.")
app.add_typer(portal_app, name="portal")


@portal_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (127.0.0.1: this computer only)."),
    port: int = typer.Option(8400, help="Port."),
    max_upload_mb: int = typer.Option(200, min=1, help="Largest file a charity may upload, in MB."),
    idle_minutes: float = typer.Option(30.0, min=1, help="Minutes without a request before a charity is signed out."),
    behind_https: bool = typer.Option(
        False, "--behind-https", help="Served through an HTTPS reverse proxy: cookies are sent over HTTPS only."
    ),
    forwarded_allow_ips: str = typer.Option(
        "127.0.0.1", help="Proxies trusted to say the client's address (X-Forwarded-For), for the sign-in limit."
    ),
) -> None:
    """Serve the charity portal (one process: sessions live in it)."""
    import uvicorn

    from collab.portal.app import PortalSettings, create_app

    ws = workspace()
    settings = PortalSettings(
        max_upload_bytes=max_upload_mb * 1024 * 1024, idle_minutes=idle_minutes, secure_cookies=behind_https
    )
    console.print(f"Charity portal at http://{host}:{port}/ (Ctrl+C to stop)")
    uvicorn.run(
        create_app(ws, settings),
        host=host,
        port=port,
        workers=1,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
        log_level="warning",
    )


def show_password(charity_id: str, password: str, *, as_json: bool) -> None:
    """Print a portal password: the only time it is shown."""
    if as_json:
        emit_json({"charity_id": charity_id, "portal_password": password})
        return
    console.print(f"Portal password for [bold]{charity_id}[/]: [bold]{password}[/]")
    console.print(
        "[bold yellow]It is shown once.[/] Give it to the charity with the portal's address; "
        f"`collab charity portal-password {charity_id}` replaces it, `collab charity portal-revoke {charity_id}` "
        "ends its access."
    )


@charity_app.command("portal-password")
def portal_password(charity_id: str, as_json: bool = JsonOption) -> None:
    """Give a charity a new portal password; the old one, and every session opened with it, stop at once."""
    try:
        password = accounts.issue_password(workspace(), charity_id)
    except RegistryError as error:
        fail(str(error))
    show_password(charity_id, password, as_json=as_json)


@charity_app.command("portal-revoke")
def portal_revoke(charity_id: str, as_json: bool = JsonOption) -> None:
    """End a charity's portal access at once (it is signed out at its next click)."""
    try:
        accounts.revoke(workspace(), charity_id)
    except RegistryError as error:
        fail(str(error))
    if as_json:
        emit_json({"charity_id": charity_id, "portal": "revoked"})
    else:
        console.print(f"{charity_id} can no longer use the portal; `collab charity portal-password` lets it back.")
