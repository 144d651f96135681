"""Who may do what on the S3 server: credentials, and the identities SeaweedFS enforces.

Three kinds of identity, generated from the charity registry into ``secrets/s3-identities.json``:

- ``collab-analyst``: administrator (creates buckets); its keys are the analyst's to keep.
- ``collab-pipeline``: reads, lists and removes objects in ``landing-*``, writes ``feedback-*``,
  owns ``collab-archive``. It cannot create or delete buckets.
- ``charity-<id>``: an IAM policy that allows putting objects into ``landing-<id>`` (multipart
  included) and reading and listing ``feedback-<id>``, nothing else: no reading or deleting what it
  landed, no other charity's buckets. A removed charity keeps a disabled identity without keys,
  because SeaweedFS keeps identities that vanish from the file until it restarts.

All credentials live in ``secrets/s3-credentials.json`` (0600, never in git, logs or Dagster). The
running server re-reads its identities on SIGHUP; each change waits until the server enforces it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError

from collab import s3
from collab.bucket import BucketServer, ServerState
from collab.landing import S3LandingZone
from collab.registry import Registry
from collab.workspace import Workspace

ANALYST = "collab-analyst"
PIPELINE = "collab-pipeline"
_APPLY_TIMEOUT_SECONDS = 20.0


class AccessError(Exception):
    """A credentials change that could not be made or did not take effect."""


def _charity_identity(charity_id: str) -> str:
    return f"charity-{charity_id}"


def charity_policy(charity_id: str) -> dict[str, Any]:
    """The charity's IAM policy: put into its landing bucket, read its feedback, nothing else."""
    landing, feedback = s3.landing_bucket(charity_id), s3.feedback_bucket(charity_id)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                "Resource": [f"arn:aws:s3:::{landing}/*"],
            },
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{feedback}/*"]},
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{feedback}"]},
        ],
    }


PIPELINE_ACTIONS = [
    "Read:landing-*",
    "List:landing-*",
    "Write:landing-*",  # removing an object once it is archived
    "Write:feedback-*",
    f"Read:{s3.ARCHIVE_BUCKET}",
    f"List:{s3.ARCHIVE_BUCKET}",
    f"Write:{s3.ARCHIVE_BUCKET}",
]


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a file only its owner can read (0600, in a 0700 folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    partial.replace(path)


class AccessStore:
    """The S3 credentials of one workspace, and the identities file generated from them."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.path = workspace.secrets / "s3-credentials.json"
        self.env_path = workspace.secrets / "s3.env"
        self.server = BucketServer(workspace)

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"services": {}, "charities": {}}
        return json.loads(self.path.read_text(encoding="utf-8"))

    def _save(self, data: dict[str, Any]) -> None:
        write_private(self.path, json.dumps(data, indent=2))

    def _service(self, name: str) -> s3.Credentials:
        data = self._load()
        if name not in data["services"]:
            data["services"][name] = vars(s3.Credentials.generate())
            self._save(data)
        return s3.Credentials(**data["services"][name])

    @property
    def analyst(self) -> s3.Credentials:
        return self._service(ANALYST)

    @property
    def pipeline(self) -> s3.Credentials:
        return self._service(PIPELINE)

    def charity(self, charity_id: str) -> s3.Credentials | None:
        stored = self._load()["charities"].get(charity_id)
        return s3.Credentials(**stored) if stored else None

    def identities(self) -> dict[str, Any]:
        """The SeaweedFS identities configuration for the registry as it stands."""
        analyst, pipeline = self.analyst, self.pipeline
        data = self._load()
        identities: list[dict[str, Any]] = [
            {"name": ANALYST, "credentials": [_keys(analyst)], "actions": ["Admin"]},
            {"name": PIPELINE, "credentials": [_keys(pipeline)], "actions": PIPELINE_ACTIONS},
        ]
        policies = []
        for charity in Registry(self.workspace).all(include_inactive=True):
            name = _charity_identity(charity.id)
            stored = data["charities"].get(charity.id)
            if charity.active and stored:
                identities.append(
                    {"name": name, "credentials": [_keys(s3.Credentials(**stored))], "policyNames": [name]}
                )
                policies.append({"name": name, "content": json.dumps(charity_policy(charity.id))})
            else:
                identities.append({"name": name, "credentials": [], "disabled": True})
        return {"identities": identities, "policies": policies}

    def environment(self, endpoint: str) -> dict[str, str]:
        """The variables that point the pipeline and the CLI at the S3 landing zone."""
        analyst, pipeline = self.analyst, self.pipeline
        return {
            s3.ENDPOINT_VAR: endpoint,
            s3.PIPELINE_ACCESS_KEY_VAR: pipeline.access_key,
            s3.PIPELINE_SECRET_KEY_VAR: pipeline.secret_key,
            s3.ANALYST_ACCESS_KEY_VAR: analyst.access_key,
            s3.ANALYST_SECRET_KEY_VAR: analyst.secret_key,
        }

    def landing_zone(self, endpoint: str) -> S3LandingZone:
        analyst, pipeline = self.analyst, self.pipeline
        return S3LandingZone(
            endpoint=endpoint,
            access_key=pipeline.access_key,
            secret_key=pipeline.secret_key,
            analyst_access_key=analyst.access_key,
            analyst_secret_key=analyst.secret_key,
        )

    def write_identities(self) -> None:
        write_private(self.server.identities_path, json.dumps(self.identities(), indent=2))

    def serve(self, port: int | None = None) -> ServerState:
        """Start the server (if it is not running) and create every active charity's buckets."""
        self.write_identities()
        state = self.server.start(port)
        env = "".join(f"export {name}={value}\n" for name, value in self.environment(state.endpoint).items())
        write_private(self.env_path, env)
        landing = self.landing_zone(state.endpoint)
        charities = [c.id for c in Registry(self.workspace).all()]
        # The gateway answers a moment before the filer and volume server accept writes.
        _retry(lambda: landing.create_buckets([s3.ARCHIVE_BUCKET]))
        for charity_id in charities:
            landing.create_area(charity_id)
        return state

    def issue(self, charity_id: str, endpoint: str) -> s3.CharityCredentials:
        """New keys for a charity (onboarding or rotation); the previous keys stop working."""
        previous = self.charity(charity_id)
        credentials = s3.Credentials.generate()
        data = self._load()
        data["charities"][charity_id] = vars(credentials)
        self._save(data)
        self._apply(endpoint, accepted=[(charity_id, credentials)], refused=[previous] if previous else [])
        return s3.CharityCredentials.for_charity(charity_id, endpoint, credentials)

    def revoke(self, charity_id: str, endpoint: str) -> None:
        """Withdraw a charity's keys (after it is deactivated in the registry). Its data stay."""
        data = self._load()
        stored = data["charities"].pop(charity_id, None)
        self._save(data)
        self._apply(endpoint, accepted=[], refused=[s3.Credentials(**stored)] if stored else [])

    def _apply(
        self, endpoint: str, *, accepted: list[tuple[str, s3.Credentials]], refused: list[s3.Credentials]
    ) -> None:
        """Write the identities, have the running server reload them, and wait until it enforces them."""
        self.write_identities()
        if not self.server.reload():
            return  # takes effect when the server starts
        deadline = time.monotonic() + _APPLY_TIMEOUT_SECONDS
        pending = [("accept", charity_id, c) for charity_id, c in accepted] + [("refuse", "", c) for c in refused]
        while pending and time.monotonic() < deadline:
            pending = [check for check in pending if not _in_force(endpoint, *check)]
            if pending:
                time.sleep(0.2)
        if pending:
            raise AccessError(
                "the S3 server did not apply the new identities; restart it with `collab bucket stop` and `collab bucket serve`"
            )


def _keys(credentials: s3.Credentials) -> dict[str, str]:
    return {"accessKey": credentials.access_key, "secretKey": credentials.secret_key}


def _in_force(endpoint: str, expectation: str, charity_id: str, credentials: s3.Credentials) -> bool:
    """Whether the server already accepts (or refuses) these keys."""
    client = s3.client(endpoint, credentials)
    try:
        if expectation == "accept":
            client.list_objects_v2(Bucket=s3.feedback_bucket(charity_id), MaxKeys=1)
            return True
        client.list_buckets()
        return False
    except ClientError as error:
        return expectation == "refuse" and s3.error_code(error) in {"InvalidAccessKeyId", "SignatureDoesNotMatch"}


def _retry(action: Callable[[], None], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            action()
            return
        except (ClientError, EndpointConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
