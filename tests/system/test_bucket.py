"""The S3 landing zone against a real SeaweedFS server, started here on a free loopback port.

Charities are onboarded with the `collab` command as an analyst would; uploads use each charity's
own keys; the landing sensor and the submission assets run unchanged on the S3 landing zone.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError
from dagster import DagsterInstance

from collab import s3
from collab.access import AccessStore
from collab.bucket import free_port
from collab.workspace import Workspace
from tests.conftest import contact_rows, write_csv
from tests.pipeline.test_submissions import process, sense, submission_of, warehouse_rows
from tests.system.commands import collab

pytestmark = pytest.mark.system


@dataclass
class Bucket:
    """A workspace configured for S3, its running server, and two onboarded charities' keys."""

    workspace: Workspace
    store: AccessStore
    endpoint: str
    charities: dict[str, s3.CharityCredentials]

    def client(self, charity: str) -> Any:
        return self.charities[charity].client()

    @property
    def pipeline(self) -> Any:
        return s3.client(self.endpoint, self.store.pipeline)

    @property
    def analyst(self) -> Any:
        return s3.client(self.endpoint, self.store.analyst)


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bucket]:
    workspace = Workspace(tmp_path_factory.mktemp("bucket") / "var")
    workspace.init()
    settings = workspace.settings.model_copy(deep=True)
    settings.intake.settle_seconds = 0
    workspace.save_settings(settings)
    store = AccessStore(workspace)
    state = store.serve(free_port())
    try:
        with pytest.MonkeyPatch.context() as env:
            for name, value in {**workspace.environment(), **store.environment(state.endpoint)}.items():
                env.setenv(name, value)
            charities = {}
            for charity in ("pantry-a", "pantry-b"):
                # Pantries whose files carry no surnames: they do not link records.
                added = collab(
                    workspace.home, "charity", "add", charity, "--name", charity.title(), "--no-linkage", "--json"
                )
                charities[charity] = s3.CharityCredentials(**json.loads(added.stdout))
            yield Bucket(workspace, store, state.endpoint, charities)
    finally:
        store.server.stop(timeout=5)  # cleanup only: `test_server_restart...` covers a clean stop


