"""The identities the S3 server enforces, generated from the registry (no server needed)."""

from __future__ import annotations

import json

from collab.access import AccessStore, charity_policy
from collab.registry import Registry
from collab.workspace import Workspace


def test_identities_follow_the_registry(workspace: Workspace) -> None:
    registry = Registry(workspace)
    store = AccessStore(workspace)
    for charity in ("pantry-a", "pantry-b"):
        registry.add(charity, charity)
    store._save({"services": {}, "charities": {"pantry-a": {"access_key": "AKEYA", "secret_key": "secret-a"}}})
    registry.deactivate("pantry-b")
    store.write_identities()

    identities = json.loads(store.server.identities_path.read_text())
    by_name = {identity["name"]: identity for identity in identities["identities"]}
    assert by_name["collab-analyst"]["actions"] == ["Admin"]
    assert "Admin" not in by_name["collab-pipeline"]["actions"]
    assert by_name["charity-pantry-a"]["credentials"] == [{"accessKey": "AKEYA", "secretKey": "secret-a"}]
    assert by_name["charity-pantry-a"]["policyNames"] == ["charity-pantry-a"]
    assert by_name["charity-pantry-b"] == {"name": "charity-pantry-b", "credentials": [], "disabled": True}
    [policy] = identities["policies"]
    assert json.loads(policy["content"]) == charity_policy("pantry-a")
    for path in (store.path, store.server.identities_path):
        assert path.stat().st_mode & 0o777 == 0o600


def test_a_charity_may_put_into_its_landing_bucket_and_read_its_feedback_only() -> None:
    statements = charity_policy("pantry-a")["Statement"]
    granted = {(action, resource) for s in statements for action in s["Action"] for resource in s["Resource"]}
    assert all(s["Effect"] == "Allow" for s in statements)
    assert granted == {
        ("s3:PutObject", "arn:aws:s3:::landing-pantry-a/*"),
        ("s3:AbortMultipartUpload", "arn:aws:s3:::landing-pantry-a/*"),
        ("s3:ListMultipartUploadParts", "arn:aws:s3:::landing-pantry-a/*"),
        ("s3:GetObject", "arn:aws:s3:::feedback-pantry-a/*"),
        ("s3:ListBucket", "arn:aws:s3:::feedback-pantry-a"),
    }
