"""Keyed pseudonyms: HMAC-SHA256 under a secret key that never leaves ``secrets/``.

A pseudonym cannot be reversed or recomputed without the key, so the warehouse holds no charity
reference. The key file is created once, with mode 0600, and is never logged or copied.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
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
    return keyed_hashes(key, parts[:-1], [parts[-1]])[0]


def keyed_hashes(key: bytes, prefix: Sequence[str], values: Iterable[str]) -> list[str]:
    """``keyed_hash(key, *prefix, value)`` of each value: hashing is per value, so callers hash each
    distinct value once and map the codes back onto their rows."""
    return [digest.hex() for digest in _keyed_digests(key, prefix, values)]


def keyed_int64s(key: bytes, prefix: Sequence[str], values: Iterable[str]) -> np.ndarray:
    """The first 8 bytes of ``keyed_hash(key, *prefix, value)`` of each value, read as a big-endian signed 64-bit
    integer: the keyed linkage components (``privacy.linkage``), which are only ever compared for equality with
    other values of their own column.

    Eight bytes are enough for that. Among n distinct values of one column, two share a code with chance about
    n²/2^65: 7e-7 for 5,000,000 distinct values (a warehouse of 10,000,000 contacts holds 1,750,000 units). A
    shared code only makes two records agree on that one component, one piece of evidence among several that
    Splink weighs, never a merge by itself. The code is still a keyed HMAC, which cannot be
    recomputed from a name without the key; NIST SP 800-107 permits an HMAC truncated to 64 bits. Held as an
    integer it is 8 bytes, not 64 characters: staging, loading and relinking units move an eighth as much.
    """
    truncated = b"".join(digest[:8] for digest in _keyed_digests(key, prefix, values))
    return np.frombuffer(truncated, dtype=">i8").astype(np.int64)


def _keyed_digests(key: bytes, prefix: Sequence[str], values: Iterable[str]) -> Iterator[bytes]:
    """The HMAC-SHA256 of ``prefix`` and each value, joined by a separator no part can contain."""
    head = "".join(part.replace(_SEPARATOR, " ") + _SEPARATOR for part in prefix)
    # HMAC as RFC 2104 defines it, H(K^opad, H(K^ipad, message)), with both keyed states and the prefix
    # absorbed once and copied per value: a third cheaper than hmac.digest, which derives them every call.
    inner, outer = _keyed_states(key)
    inner.update(head.encode())
    for value in values:
        message = inner.copy()
        message.update(value.replace(_SEPARATOR, " ").encode())
        code = outer.copy()
        code.update(message.digest())
        yield code.digest()


def _keyed_states(key: bytes) -> tuple[Any, Any]:
    """SHA-256 states having absorbed the key XOR ipad and the key XOR opad (RFC 2104)."""
    block = hashlib.sha256().block_size
    padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
    return hashlib.sha256(bytes(b ^ 0x36 for b in padded)), hashlib.sha256(bytes(b ^ 0x5C for b in padded))


def keyed_codes(key: bytes, prefix: Sequence[str], values: pl.Series) -> pl.Series:
    """Each value's keyed hash (null stays null), each distinct value hashed once."""
    return _each_distinct_once(values, lambda distinct: keyed_hashes(key, prefix, distinct), pl.String)


def keyed_int64_codes(key: bytes, prefix: Sequence[str], values: pl.Series) -> pl.Series:
    """Each value's ``keyed_int64s`` code (null stays null), each distinct value hashed once."""
    return _each_distinct_once(values, lambda distinct: keyed_int64s(key, prefix, distinct), pl.Int64)


def _each_distinct_once(
    values: pl.Series, codes_of: Callable[[list[str]], Sequence[Any]], dtype: pl.DataType
) -> pl.Series:
    """``values`` replaced by the codes ``codes_of`` gives their distinct values (null stays null)."""
    distinct = values.drop_nulls().unique()
    codes = pl.Series(codes_of(distinct.to_list()), dtype=dtype)
    return values.replace_strict(distinct, codes, default=None, return_dtype=dtype)


def person_keys(key: bytes, charity_id: str, person_refs: pl.Series) -> pl.Series:
    """The pseudonym of each contact's reference at its charity: the 64-bit keyed code (``keyed_int64s``) of
    (charity, person_ref), so equal references at two charities are different keys. Each distinct reference is
    hashed once.

    It is the privacy unit at a charity that does not link records; at one that does, it names the
    reference's linkage unit, and the unit's cluster is the privacy unit (``privacy.linkage``).

    Every load, join, relink and release moves and compares these keys: as 8-byte integers, not 64 hex characters,
    a 10M-contact warehouse is about half the size and linking all of it a third quicker.

    Eight bytes can collide, and two references sharing a key are one privacy unit, as a wrong link makes one: removing
    one of the two people changes what bounding keeps of that unit rather than removing it. What matters for a person
    is whether one of their own keys is shared: for a person held as m keys among n references, with chance at most
    m·n/2^64 over the secret key (an HMAC is a pseudorandom function), 5e-13 for one key among 10,000,000. That chance
    is added to δ: a release's (ε, δ) holds at δ + m·n/2^64 (docs/privacy.md, the unit). Two references of one
    submission at a linking charity that share a key, both with an identity, fail its load (each linkage unit needs
    its own key); elsewhere nothing detects it.
    """
    return keyed_int64_codes(key, ("person", charity_id), person_refs).alias("person_key")


def linkage_tokens(key: bytes, bases: pl.Series) -> pl.Series:
    """The keyed linkage token of each normalised identity (``standards.extract.linkage_basis``), or null.

    Equal identities give equal tokens; without the key a token cannot be recomputed from a name and
    birth date. Staging uses it to choose one identity per reference (``privacy.linkage``); it is never stored.
    """
    return keyed_codes(key, ("link",), bases).alias("linkage_token")


def derived_salt(key: bytes, purpose: str) -> str:
    """A secret salt for one purpose (e.g. choosing a person's cells in one period), from the key."""
    return keyed_hash(key, "salt", purpose)
