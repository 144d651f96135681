"""Keyed pseudonyms: HMAC-SHA256 under a secret key that never leaves ``secrets/``.

A pseudonym cannot be reversed or recomputed without the key, so the warehouse holds no charity
reference. The key file is created once, with mode 0600, and is never logged or copied.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import polars as pl

KEY_BYTES = 32
_SEPARATOR = "\x1f"


class KeyFileError(Exception):
    """The pseudonymisation key is missing or unusable."""


def create_key(path: Path) -> bool:
    """Create a new random key at ``path`` (mode 0600) unless one exists. Returns True if created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secrets.token_bytes(KEY_BYTES))
    return True


def load_key(path: Path) -> bytes:
    """Read the key, refusing one that others could read."""
    if not path.exists():
        raise KeyFileError(f"No pseudonymisation key at {path}; run `collab init` to create one.")
    if path.stat().st_mode & 0o077:
        raise KeyFileError(f"The key file {path} is readable by other users; run `chmod 600 {path}`.")
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"The key file {path} does not hold a {KEY_BYTES}-byte key.")
    return key


def keyed_hash(key: bytes, *parts: str) -> str:
    """HMAC-SHA256 of the parts, joined by a separator no part can contain, as hex."""
    message = _SEPARATOR.join(part.replace(_SEPARATOR, " ") for part in parts).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def person_keys(key: bytes, charity_id: str, person_refs: pl.Series) -> pl.Series:
    """The pseudonym of each (charity, person_ref): the privacy unit when there is no linkage.

    The charity is part of the message, so equal references at two charities never collide.
    Each distinct reference is hashed once.
    """
    unique = person_refs.unique()
    table = {ref: keyed_hash(key, "person", charity_id, ref) for ref in unique.to_list()}
    return person_refs.replace_strict(table, return_dtype=pl.String).alias("person_key")


def derived_salt(key: bytes, purpose: str) -> str:
    """A secret salt for one purpose (e.g. choosing a person's cells in one period), from the key."""
    return keyed_hash(key, "salt", purpose)
