"""Access rules from the example federation's policies, expected by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.domain.federation import Federation
from pipelines.access.rules import (
    KeyPair,
    access_rules,
    bucket_rules,
    minio_policies,
    seaweedfs_bucket_policy,
    seaweedfs_identities,
)
from pipelines.config.loader import load_federation
from tests.support.policies import without_metrics

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fed() -> Federation:
    return load_federation(REPO / "sites", REPO / "policies")


def test_coordinator_reads_only_what_each_policy_sends_it(fed) -> None:
    rules = access_rules(fed)
    assert list(rules) == ["clinic-boston", "hospital-berlin", "hospital-paris"]
    # eu-health and us-health both send validation summaries, updates and metrics to an EU
    # coordinator (NL), and feature statistics where updates go (no rule of their own);
    # never data/ or local-models/. The audit chain is readable too.
    for site_id, bucket in [
        ("clinic-boston", "clinic-boston-fl"),
        ("hospital-berlin", "hospital-berlin-fl"),
        ("hospital-paris", "hospital-paris-fl"),
    ]:
        r = rules[site_id]
        assert r.bucket == bucket
        assert r.coordinator_reads == (
            "admission/",
            "audit/",
            "metrics/",
            "stats/",
            "updates/",
            "validation/",
        )
        assert r.no_delete == ("admission/", "audit/", "ledger/")
        assert r.no_marker == ("updates/",)  # retention.object_lock: true


def test_a_policy_without_metrics_drops_the_metrics_read(fed) -> None:
    changed = without_metrics(fed, "eu-health")
    assert bucket_rules(changed, "hospital-berlin").coordinator_reads == (
        "admission/",
        "audit/",
        "stats/",
        "updates/",
        "validation/",
    )
    assert bucket_rules(changed, "clinic-boston").coordinator_reads == (
        "admission/",
        "audit/",
        "metrics/",
        "stats/",
        "updates/",
        "validation/",
    )


def test_seaweedfs_identities_by_hand(fed) -> None:
    r = bucket_rules(fed, "hospital-berlin")
    keys = {
        "site:hospital-berlin": KeyPair("SITEKEY", "site-secret"),
        "coordinator@hospital-berlin": KeyPair("COORDKEY", "coord-secret"),
    }
    assert seaweedfs_identities(r, keys) == [
        {
            "name": "site:hospital-berlin",
            "credentials": [{"accessKey": "SITEKEY", "secretKey": "site-secret"}],
            "actions": [
                "Read:hospital-berlin-fl",
                "Write:hospital-berlin-fl",
                "List:hospital-berlin-fl",
                "Tagging:hospital-berlin-fl",
                "GetObjectRetention:hospital-berlin-fl",
                "PutObjectRetention:hospital-berlin-fl",
                "GetBucketObjectLockConfiguration:hospital-berlin-fl",
            ],
        },
        {
            "name": "coordinator@hospital-berlin",
            "credentials": [{"accessKey": "COORDKEY", "secretKey": "coord-secret"}],
            "actions": [
                "Read:hospital-berlin-fl/admission/*",
                "Read:hospital-berlin-fl/audit/*",
                "Read:hospital-berlin-fl/metrics/*",
                "Read:hospital-berlin-fl/stats/*",
                "Read:hospital-berlin-fl/updates/*",
                "Read:hospital-berlin-fl/validation/*",
            ],
        },
    ]
    # an identity without keys is left out
    assert [
        i["name"]
        for i in seaweedfs_identities(r, {"site:hospital-berlin": keys["site:hospital-berlin"]})
    ] == ["site:hospital-berlin"]


def test_bucket_policy_denies_deletes_under_locked_prefixes(fed) -> None:
    doc = seaweedfs_bucket_policy(bucket_rules(fed, "hospital-paris"))
    assert doc["Statement"] == [
        {
            "Sid": "NoDeleteUnderLockedPrefixes",
            "Effect": "Deny",
            "Principal": "*",
            "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
            "Resource": [
                "arn:aws:s3:::hospital-paris-fl/admission/*",
                "arn:aws:s3:::hospital-paris-fl/audit/*",
                "arn:aws:s3:::hospital-paris-fl/ledger/*",
            ],
        },
        {
            "Sid": "NoDeleteMarkerUnderLockedPrefixes",
            "Effect": "Deny",
            "Principal": "*",
            "Action": ["s3:DeleteObject"],
            "Resource": ["arn:aws:s3:::hospital-paris-fl/updates/*"],
        },
    ]


def test_minio_policies_coordinator_read_only_and_site_denials(fed) -> None:
    docs = minio_policies(bucket_rules(fed, "clinic-boston"))
    assert sorted(docs) == ["clinic-boston-coordinator-read", "clinic-boston-site"]
    coord = docs["clinic-boston-coordinator-read"]["Statement"]
    assert coord == [
        {
            "Sid": "ReadWhatThePolicyAllows",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": [
                "arn:aws:s3:::clinic-boston-fl/admission/*",
                "arn:aws:s3:::clinic-boston-fl/audit/*",
                "arn:aws:s3:::clinic-boston-fl/metrics/*",
                "arn:aws:s3:::clinic-boston-fl/stats/*",
                "arn:aws:s3:::clinic-boston-fl/updates/*",
                "arn:aws:s3:::clinic-boston-fl/validation/*",
            ],
        }
    ]
    site = docs["clinic-boston-site"]["Statement"]
    denies = [s for s in site if s["Effect"] == "Deny"]
    assert [(s["Action"], s["Resource"]) for s in denies] == [
        (
            ["s3:DeleteObject", "s3:DeleteObjectVersion"],
            [
                "arn:aws:s3:::clinic-boston-fl/admission/*",
                "arn:aws:s3:::clinic-boston-fl/audit/*",
                "arn:aws:s3:::clinic-boston-fl/ledger/*",
            ],
        ),
        (["s3:DeleteObject"], ["arn:aws:s3:::clinic-boston-fl/updates/*"]),
    ]
    assert all("Principal" not in s for s in site)  # an IAM (user) policy names no principal
    allowed = {r for s in site if s["Effect"] == "Allow" for r in s["Resource"]}
    assert allowed == {"arn:aws:s3:::clinic-boston-fl", "arn:aws:s3:::clinic-boston-fl/*"}


def test_manifests_write_the_minio_policies_next_to_the_manifests(fed, tmp_path) -> None:
    import json

    from pipelines.cli import main

    out = tmp_path / "manifests"
    args = ["manifests", "--sites", str(REPO / "sites"), "--policies", str(REPO / "policies")]
    assert main([*args, "--out", str(out)]) == 0
    written = sorted(p.name for p in (out / "minio-policies").iterdir())
    assert written == [
        f"{s}-{kind}.json"
        for s in ("clinic-boston", "hospital-berlin", "hospital-paris")
        for kind in ("coordinator-read", "site")
    ]
    doc = json.loads((out / "minio-policies" / "hospital-berlin-coordinator-read.json").read_text())
    assert (
        doc
        == minio_policies(bucket_rules(fed, "hospital-berlin"))["hospital-berlin-coordinator-read"]
    )


def test_secagg_opens_the_public_protocol_prefix_never_the_private_state(fed) -> None:
    from dataclasses import replace

    from components.domain.models import Policy

    policies = {}
    for pid, policy in fed.policies.items():
        body = policy.dict()
        body["aggregation"]["protection"] = "secagg"
        policies[pid] = Policy.parse_obj(body)
    secagg = replace(fed, policies=policies)
    for site_id in secagg.sites:
        reads = bucket_rules(secagg, site_id).coordinator_reads
        assert "secagg/" in reads and "secagg-private/" not in reads
        assert "secagg/" not in bucket_rules(fed, site_id).coordinator_reads