def denied(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ClientError as error:
        return s3.error_code(error) in {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
    return False


def anonymous(endpoint: str) -> Any:
    config = Config(signature_version=botocore.UNSIGNED, s3={"addressing_style": "path"})
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=config)


def landed_keys(bucket: Bucket, charity: str) -> list[str]:
    listing = bucket.pipeline.list_objects_v2(Bucket=s3.landing_bucket(charity))
    return [item["Key"] for item in listing.get("Contents", [])]


def test_onboarding_prints_the_charitys_keys_once(bucket: Bucket) -> None:
    credentials = bucket.charities["pantry-a"]
    assert set(credentials.to_json()) == {
        "charity_id",
        "endpoint",
        "access_key",
        "secret_key",
        "landing_bucket",
        "feedback_bucket",
    }
    assert credentials.landing_bucket == "landing-pantry-a" and credentials.endpoint == bucket.endpoint
    listed = collab(bucket.workspace.home, "charity", "list").stdout
    assert credentials.secret_key not in listed


ISOLATION_MATRIX = [
    # (what charity A tries, expected to be allowed)
    ("write own landing", True),
    ("read own landing", False),
    ("list own landing", False),
    ("delete own landing", False),
    ("write other landing", False),
    ("list other landing", False),
    ("read own feedback", True),
    ("read other feedback", False),
    ("write own feedback", False),
    ("create a bucket", False),
]


@pytest.mark.parametrize(("action", "allowed"), ISOLATION_MATRIX)
def test_isolation_matrix(bucket: Bucket, action: str, allowed: bool) -> None:
    a = bucket.client("pantry-a")
    bucket.pipeline.put_object(Bucket="landing-pantry-a", Key="kept.csv", Body=b"x")
    bucket.pipeline.put_object(Bucket="landing-pantry-b", Key="kept.csv", Body=b"x")
    for charity in ("pantry-a", "pantry-b"):
        bucket.pipeline.put_object(Bucket=f"feedback-{charity}", Key="report.json", Body=b"{}")
    attempts: dict[str, Callable[[], Any]] = {
        "write own landing": lambda: a.put_object(Bucket="landing-pantry-a", Key="new.csv", Body=b"x"),
        "read own landing": lambda: a.get_object(Bucket="landing-pantry-a", Key="kept.csv")["Body"].read(),
        "list own landing": lambda: a.list_objects_v2(Bucket="landing-pantry-a"),
        "delete own landing": lambda: a.delete_object(Bucket="landing-pantry-a", Key="kept.csv"),
        "write other landing": lambda: a.put_object(Bucket="landing-pantry-b", Key="new.csv", Body=b"x"),
        "list other landing": lambda: a.list_objects_v2(Bucket="landing-pantry-b"),
        "read own feedback": lambda: a.get_object(Bucket="feedback-pantry-a", Key="report.json")["Body"].read(),
        "read other feedback": lambda: a.get_object(Bucket="feedback-pantry-b", Key="report.json")["Body"].read(),
        "write own feedback": lambda: a.put_object(Bucket="feedback-pantry-a", Key="forged.json", Body=b"{}"),
        "create a bucket": lambda: a.create_bucket(Bucket="landing-pantry-c"),
    }
    assert denied(attempts[action]) is not allowed
    assert "kept.csv" in landed_keys(bucket, "pantry-a") and "kept.csv" in landed_keys(bucket, "pantry-b")
    for key in ("kept.csv", "new.csv"):
        for charity in ("pantry-a", "pantry-b"):
            bucket.pipeline.delete_object(Bucket=f"landing-{charity}", Key=key)


def test_batch_delete_cannot_remove_a_landed_file(bucket: Bucket) -> None:
    bucket.pipeline.put_object(Bucket="landing-pantry-b", Key="theirs.csv", Body=b"x")
    bucket.pipeline.put_object(Bucket="landing-pantry-a", Key="mine.csv", Body=b"x")
    a = bucket.client("pantry-a")
    for charity, key in (("pantry-a", "mine.csv"), ("pantry-b", "theirs.csv")):
        try:
            answer = a.delete_objects(Bucket=f"landing-{charity}", Delete={"Objects": [{"Key": key}]})
            assert answer.get("Deleted", []) == []
        except ClientError as error:
            assert s3.error_code(error) == "AccessDenied"
        assert key in landed_keys(bucket, charity)
        bucket.pipeline.delete_object(Bucket=f"landing-{charity}", Key=key)


@pytest.mark.parametrize(
    "attempt",
    [
        lambda c: c.put_object(Bucket="landing-pantry-a", Key="anon.csv", Body=b"x"),
        lambda c: c.get_object(Bucket="feedback-pantry-a", Key="report.json"),
        lambda c: c.list_objects_v2(Bucket="landing-pantry-a"),
        lambda c: c.list_buckets(),
    ],
    ids=["write landing", "read feedback", "list landing", "list buckets"],
)
def test_anonymous_access_is_denied(bucket: Bucket, attempt: Callable[[Any], Any]) -> None:
    bucket.pipeline.put_object(Bucket="feedback-pantry-a", Key="report.json", Body=b"{}")
    assert denied(lambda: attempt(anonymous(bucket.endpoint)))


def feedback_report(bucket: Bucket, charity: str, submission_id: str) -> dict[str, Any]:
    """The feedback report as the charity reads it, with its own keys."""
    client = bucket.client(charity)
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=f"feedback-{charity}").get("Contents", [])]
    assert f"{submission_id}.feedback.html" in " ".join(keys)
    [name] = [key for key in keys if key.endswith(f"--{submission_id}.feedback.json")]
    return json.loads(client.get_object(Bucket=f"feedback-{charity}", Key=name)["Body"].read())


