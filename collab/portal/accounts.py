"""Portal passwords: issued once by the analyst, kept only as an Argon2 hash beside the charity's
registration (``registry/<id>/portal.json``, 0600).

A session records which password it was opened with (its ``issued_at``); a new password, a revoked
one or a deactivated charity ends every session at the charity's next request, because the portal
reads this file on every request.
"""

from __future__ import annotations

import datetime as dt
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict

from collab.access import write_private
from collab.registry import CHARITY_ID, Registry
from collab.workspace import Workspace

PORTAL_FILE = "portal.json"
_HASHER = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified when the charity id is unknown, so a wrong id costs as long as a wrong password (made on
    first use: every `collab` command imports this module)."""
    return _HASHER.hash(secrets.token_urlsafe(16))


class PortalAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password_hash: str
    issued_at: dt.datetime
    revoked_at: dt.datetime | None = None


def issue_password(workspace: Workspace, charity_id: str) -> str:
    """A new portal password for an active charity; the previous one (and its sessions) stop working."""
    Registry(workspace).get(charity_id)
    password = "-".join(secrets.token_hex(3) for _ in range(4))  # 48 random bits, easy to read out
    account = PortalAccount(password_hash=_HASHER.hash(password), issued_at=dt.datetime.now(dt.UTC))
    write_private(workspace.registry / charity_id / PORTAL_FILE, account.model_dump_json(indent=2))
    return password


def revoke(workspace: Workspace, charity_id: str) -> None:
    """End the charity's portal access at once; `collab charity portal-password` issues a new one."""
    current = account(workspace, charity_id)
    if current is None:
        Registry(workspace).get(charity_id)  # an unknown charity is an error; one without a password is not
        return
    revoked = current.model_copy(update={"revoked_at": dt.datetime.now(dt.UTC).replace(microsecond=0)})
    write_private(workspace.registry / charity_id / PORTAL_FILE, revoked.model_dump_json(indent=2))


def account(workspace: Workspace, charity_id: str) -> PortalAccount | None:
    """The charity's usable portal account: None if unknown, deactivated, never issued or revoked."""
    if not CHARITY_ID.match(charity_id):
        return None
    charity = Registry(workspace).find(charity_id)
    path = workspace.registry / charity_id / PORTAL_FILE
    if charity is None or not charity.active or not path.exists():
        return None
    found = PortalAccount.model_validate_json(path.read_text(encoding="utf-8"))
    return None if found.revoked_at is not None else found


def verify(workspace: Workspace, charity_id: str, password: str) -> PortalAccount | None:
    """The account if ``password`` is the charity's current one, else None (in the same time either way)."""
    found = account(workspace, charity_id)
    try:
        _HASHER.verify(found.password_hash if found else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    return found
