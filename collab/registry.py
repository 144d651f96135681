"""The charity registry: who takes part, and how to read each charity's extracts.

Each charity has ``registry/<id>/charity.yaml`` and, optionally, ``registry/<id>/mapping.yaml``, with a dated copy
of each mapping saved through the registry in ``registry/<id>/mappings/`` (a file is read with the one in effect
when it landed).
Files rather than the warehouse: the landing sensor reads the registry on every tick and must
never wait for a DuckDB lock held by a running job.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import uuid
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from collab.workspace import Workspace, read_yaml
from standards.mapping import CharityMapping

CHARITY_ID_TEXT = r"[a-z0-9](?:[a-z0-9-]{1,38}[a-z0-9])"
# ``\Z``, not ``$``, which also matches before a final line break ("north-pantry\n").
CHARITY_ID = re.compile(rf"^{CHARITY_ID_TEXT}\Z")


MAPPING_HISTORY = "mappings"


def _saved_name(when: dt.datetime) -> str:
    """A dated copy's name, in the order of the times (UTC, to the microsecond)."""
    return when.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ") + ".yaml"


class RegistryError(Exception):
    """A registry request that cannot be honoured (unknown id, duplicate id, bad mapping)."""


class Charity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str = Field(min_length=1, max_length=200)
    added_at: dt.datetime
    active: bool = True
    publish_name: bool = Field(default=False, description="the charity agreed to be named as a contributor")
    linkage: bool = Field(
        default=False,
        description="the charity takes part in record linkage: its extracts carry surnames, turned into keyed "
        "linkage codes at intake so that a person seen by several linking charities is one privacy unit",
    )

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not CHARITY_ID.match(value):
            raise ValueError(
                "a charity id is 3-40 characters of lower-case letters, digits and hyphens, "
                "starting and ending with a letter or digit"
            )
        return value


class Registry:
    def __init__(self, workspace: Workspace) -> None:
        self.root = workspace.registry

    def _dir(self, charity_id: str) -> Path:
        return self.root / charity_id

    def add(
        self, charity_id: str, name: str, mapping: CharityMapping | None = None, *, linkage: bool = False
    ) -> Charity:
        try:
            charity = Charity(
                id=charity_id, name=name, added_at=dt.datetime.now(dt.UTC).replace(microsecond=0), linkage=linkage
            )
        except ValueError as error:
            raise RegistryError(str(error)) from error
        existing = self.find(charity_id)
        if existing is not None and existing.active:
            raise RegistryError(f"Charity {charity_id!r} is already registered.")
        self._dir(charity_id).mkdir(parents=True, exist_ok=True)
        self._save(charity)
        if mapping is not None:
            mapping.dump(self._dir(charity_id) / "mapping.yaml")
        return charity

    def _save(self, charity: Charity) -> None:
        path = self._dir(charity.id) / "charity.yaml"
        path.write_text(yaml.safe_dump(charity.model_dump(mode="json"), sort_keys=False), encoding="utf-8")

    def find(self, charity_id: str) -> Charity | None:
        path = self._dir(charity_id) / "charity.yaml"
        if not CHARITY_ID.match(charity_id) or not path.exists():
            return None
        return Charity.model_validate(read_yaml(path))

    def get(self, charity_id: str) -> Charity:
        charity = self.find(charity_id)
        if charity is None or not charity.active:
            raise RegistryError(f"No active charity {charity_id!r}; register it with `collab charity add`.")
        return charity

    def all(self, include_inactive: bool = False) -> list[Charity]:
        charities = [self.find(path.parent.name) for path in sorted(self.root.glob("*/charity.yaml"))]
        return [c for c in charities if c is not None and (include_inactive or c.active)]

    def mapping(self, charity_id: str, *, as_of: dt.datetime | None = None) -> CharityMapping:
        """The charity's mapping; with ``as_of`` (when a file landed), the one in effect then. A charity's trial
        (session 31) checked and sent a file, then saved choices for another layout before the pipeline read the
        first: read with them, its dates moved quarter and replaced earlier contacts. So a mapping saved (by
        ``set_mapping``) after ``as_of`` gives way to the one saved last before it, or to none; otherwise the
        current file is read, as an analyst may have edited it."""
        current = self._dir(charity_id) / "mapping.yaml"
        saved = sorted((self._dir(charity_id) / MAPPING_HISTORY).glob("*.yaml"))
        landed = _saved_name(as_of) if as_of is not None else None
        if landed is not None and saved and saved[-1].name > landed:
            earlier = [path for path in saved if path.name <= landed]
            return CharityMapping.load(earlier[-1]) if earlier else CharityMapping()
        return CharityMapping.load(current) if current.exists() else CharityMapping()

    def set_mapping(self, charity_id: str, source: Path) -> None:
        """Make ``source`` the charity's mapping from now on, keeping a dated copy of each (``mapping``'s ``as_of``);
        a mapping in use before copies were kept is kept first, dated when it was last written."""
        self.get(charity_id)
        CharityMapping.load(source)  # refuse a mapping that does not validate
        current = self._dir(charity_id) / "mapping.yaml"
        history = self._dir(charity_id) / MAPPING_HISTORY
        history.mkdir(exist_ok=True)
        if current.exists() and not any(history.glob("*.yaml")):
            written = dt.datetime.fromtimestamp(current.stat().st_mtime, dt.UTC)
            shutil.copyfile(current, history / _saved_name(written))
        shutil.copyfile(source, history / _saved_name(dt.datetime.now(dt.UTC)))
        partial = current.with_name(f".mapping.yaml.{uuid.uuid4().hex}.partial")  # two saves at once each whole
        shutil.copyfile(source, partial)
        partial.replace(current)

    def _update(self, charity_id: str, **changes: bool) -> Charity:
        charity = self.get(charity_id).model_copy(update=changes)
        self._save(charity)
        return charity

    def set_linkage(self, charity_id: str, linkage: bool) -> Charity:
        """Opt a charity in to (or out of) record linkage for the files it sends from now on; out also drops
        its keyed identities at the next release's relink (``collab.linkage.relink``)."""
        return self._update(charity_id, linkage=linkage)

    def set_publish_name(self, charity_id: str, publish_name: bool) -> Charity:
        """Record a charity's consent (or its withdrawal) to be named among a release's contributors."""
        return self._update(charity_id, publish_name=publish_name)

    def deactivate(self, charity_id: str) -> Charity:
        return self._update(charity_id, active=False)

    def named(self, charity_ids: set[str]) -> list[str]:
        """The names of those charities that agreed to be named, for a release they contributed to."""
        return sorted(c.name for c in self.all(include_inactive=True) if c.id in charity_ids and c.publish_name)