def test_upload_sensor_feedback_round_trip(bucket: Bucket, tmp_path: Path) -> None:
    credentials = tmp_path / "pantry-a.json"
    credentials.write_text(json.dumps(bucket.charities["pantry-a"].to_json()))
    extract = write_csv(tmp_path / "2026 Q1 contacts.csv", contact_rows(40))
    before = warehouse_rows(bucket.workspace)
    uploaded = collab(bucket.workspace.home, "submit", "--credentials", str(credentials), str(extract), "--json")
    assert json.loads(uploaded.stdout)["bucket"] == "landing-pantry-a"
    instance = DagsterInstance.get()  # the workspace's own instance: its event log is checked for secrets below
    [key] = sense(bucket.workspace, instance)
    assert process(bucket.workspace, instance, key).success
    submission_id = submission_of(bucket.workspace, key)
    report = feedback_report(bucket, "pantry-a", submission_id)
    assert report["status"] == "accepted" and report["rows_accepted"] == 40
    assert warehouse_rows(bucket.workspace) == before + 40
    # Archived, not deleted: gone from landing, kept in the pipeline-only archive.
    assert landed_keys(bucket, "pantry-a") == []
    archived = bucket.pipeline.list_objects_v2(Bucket=s3.ARCHIVE_BUCKET, Prefix=f"pantry-a/{submission_id}/")
    assert [item["Key"] for item in archived["Contents"]] == [f"pantry-a/{submission_id}/2026 Q1 contacts.csv"]
    assert sense(bucket.workspace, instance) == []


def test_purge_deletes_every_archived_copy_of_a_submission(bucket: Bucket, tmp_path: Path) -> None:
    # A trial's purge left the duplicate's raw copy (archive/<charity>/duplicates/<stamp>-<id>/) in the bucket.
    a = bucket.client("pantry-a")
    body = write_csv(tmp_path / "purged.csv", contact_rows(10, prefix="PURGE")).read_bytes()
    instance = DagsterInstance.ephemeral()
    a.put_object(Bucket="landing-pantry-a", Key="purged.csv", Body=body)
    [first] = sense(bucket.workspace, instance)
    assert process(bucket.workspace, instance, first).success
    a.put_object(Bucket="landing-pantry-a", Key="purged again.csv", Body=body)
    [again] = sense(bucket.workspace, instance)
    assert process(bucket.workspace, instance, again).success
    submission_id = submission_of(bucket.workspace, first)

    def copies() -> list[str]:
        archived = bucket.pipeline.list_objects_v2(Bucket=s3.ARCHIVE_BUCKET, Prefix="pantry-a/").get("Contents", [])
        return sorted(item["Key"] for item in archived if submission_id in item["Key"])

    assert [key.rsplit("/", 1)[-1] for key in copies()] == ["purged again.csv", "purged.csv"]
    others = bucket.pipeline.list_objects_v2(Bucket=s3.ARCHIVE_BUCKET, Prefix="pantry-a/")["KeyCount"] - 2
    purged = json.loads(collab(bucket.workspace.home, "purge", submission_id, "--json").stdout)
    assert len([path for path in purged["removed"] if path.startswith("s3://")]) == 2
    assert copies() == []
    left = bucket.pipeline.list_objects_v2(Bucket=s3.ARCHIVE_BUCKET, Prefix="pantry-a/").get("KeyCount", 0)
    assert left == others  # another submission's files are not touched


