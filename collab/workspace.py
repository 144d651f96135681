"""The workspace: every file the collaborative keeps, under one directory (``COLLAB_HOME``, default ``./var``).

landing/<charity>/     charities drop files here (local landing zone)
feedback/<charity>/    feedback reports for each charity
archive/<charity>/     landed files after intake, kept until purged (0700)
staging/<submission>/  the pipeline's working copy of each submission (0700)
quarantine/<submission>/ rejected files and rows, with reasons (0700)
warehouse.duckdb       pseudonymised contacts, releases and the privacy ledger (0600)
releases/<release>/    release packages awaiting publication
publish/               public: releases and the site
registry/<charity>/    charity registrations and mapping files (0700)
secrets/               the pseudonymisation key; with S3, every S3 key and the server's identities (0600)
bucket/                with S3: the SeaweedFS server's data, log and ports
dagster/               DAGSTER_HOME (0700)
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from privacy.linkage import DEFAULT_THRESHOLD
from privacy.pseudonymise import create_key, load_key

# libyaml's loader where PyYAML was built with it (the wheels are): the same documents, parsed in C. The settings,
# the instance's configuration and every charity's registry entry are read in each run, the registry's whole.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> Any:
    """A YAML file of ours (settings, instance configuration, registry entries), as ``yaml.safe_load`` reads it."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)


# The variable the instance's dagster.yaml reads PostgreSQL's URL from, in the production profile.
POSTGRES_URL_VARIABLE = "COLLAB_DAGSTER_POSTGRES_URL"
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DAGSTER_YAML = REPOSITORY_ROOT / "dagster.yaml"


class SettingsError(ValueError):
    """A settings file that cannot be used, and why."""


class PrivacySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    release_rho: float = Field(
        default=0.125,
        gt=0,
        description="rho one release of a quarter spends per privacy unit (one person at one charity)",
    )
    period_rho: float = Field(
        default=2.0,
        gt=0,
        description="rho allowed per person per quarter, revisions included, for the worst-case person "
        "(held as the largest number of privacy units)",
    )
    lifetime_rho: float = Field(
        default=8.0, gt=0, description="rho allowed per person over all quarters, for the worst-case person"
    )
    max_unlinked_charities: int | None = Field(
        default=None,
        ge=1,
        description="public cap: the largest number of charities that do not link records at which one person may "
        "be counted, each making them one more privacy unit; unset: every registered non-linking charity",
    )
    linked_units_per_person: int = Field(
        default=1,
        ge=1,
        le=8,
        description="public cap: the privacy units one person may be across the charities that link records. 1 holds "
        "if linkage joins exactly their records; each more covers one more time it went wrong for them: a group of "
        "their records split off by a missed link, or a record of someone else's (a twin's, say) matched with theirs",
    )
    link_threshold: float = Field(
        default=DEFAULT_THRESHOLD,
        gt=0,
        lt=1,
        description="match probability above which records at linking charities are one person (one privacy unit); "
        "lower misses fewer links (a person split into m units costs m squared rho), higher merges fewer people",
    )
    report_delta: float = Field(default=1e-7, gt=0, lt=1, description="delta for (epsilon, delta) equivalents")


class IntakeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_row_error_share: float = Field(default=0.2, ge=0, le=1)
    settle_seconds: float = Field(
        default=2.0, ge=0, description="age a landed file must reach before the sensor takes it"
    )
    batch_rows: int = Field(
        default=100_000,
        ge=1_000,
        description="rows checked and loaded at a time (fewer in a file of many columns: "
        "standards.check.MAX_BATCH_CELLS); a run's memory grows with it, not with the file",
    )
    max_columns: int = Field(default=500, ge=10, description="columns a file may have before it is refused")
    max_rows: int = Field(default=10_000_000, ge=1, description="rows a file may have before it is refused")


class PublicationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    auto_publish: bool = Field(default=False, description="publish releases without `collab approve`")
    min_contributors: int = Field(
        default=2,
        ge=1,
        description="fewest contributing charities (registered, with a file sent) before a release may be published",
    )
    first_quarter: str | None = Field(
        default=None,
        pattern=r"^\d{4}Q[1-4]$",
        description="first quarter the collaborative reports on; every quarter from it is released once it has "
        "ended; unset: the quarter in which the first charity registered",
    )
    max_interval_share: float = Field(
        default=0.5,
        gt=0,
        description="widest 95% interval, as a share of the figure's possible range (or of the figure itself for "
        "counts and totals), that the site quotes as a headline; wider ones read 'not enough data this quarter'",
    )


class InstanceSettings(BaseModel):
    """Where Dagster keeps runs, events and schedules, and how many runs go at once."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    database: Literal["sqlite", "postgres"] = Field(
        default="sqlite",
        description="sqlite: files in DAGSTER_HOME, for one machine and one process at a time; postgres: the "
        f"production profile, at the URL in ${POSTGRES_URL_VARIABLE} (daemon, webserver and run workers apart)",
    )
    max_concurrent_runs: int | None = Field(
        default=None, ge=1, description="runs (submissions checked) at once; unset: one per core of this machine"
    )


class Settings(BaseModel):
    """The analyst's settings (``settings.yaml`` in the workspace)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    privacy: PrivacySettings = PrivacySettings()
    intake: IntakeSettings = IntakeSettings()
    publication: PublicationSettings = PublicationSettings()
    instance: InstanceSettings = InstanceSettings()


