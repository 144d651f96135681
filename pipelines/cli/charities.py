"""``collab charity ...`` and ``collab submit``: who takes part, their keys, and sending a file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.markup import escape
from rich.table import Table

from collab import s3
from collab.access import AccessError, AccessStore
from collab.landing import LandingAreaError, LocalLandingZone, landing_name, landing_zone_from_env
from collab.portal import accounts as portal_accounts
from collab.registry import CHARITY_ID, Charity, Registry, RegistryError
from collab.workspace import Workspace
from pipelines.cli.app import JsonOption, app, console, emit_json, existing_workspace, fail, transfer_bar, workspace
from standards.mapping import CharityMapping

charity_app = typer.Typer(help="Register and manage participating charities.", no_args_is_help=True)
app.add_typer(charity_app, name="charity")

# What can go wrong talking to the S3 server, each with a message fit for the analyst.
S3_ERRORS = (AccessError, LandingAreaError, BotoCoreError, ClientError)


def _show_credentials(credentials: s3.CharityCredentials, *, as_json: bool, heading: str) -> None:
    """Print a charity's keys: the only time they are shown."""
    if as_json:
        emit_json(credentials.to_json())
        return
    console.print(heading)
    table = Table(show_header=False)
    for name, value in credentials.to_json().items():
        table.add_row(name, value)
    console.print(table)
    console.print(
        "[bold yellow]These keys are shown once.[/] Send them to the charity securely; "
        f"`collab charity rotate-key {credentials.charity_id}` replaces them if they are lost."
    )


def _issue_keys(ws: Workspace, charity_id: str) -> s3.CharityCredentials:
    """Create the charity's buckets (if missing) and new keys that work from now on."""
    landing_zone_from_env(ws.home).create_area(charity_id)
    return AccessStore(ws).issue(charity_id, os.environ[s3.ENDPOINT_VAR])


