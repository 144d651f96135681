"""Load published Poverty Insight Collaborative releases, checked against their manifests.

For readers: it needs only Python and polars, and reads only ``publish/`` (or a downloaded copy of
it), never the collaborative's warehouse. Every file of a release is checked against the SHA-256
checksums in its ``release.json`` before anything is read, and a release whose files do not match
is refused with ``TamperedReleaseError`` rather than loaded.

    from release_loader import latest, history
    release = latest()                       # the newest quarter's latest revision
    table = release.table("people_by_need_region")
    trend = history("people_by_need_region")  # every quarter, latest revision of each

Each indicator's table carries, beside the rounded ``value`` and its interval, the cell's unclipped
``estimate`` and its ``estimate_variance``: add or compare cells with ``privacy.combine`` (as the
site does), never by adding rounded values or half-widths.

Where ``publish/`` is: ``$COLLAB_PUBLISH``, else ``$COLLAB_HOME/publish``, else ``../var/publish``
next to this file (where ``make demo`` puts it).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

POLARS_TYPES = {"integer": pl.Int64, "number": pl.Float64, "boolean": pl.Boolean, "string": pl.String}


class TamperedReleaseError(Exception):
    """A release's files do not match the checksums its manifest was published with."""


def publish_root(path: str | Path | None = None) -> Path:
    if path is not None:
        return Path(path)
    if os.environ.get("COLLAB_PUBLISH"):
        return Path(os.environ["COLLAB_PUBLISH"])
    if os.environ.get("COLLAB_HOME"):
        return Path(os.environ["COLLAB_HOME"]) / "publish"
    return Path(__file__).resolve().parent.parent / "var" / "publish"


def _checked_manifest(directory: Path) -> dict[str, Any]:
    manifest_path = directory / "release.json"
    if not manifest_path.is_file():
        raise TamperedReleaseError(f"{directory} has no release.json, so it cannot be checked; refusing to load it.")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    listed: dict[str, str] = manifest["files"]
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()} - {"release.json"}
    mismatched = [
        name
        for name, digest in sorted(listed.items())
        if name in present and hashlib.sha256((directory / name).read_bytes()).hexdigest() != digest
    ]
    reasons = [f"{name} does not match its published SHA-256 checksum" for name in mismatched]
    reasons += [f"{name} is missing" for name in sorted(set(listed) - present)]
    reasons += [f"{name} was not part of the release" for name in sorted(present - set(listed))]
    if reasons:
        raise TamperedReleaseError(
            f"Release {manifest.get('release_id', directory.name)} in {directory} has been altered since it was "
            f"published ({'; '.join(reasons)}). Refusing to load it: download it again from the collaborative."
        )
    return manifest


@dataclass(frozen=True)
class Release:
    directory: Path
    manifest: dict[str, Any]

    @property
    def release_id(self) -> str:
        return str(self.manifest["release_id"])

    @property
    def period(self) -> str:
        return str(self.manifest["period"])

    def indicators(self) -> list[str]:
        return [indicator["id"] for indicator in self.manifest["indicators"]]

    def indicator(self, indicator_id: str) -> dict[str, Any]:
        for indicator in self.manifest["indicators"]:
            if indicator["id"] == indicator_id:
                return indicator
        raise KeyError(f"Release {self.release_id} has no indicator {indicator_id!r}; it has {self.indicators()}.")

    def table(self, indicator_id: str) -> pl.DataFrame:
        """The indicator's CSV, typed by its Table Schema, with its noise scale as a column."""
        indicator = self.indicator(indicator_id)
        package = json.loads((self.directory / "datapackage.json").read_text(encoding="utf-8"))
        resource = next(r for r in package["resources"] if r["path"] == indicator["path"])
        schema = {f["name"]: POLARS_TYPES.get(f["type"], pl.String) for f in resource["schema"]["fields"]}
        booleans = [name for name, kind in schema.items() if kind == pl.Boolean]
        frame = pl.read_csv(
            self.directory / indicator["path"],
            schema_overrides={name: (pl.String if kind == pl.Boolean else kind) for name, kind in schema.items()},
        )
        return frame.with_columns(
            *(pl.col(name) == "true" for name in booleans),
            pl.lit(indicator.get("noise_scale")).cast(pl.Float64).alias("noise_scale"),
        )


def releases(path: str | Path | None = None) -> list[Release]:
    """Every published release, checked, oldest quarter first and latest revision last."""
    root = publish_root(path) / "releases"
    if not root.is_dir():
        raise FileNotFoundError(f"No published releases at {root}: run `make demo`, or set COLLAB_PUBLISH.")
    found = [
        Release(d, _checked_manifest(d)) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")
    ]
    return sorted(found, key=lambda r: (r.period, r.manifest["revision"]))


def latest(path: str | Path | None = None) -> Release:
    """The newest quarter's latest revision."""
    found = releases(path)
    if not found:
        raise FileNotFoundError(f"No release has been published in {publish_root(path)} yet.")
    return found[-1]


def history(indicator_id: str, path: str | Path | None = None) -> pl.DataFrame:
    """The indicator in every quarter (the latest revision of each), stacked, oldest first."""
    by_period: dict[str, Release] = {}
    for release in releases(path):
        by_period[release.period] = release
    frames = [r.table(indicator_id) for r in by_period.values() if indicator_id in r.indicators()]
    if not frames:
        raise KeyError(f"No published release has the indicator {indicator_id!r}.")
    return pl.concat(frames, how="diagonal_relaxed")