# Far more than any settings file holds: a larger one is no settings file.
_LARGEST_SETTINGS_BYTES = 1024 * 1024


def read_settings(path: Path) -> Settings:
    """The settings in ``path`` (the defaults if there is none, or it is empty); ``SettingsError`` says in one line
    per problem what in the file is wrong, or why it is no file to read (a folder, a FIFO, a link to nothing: a
    hostile trial's hung or ended in a traceback every command)."""
    if not path.exists() and not path.is_symlink():
        return Settings()
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(handle, "rb") as opened:
            status = os.fstat(opened.fileno())
            if not stat.S_ISREG(status.st_mode) or status.st_size > _LARGEST_SETTINGS_BYTES:
                raise SettingsError(f"{path} is not a settings file: not a regular file of at most 1 MB")
            text = opened.read(_LARGEST_SETTINGS_BYTES + 1).decode("utf-8")
    except OSError as error:
        raise SettingsError(f"{path} cannot be read: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise SettingsError(f"{path} is not UTF-8 text: {error}") from error
    try:
        document = yaml.load(text, Loader=_YAML_LOADER)
        return Settings.model_validate({} if document is None else document)
    except yaml.YAMLError as error:
        raise SettingsError(f"{path} is not valid YAML: {error}") from error
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'the file'}: {problem['msg']}"
            for problem in error.errors()
        )
        raise SettingsError(f"{path}: {problems}") from error


@dataclass(frozen=True)
class Workspace:
    home: Path

    @classmethod
    def from_env(cls) -> Workspace:
        return cls(Path(os.environ.get("COLLAB_HOME", "var")).resolve())

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def feedback(self) -> Path:
        return self.home / "feedback"

    @property
    def archive(self) -> Path:
        return self.home / "archive"

    @property
    def staging(self) -> Path:
        return self.home / "staging"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def releases(self) -> Path:
        return self.home / "releases"

    @property
    def publish(self) -> Path:
        return self.home / "publish"

    @property
    def registry(self) -> Path:
        return self.home / "registry"

    @property
    def secrets(self) -> Path:
        return self.home / "secrets"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def settings_path(self) -> Path:
        return self.home / "settings.yaml"

    @property
    def key_path(self) -> Path:
        return self.secrets / "pseudonymisation.key"

    @property
    def restore_marker(self) -> Path:
        """There while `collab restore` puts a backup's files back (it names the backup): a workspace that holds it
        mixes the backup's files with its own, and is used for nothing until restored again."""
        return self.home / ".restore-unfinished"

    @property
    def demo(self) -> Path:
        return self.home / "demo"

    @property
    def private_folders(self) -> tuple[Path, ...]:
        """The folders of raw and identifiable files, open to the pipeline's user only whatever mode the files in
        them are made with: a trial found staged extracts and quarantined rows readable by every user of the
        machine. Landing and feedback are a charity's (in local mode, its own user may drop and read there);
        releases and publish hold only what is to be published."""
        return (self.archive, self.staging, self.quarantine, self.registry, self.dagster_home)

    def init(self) -> None:
        """Create the workspace, its key and settings if missing; refresh the Dagster instance config."""
        for directory in (
            self.landing,
            self.feedback,
            self.archive,
            self.staging,
            self.quarantine,
            self.releases,
            self.publish,
            self.registry,
            self.dagster_home,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        for directory in self.private_folders:
            directory.chmod(0o700)
        create_key(self.key_path)
        if not self.settings_path.exists() and not self.settings_path.is_symlink():
            self.save_settings(Settings())
        self._write_instance_config()

    @property
    def max_concurrent_runs(self) -> int:
        return self.settings.instance.max_concurrent_runs or os.cpu_count() or 1

    def _write_instance_config(self) -> None:
        """The repository's dagster.yaml, with this workspace's run limit and, if chosen, PostgreSQL storage."""
        config = read_yaml(DAGSTER_YAML)
        config["concurrency"]["runs"]["max_concurrent_runs"] = self.max_concurrent_runs
        if self.settings.instance.database == "postgres":
            # Dagster's PostgreSQL storage, asking sooner for the warehouse pool's slot (pipelines/instance_storage.py).
            config["storage"] = {
                "custom": {
                    "module": "pipelines.instance_storage",
                    "class": "CollabPostgresStorage",
                    "config": {"postgres_url": {"env": POSTGRES_URL_VARIABLE}},
                }
            }
        header = f"# Written by `collab init` from {DAGSTER_YAML} and {self.settings_path}; edit those instead.\n"
        text = header + yaml.safe_dump(config, sort_keys=False)
        target = self.dagster_home / "dagster.yaml"
        # Every run's `workspace` resource calls this: unchanged, the file is left alone, never rewritten under
        # a webserver or daemon reading it.
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")

    def key(self) -> bytes:
        return load_key(self.key_path)

    @cached_property
    def settings(self) -> Settings:
        """The workspace's settings; ``SettingsError`` says in one line per problem what in the file is wrong."""
        return read_settings(self.settings_path)

    def save_settings(self, settings: Settings) -> None:
        self.settings_path.write_text(yaml.safe_dump(settings.model_dump(), sort_keys=False), encoding="utf-8")
        self.__dict__.pop("settings", None)

    def environment(self) -> dict[str, str]:
        """Variables every process of this workspace (Dagster, CLI, tests) runs with."""
        return {"COLLAB_HOME": str(self.home), "DAGSTER_HOME": str(self.dagster_home)}