def test_a_key_as_long_as_s3_allows_is_processed_and_archived(bucket: Bucket, tmp_path: Path) -> None:
    # A trial's key near 1,024 bytes could not be archived under the archive's longer prefix: E_INTERNAL every run.
    key = "/".join(["folder-" + "x" * 190] * 4) + "/" + "y" * (1024 - 4 * 198 - len("contacts.csv")) + "contacts.csv"
    assert len(key.encode()) == 1024
    body = write_csv(tmp_path / "long.csv", contact_rows(10, prefix="LONGKEY")).read_bytes()
    bucket.client("pantry-a").put_object(Bucket="landing-pantry-a", Key=key, Body=body)
    instance = DagsterInstance.ephemeral()
    [partition] = sense(bucket.workspace, instance)
    assert process(bucket.workspace, instance, partition).success
    submission_id = submission_of(bucket.workspace, partition)
    report = feedback_report(bucket, "pantry-a", submission_id)
    assert report["status"] in {"accepted", "accepted_with_warnings"} and report["rows_accepted"] == 10, report
    assert key not in landed_keys(bucket, "pantry-a")
    archived = bucket.pipeline.list_objects_v2(Bucket=s3.ARCHIVE_BUCKET, Prefix=f"pantry-a/{submission_id}/")
    [stored] = [item["Key"] for item in archived["Contents"]]
    assert len(stored.encode()) <= 1024 and stored.endswith("contacts.csv")


def test_an_upload_encrypted_with_the_charitys_own_key_is_refused_once_with_a_code(
    bucket: Bucket, tmp_path: Path
) -> None:
    # A trial's SSE-C upload was skipped at every run, the server's words in the log and nothing to the charity.
    body = write_csv(tmp_path / "sealed.csv", contact_rows(10, prefix="SEALED")).read_bytes()
    charity = bucket.client("pantry-a")
    charity.put_object(
        Bucket="landing-pantry-a",
        Key="sealed.csv",
        Body=body,
        SSECustomerAlgorithm="AES256",
        SSECustomerKey=b"k" * 32,
    )
    instance = DagsterInstance.ephemeral()
    [partition] = sense(bucket.workspace, instance)
    assert process(bucket.workspace, instance, partition).success  # refused: the pipeline working, not failing
    assert "sealed.csv" not in landed_keys(bucket, "pantry-a")
    assert sense(bucket.workspace, instance) == []  # once, not at every run
    notices = [
        item["Key"]
        for item in charity.list_objects_v2(Bucket="feedback-pantry-a").get("Contents", [])
        if item["Key"].startswith("refused-") and item["Key"].endswith(".json")
    ]
    said = [json.loads(charity.get_object(Bucket="feedback-pantry-a", Key=key)["Body"].read()) for key in notices]
    [notice] = [n for n in said if n["file_name"] == "sealed.csv"]
    assert notice["code"] == "E_ENCRYPTED_WITH_OWN_KEY" and "without an encryption key" in notice["message"]


