"""S3 as the collaborative uses it: bucket names, clients, configuration from the environment, uploads.

Each charity has two buckets: ``landing-<id>`` (it may only put objects there) and ``feedback-<id>``
(it may only read there). Landed files move to the pipeline-only ``collab-archive`` bucket once taken
into staging. The S3 landing zone is chosen by setting ``COLLAB_S3_ENDPOINT``; the pipeline's and the
analyst's credentials come from the variables below, never from files in git or from Dagster config.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

ENDPOINT_VAR = "COLLAB_S3_ENDPOINT"
PIPELINE_ACCESS_KEY_VAR = "COLLAB_S3_PIPELINE_ACCESS_KEY"
PIPELINE_SECRET_KEY_VAR = "COLLAB_S3_PIPELINE_SECRET_KEY"
ANALYST_ACCESS_KEY_VAR = "COLLAB_S3_ANALYST_ACCESS_KEY"
ANALYST_SECRET_KEY_VAR = "COLLAB_S3_ANALYST_SECRET_KEY"

ARCHIVE_BUCKET = "collab-archive"
# boto3 (half a second of imports) is imported by what talks to the server, not by every command that asks whether
# the workspace uses S3 (``configured``).


@lru_cache(maxsize=1)
def transfer() -> Any:
    """How uploads go: multipart above 16 MiB, in 16 MiB parts, so a 500 MB upload holds a few parts in memory,
    never the file."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=16 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024, max_concurrency=4)


def landing_bucket(charity_id: str) -> str:
    return f"landing-{charity_id}"


def feedback_bucket(charity_id: str) -> str:
    return f"feedback-{charity_id}"


def configured() -> bool:
    """Whether this process is configured for the S3 landing zone (``COLLAB_S3_ENDPOINT`` is set)."""
    return bool(os.environ.get(ENDPOINT_VAR))


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str

    @classmethod
    def generate(cls) -> Credentials:
        alphabet = string.ascii_uppercase + string.digits
        return cls(
            access_key="".join(secrets.choice(alphabet) for _ in range(20)),
            secret_key=secrets.token_urlsafe(30),
        )

    def __repr__(self) -> str:  # never print a secret by accident
        return f"Credentials(access_key={self.access_key!r}, secret_key='***')"


@dataclass(frozen=True)
class CharityCredentials:
    """What a charity receives once at onboarding (and after each key rotation), as JSON."""

    charity_id: str
    endpoint: str
    access_key: str
    secret_key: str
    landing_bucket: str
    feedback_bucket: str

    @classmethod
    def for_charity(cls, charity_id: str, endpoint: str, credentials: Credentials) -> CharityCredentials:
        return cls(
            charity_id=charity_id,
            endpoint=endpoint,
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            landing_bucket=landing_bucket(charity_id),
            feedback_bucket=feedback_bucket(charity_id),
        )

    @classmethod
    def load(cls, path: Path) -> CharityCredentials:
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as error:
            raise ValueError(f"{path} is not a credentials file from `collab charity add --json`: {error}") from error

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    def client(self) -> Any:
        return client(self.endpoint, Credentials(self.access_key, self.secret_key))

    def __repr__(self) -> str:
        return f"CharityCredentials(charity_id={self.charity_id!r}, endpoint={self.endpoint!r}, secret_key='***')"


@lru_cache(maxsize=16)
def client(endpoint: str, credentials: Credentials) -> Any:
    """A boto3 S3 client for one endpoint and identity (path-style addressing, SigV4; thread-safe, cached)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        region_name="us-east-1",
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=120,
        ),
    )


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def upload(
    credentials: CharityCredentials, path: Path, key: str, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Stream a file into the charity's landing bucket with its own keys, as ``key``.

    Large files go up in parts; an interrupted upload is aborted and never appears as an object.
    """
    credentials.client().upload_file(str(path), credentials.landing_bucket, key, Config=transfer(), Callback=progress)
    return {"charity_id": credentials.charity_id, "bucket": credentials.landing_bucket, "key": key}