@charity_app.command("add")
def add(
    charity_id: str = typer.Argument(..., help="Short id, e.g. northside-food-bank."),
    name: str = typer.Option(..., "--name", help="The charity's name."),
    mapping: Path | None = typer.Option(
        None, "--mapping", exists=True, dir_okay=False, help="Its mapping file (YAML)."
    ),
    linkage: bool = typer.Option(
        True,
        "--linkage/--no-linkage",
        help="It takes part in record linkage (its files carry surnames and dates of birth): the default, "
        "since a person it shares with another charity is otherwise two privacy units and costs 4ρ.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Register a charity and create its landing and feedback areas (with S3: its buckets and keys)."""
    if not CHARITY_ID.match(charity_id):
        fail(
            f"{charity_id!r} is not a charity id: 3 to 40 lower-case letters, digits and hyphens, starting and "
            "ending with a letter or digit (e.g. northside-food-bank)",
            code=2,
        )
    ws = workspace()
    registry = Registry(ws)
    try:
        parsed = CharityMapping.load(mapping) if mapping else None
        charity = registry.add(charity_id, name, parsed, linkage=linkage)
    except (RegistryError, ValueError) as error:  # a bad mapping file: ValidationError or YAML
        fail(str(error))
    if s3.configured():
        try:
            credentials = _issue_keys(ws, charity.id)
        except S3_ERRORS as error:
            registry.deactivate(charity.id)  # nothing half-done: the same command can be run again
            fail(f"could not set up {charity.id} on the S3 server: {error}")
        _show_credentials(
            credentials,
            as_json=as_json,
            heading=f"Registered [bold]{escape(charity.name)}[/] as [bold]{charity.id}[/].",
        )
        if not as_json:  # the JSON is the charity's credentials file; `portal-password --json` gives the password
            console.print(f"Portal password (shown once): [bold]{portal_accounts.issue_password(ws, charity.id)}[/]")
        return
    landing = landing_zone_from_env(ws.home)
    landing.create_area(charity.id)
    password = portal_accounts.issue_password(ws, charity.id)
    if as_json:
        emit_json(
            {
                "charity_id": charity.id,
                "name": charity.name,
                "linkage": charity.linkage,
                "landing": landing.describe(),
                "portal_password": password,
            }
        )
    else:
        console.print(
            f"Registered [bold]{escape(charity.name)}[/] as [bold]{charity.id}[/]; landing area ready in {landing.describe()}."
        )
        console.print(f"Portal password (shown once): [bold]{password}[/]")


@charity_app.command("rotate-key")
def rotate_key(charity_id: str, as_json: bool = JsonOption) -> None:
    """Give a charity new S3 keys; its previous keys stop working at once."""
    ws = workspace()
    if not s3.configured():
        fail(f"keys exist only with the S3 landing zone; set {s3.ENDPOINT_VAR} (see `collab bucket serve`)")
    try:
        Registry(ws).get(charity_id)
        credentials = _issue_keys(ws, charity_id)
    except RegistryError as error:
        fail(str(error))
    except S3_ERRORS as error:
        fail(f"could not rotate {charity_id}'s keys: {error}")
    _show_credentials(
        credentials, as_json=as_json, heading=f"New keys for [bold]{charity_id}[/]; the old ones are revoked."
    )


@charity_app.command("list")
def list_charities(as_json: bool = JsonOption) -> None:
    """List registered charities."""
    charities = Registry(existing_workspace()).all(include_inactive=True)
    if as_json:
        emit_json([c.model_dump(mode="json") for c in charities])
        return
    table = Table("id", "name", "active", "linkage", "named", "added")
    for c in charities:
        yes_no = {True: "yes", False: "no"}
        table.add_row(
            c.id,
            escape(c.name),
            yes_no[c.active],
            yes_no[c.linkage],
            yes_no[c.publish_name],
            c.added_at.date().isoformat(),
        )
    console.print(table)


def _switch(
    charity_id: str, as_json: bool, change: Callable[[Registry], Charity], said: Callable[[Charity], str]
) -> None:
    """Apply one on/off registry setting and report it."""
    try:
        charity = change(Registry(workspace()))
    except RegistryError as error:
        fail(str(error))
    if as_json:
        emit_json({"charity_id": charity.id, "linkage": charity.linkage, "publish_name": charity.publish_name})
    else:
        console.print(escape(said(charity)))


@charity_app.command("linkage")
def set_linkage(
    charity_id: str,
    enable: bool = typer.Option(..., "--on/--off", help="Take part in record linkage, or stop."),
    as_json: bool = JsonOption,
) -> None:
    """Opt a charity in to or out of record linkage, for the files it sends from now on. Opting out also
    drops its keyed identities from the warehouse at the next release, before it reads them: its people become units of
    their own. Opting in: its contacts already held have no identity to link, so releases leave them out until it
    sends them again (a person counted apart at each linking charity would get more privacy loss than is stated)."""
    _switch(
        charity_id,
        as_json,
        lambda registry: registry.set_linkage(charity_id, enable),
        lambda c: (
            f"{c.id} links records from its next file on. Until it sends again the quarters it has sent, releases "
            "leave out its contacts held now: they carry no identity to link."
            if c.linkage
            else f"{c.id} no longer links records from its next file on."
        ),
    )


@charity_app.command("named")
def set_named(
    charity_id: str,
    enable: bool = typer.Option(..., "--on/--off", help="Name the charity among a release's contributors, or stop."),
    as_json: bool = JsonOption,
) -> None:
    """Record a charity's consent to be named on the site as a contributor (from the next release rendered)."""
    _switch(
        charity_id,
        as_json,
        lambda registry: registry.set_publish_name(charity_id, enable),
        lambda c: (
            f"{c.name} {'is named' if c.publish_name else 'is counted, not named,'} among the contributors "
            "of releases rendered from now on."
        ),
    )


@charity_app.command("remove")
def remove(charity_id: str, as_json: bool = JsonOption) -> None:
    """Stop accepting files from a charity and revoke its keys. Its data stay until purged."""
    ws = workspace()
    try:
        charity = Registry(ws).deactivate(charity_id)
    except RegistryError as error:
        fail(str(error))
    if s3.configured():
        try:
            AccessStore(ws).revoke(charity.id, os.environ[s3.ENDPOINT_VAR])
        except S3_ERRORS as error:
            fail(f"{charity.id} is deactivated, but revoking its keys failed: {error}")
    if as_json:
        emit_json({"charity_id": charity.id, "active": False})
    else:
        console.print(f"{charity.id} no longer submits and its keys are revoked; its data stay until purged.")


def _credentials_for(charity: str | None, credentials_file: Path | None) -> tuple[str, s3.CharityCredentials | None]:
    """Who submits, and with which keys: the charity's credentials file, else the workspace's copy
    (S3), else none (the local landing folder)."""
    if credentials_file is not None:
        try:
            credentials = s3.CharityCredentials.load(credentials_file)
        except ValueError as error:
            fail(str(error), code=2)
        if charity and charity != credentials.charity_id:
            fail(f"{credentials_file} holds the keys of {credentials.charity_id}, not {charity}", code=2)
        return credentials.charity_id, credentials
    if not charity:
        fail("say which charity you are (--charity ID) or give your credentials file (--credentials)", code=2)
    ws = workspace()
    found = Registry(ws).find(charity)
    if found is None or not found.active:
        fail(
            f"no charity with the id {charity!r} takes part in this collaborative. Check the id your "
            "collaborative contact gave you, or send your file with the credentials file they gave you "
            "(--credentials)."
        )
    if not s3.configured():
        return charity, None
    stored = AccessStore(ws).charity(charity)
    if stored is None:
        fail(f"{charity} has no S3 keys yet; `collab charity rotate-key {charity}` issues them")
    return charity, s3.CharityCredentials.for_charity(charity, os.environ[s3.ENDPOINT_VAR], stored)


@app.command()
def submit(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="The extract to submit."),
    charity: str | None = typer.Option(None, "--charity", help="Your charity id."),
    credentials_file: Path | None = typer.Option(
        None,
        "--credentials",
        envvar="COLLAB_CREDENTIALS",
        exists=True,
        dir_okay=False,
        help="Your credentials file (the JSON you were given at onboarding).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Send an extract to a charity's landing area (what a charity does).

    With a credentials file, or in a workspace set up for S3, the file is uploaded to the charity's
    bucket with the charity's own keys, streamed with a progress bar. Otherwise it is placed in the
    local landing folder.
    """
    if not file.is_file():  # a device or a pipe: never read (/dev/zero once filled the landing area)
        fail(f"{file} is not a file", code=2)
    charity_id, credentials = _credentials_for(charity, credentials_file)
    # A name the landing area takes for an unfinished file's ('.contacts.csv', 'contacts.part') sat there unread.
    sent_as = landing_name(file.name, None)
    renamed = (
        f"Sent as {escape(sent_as)}: a name like {escape(file.name)} is taken for an unfinished file and never read. "
        if sent_as != file.name
        else ""
    )
    if credentials is None:
        landing = landing_zone_from_env(workspace().home)
        if not isinstance(landing, LocalLandingZone):
            fail("this workspace's landing zone is not a local folder")
        target = landing.drop(charity_id, file, sent_as)
        if as_json:
            emit_json({"charity_id": charity_id, "file": file.name, "sent_as": sent_as, "landed": str(target)})
        else:
            console.print(
                f"Submitted {escape(file.name)} for {charity_id}. {renamed}It will be checked on the next `collab run` "
                "(or by the sensor)."
            )
        return
    from boto3.exceptions import S3UploadFailedError

    size = file.stat().st_size
    try:
        with transfer_bar(f"Uploading {escape(file.name)}", size, enabled=not as_json) as advance:
            landed = s3.upload(credentials, file, sent_as, progress=advance)
    except (S3UploadFailedError, BotoCoreError, ClientError) as error:
        fail(f"the upload to {credentials.endpoint} failed, nothing was submitted: {error}")
    if as_json:
        emit_json({**landed, "size": size})
    else:
        console.print(
            f"Uploaded {escape(file.name)} ({size:,} bytes) to {landed['bucket']}. {renamed}"
            f"Its feedback report will appear in {credentials.feedback_bucket}."
        )