def interrupted_put(bucket: Bucket, key: str, *, sent: int, declared: int) -> None:
    """A signed PUT that promises ``declared`` bytes and hangs up after ``sent``: a dropped connection."""
    credentials = bucket.charities["pantry-a"]
    url = f"{bucket.endpoint}/{credentials.landing_bucket}/{urllib.parse.quote(key)}"
    request = AWSRequest(
        method="PUT", url=url, headers={"Content-Length": str(declared), "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    )
    S3SigV4Auth(BotoCredentials(credentials.access_key, credentials.secret_key), "s3", "us-east-1").add_auth(request)
    parsed = urllib.parse.urlsplit(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as connection:
        head = f"PUT {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in request.headers.items() if name.lower() != "host")
        connection.sendall(head.encode() + b"\r\n" + b"P" * sent)


def test_bad_uploads_end_in_feedback_or_are_never_seen(bucket: Bucket, tmp_path: Path) -> None:
    a = bucket.client("pantry-a")
    good = write_csv(tmp_path / "good.csv", contact_rows(40, prefix="U")).read_bytes()
    uploads = {
        "empty.csv": b"",
        "annual-report.pdf": b"%PDF-1.7\n" + b"\0" * 500,
        "photo.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 500,
        "contacts Ünïcode – café.csv": good,
    }
    for name, body in uploads.items():
        a.put_object(Bucket="landing-pantry-a", Key=name, Body=body)
    # Keys the server refuses outright: never in the bucket, so never a submission.
    for refused in ("../escape.csv", "a/../../escape.csv", "x" * 1000 + ".csv"):
        with pytest.raises(ClientError):
            a.put_object(Bucket="landing-pantry-a", Key=refused, Body=good)
    # Uploads interrupted half way: a multipart upload never completed, and a PUT cut off mid-body.
    multipart = a.create_multipart_upload(Bucket="landing-pantry-a", Key="half-multipart.csv")
    a.upload_part(
        Bucket="landing-pantry-a",
        Key="half-multipart.csv",
        UploadId=multipart["UploadId"],
        PartNumber=1,
        Body=b"P" * (5 * 1024 * 1024),
    )
    interrupted_put(bucket, "half-put.csv", sent=64 * 1024, declared=10 * 1024 * 1024)
    a.put_object(Bucket="landing-pantry-a", Key="folder/", Body=b"")  # a folder marker, not a file

    instance = DagsterInstance.ephemeral()
    keys = sense(bucket.workspace, instance)
    assert len(keys) == len(uploads)
    outcomes = {}
    for key in keys:
        result = process(bucket.workspace, instance, key)
        report = feedback_report(bucket, "pantry-a", submission_of(bucket.workspace, key))
        outcomes[report["file_name"]] = (result.success, report["status"], [i["code"] for i in report["issues"]])
    assert outcomes == {  # a rejected file is a successful run: the pipeline did its job
        "empty.csv": (True, "rejected", ["E_EMPTY_FILE"]),
        "annual-report.pdf": (True, "rejected", ["E_UNSUPPORTED_FORMAT"]),
        "photo.png": (True, "rejected", ["E_UNSUPPORTED_FORMAT"]),
        "contacts Ünïcode – café.csv": (True, "accepted", []),
    }
    assert landed_keys(bucket, "pantry-a") == ["folder/"]
    a.abort_multipart_upload(Bucket="landing-pantry-a", Key="half-multipart.csv", UploadId=multipart["UploadId"])
    bucket.pipeline.delete_object(Bucket="landing-pantry-a", Key="folder/")


def test_server_restart_in_the_middle_of_a_run_loses_nothing(bucket: Bucket, tmp_path: Path) -> None:
    a = bucket.client("pantry-a")
    before = warehouse_rows(bucket.workspace)
    # Each file is a whole extract for its own quarter of 2025, so all of them stay in the warehouse.
    quarters = {"restart-1.csv": dt.date(2025, 1, 1), "restart-2.csv": dt.date(2025, 4, 1)}
    for name, start in quarters.items():
        body = write_csv(tmp_path / name, contact_rows(10, start=start, prefix=name[:9])).read_bytes()
        a.put_object(Bucket="landing-pantry-a", Key=name, Body=body)
    instance = DagsterInstance.ephemeral()
    taken = sense(bucket.workspace, instance)
    assert len(taken) == 2
    late = write_csv(tmp_path / "late.csv", contact_rows(5, start=dt.date(2025, 7, 1), prefix="L")).read_bytes()
    a.put_object(Bucket="landing-pantry-a", Key="restart-late.csv", Body=late)

    assert bucket.store.server.stop()
    stopped_run = process(bucket.workspace, instance, taken[0])
    assert not stopped_run.success  # the feedback could not be written: the run fails, nothing is loaded
    assert warehouse_rows(bucket.workspace) == before
    bucket.store.serve()

    keys = sense(bucket.workspace, instance)
    # The stopped submission and the one never run are asked for again (unfinished), with the file that
    # landed before the restart, still there.
    assert set(taken) <= set(keys) and len(set(keys)) == 3
    for key in keys:
        assert process(bucket.workspace, instance, key).success
        assert feedback_report(bucket, "pantry-a", submission_of(bucket.workspace, key))["status"] in {
            "accepted",
            "accepted_with_warnings",
        }
    assert warehouse_rows(bucket.workspace) == before + 10 + 10 + 5
    archived = bucket.pipeline.list_objects_v2(Bucket=s3.ARCHIVE_BUCKET, Prefix="pantry-a/")
    names = {item["Key"].rsplit("/", 1)[-1] for item in archived["Contents"]}
    assert {"restart-1.csv", "restart-2.csv", "restart-late.csv"} <= names


def test_rotate_and_remove_revoke_keys(bucket: Bucket) -> None:
    home = bucket.workspace.home
    old = bucket.charities["pantry-b"]
    rotated = s3.CharityCredentials(**json.loads(collab(home, "charity", "rotate-key", "pantry-b", "--json").stdout))
    assert rotated.access_key != old.access_key
    assert denied(lambda: old.client().put_object(Bucket="landing-pantry-b", Key="old.csv", Body=b"x"))
    rotated.client().put_object(Bucket="landing-pantry-b", Key="new.csv", Body=b"x")
    bucket.charities["pantry-b"] = rotated

    collab(home, "charity", "remove", "pantry-b")
    assert denied(lambda: rotated.client().put_object(Bucket="landing-pantry-b", Key="after.csv", Body=b"x"))
    assert landed_keys(bucket, "pantry-b") == ["new.csv"]  # its data stay until an explicit purge


def test_secrets_stay_out_of_logs_and_dagster(bucket: Bucket) -> None:
    secrets = [c.secret_key for c in bucket.charities.values()]
    secrets += [bucket.store.pipeline.secret_key, bucket.store.analyst.secret_key]
    places = [bucket.store.server.log, *bucket.workspace.dagster_home.rglob("*")]
    for place in places:
        if place.is_file():
            content = place.read_bytes()
            assert not any(secret.encode() in content for secret in secrets), place
    for secret_file in bucket.workspace.secrets.iterdir():
        assert secret_file.stat().st_mode & 0o077 == 0


def test_an_object_replaced_after_it_was_read_is_left_for_the_next_pass(bucket: Bucket, tmp_path: Path) -> None:
    # A trial's charity overwrote its file while the run read it: the archive's copy, conditional on what was read,
    # failed as an error of ours. Replaced between reading and archiving, the new object stays, the old is not kept.
    from collab.landing import LandingObjectGone, landing_zone_from_env

    landing = landing_zone_from_env(bucket.workspace.home)
    charity = bucket.client("pantry-a")
    charity.put_object(Bucket=s3.landing_bucket("pantry-a"), Key="replaced.csv", Body=b"first")
    [listed] = [obj for obj in landing.pending(["pantry-a"]) if obj.key == "replaced.csv"]
    landing.fetch(listed, tmp_path / "read")
    charity.put_object(Bucket=s3.landing_bucket("pantry-a"), Key="replaced.csv", Body=b"second, longer")
    with pytest.raises(LandingObjectGone, match="changed after it was read"):
        landing.archive(listed, "pantry-a-replaced")
    assert "replaced.csv" in landed_keys(bucket, "pantry-a")
    archived = bucket.pipeline.list_objects_v2(Bucket=s3.ARCHIVE_BUCKET, Prefix="pantry-a/pantry-a-replaced/")
    assert archived.get("KeyCount", 0) == 0
    # What was read is archived from the copy read, as intake does (session 37: it was failed as an error of ours).
    landing.archive_copy(listed, "pantry-a-first", tmp_path / "read")
    kept = bucket.pipeline.get_object(Bucket=s3.ARCHIVE_BUCKET, Key="pantry-a/pantry-a-first/replaced.csv")
    assert kept["Body"].read() == b"first" and "replaced.csv" in landed_keys(bucket, "pantry-a")
    [relisted] = [obj for obj in landing.pending(["pantry-a"]) if obj.key == "replaced.csv"]
    landing.archive(relisted, "pantry-a-replaced")
    assert "replaced.csv" not in landed_keys(bucket, "pantry-a")
