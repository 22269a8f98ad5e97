"""Object-store access rules generated from the sites and their policies (pure, no I/O).

The compiler refuses a DAG that sends an artifact where its site's policy does not allow it;
these rules make each site's object store refuse the same reads, so a leak needs two
independent failures. One function, `access_rules`, turns a federation into per-identity
permissions on each site's bucket; `seaweedfs_identities` / `seaweedfs_bucket_policy` render
them for the local SeaweedFS servers and `minio_policies` for production MinIO (IAM JSON).

A site bucket's layout (`BUCKET_LAYOUT`): each top-level prefix holds one kind of object.

| prefix | holds | class |
|---|---|---|
| `data/` | the site's training and holdout files | raw_data |
| `local-models/` | train's local model (stash) | local_model |
| `updates/` | export's signed DP updates | dp_update |
| `validation/` | validation summaries | validation_summary |
| `metrics/` | evaluation metrics | metrics |
| `stats/` | DP-noised feature statistics (federated_zscore) | feature_stats |
| `secagg/` | SecAgg+ advertisements, sealed shares, masked updates, answers (secagg only) | secagg_public |
| `secagg-private/` | the site's SecAgg+ round state: private keys, seeds, held shares (site only) | - |
| `ledger/` | the privacy ledger (site only) | - |
| `audit/` | the site's signed audit chain | - |
| `admission/` | the site's own policy copy and its signed admission records | - |
| `he/` | the federation's CKKS context with the secret key (protection he; site only) | - |

Identities per site bucket:
* `site:<id>`: the site's own tasks. Reads, lists and writes its own bucket, nothing else.
* `coordinator@<id>`: the coordinator's read-only identity for that bucket. It may read
  (GET/HEAD, no listing) exactly the class prefixes whose class the site's policy lets
  reach the coordinator, plus the audit chain and the admission records (hashes, decisions
  and signatures, no data), which aggregate checks before it uses an update. Never `data/` or `local-models/` (raw data and local
  models may go nowhere), never a write.
* Deletes: nobody may delete (no delete markers, no version removal) under `ledger/`,
  `audit/` and `admission/`, nor under `updates/` when the policy sets `retention.object_lock`. The one
  exception is export removing its own unfinished version (`DeleteObjectVersion` on
  `updates/`) before it sets the COMPLIANCE retention that then protects it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.domain.artifact_classes import ArtifactClass
from components.domain.federation import Federation

BUCKET_LAYOUT: dict[str, ArtifactClass | None] = {
    "data/": ArtifactClass.RAW_DATA,
    "local-models/": ArtifactClass.LOCAL_MODEL,
    "updates/": ArtifactClass.DP_UPDATE,
    "validation/": ArtifactClass.VALIDATION_SUMMARY,
    "metrics/": ArtifactClass.METRICS,
    "stats/": ArtifactClass.FEATURE_STATS,
    "secagg/": ArtifactClass.SECAGG_PUBLIC,
    "secagg-private/": None,
    "ledger/": None,
    "audit/": None,
    "admission/": None,
    "he/": None,  # the CKKS secret key: never readable by the coordinator
}
"""Top-level prefix of a site bucket -> the artifact class stored there (None: site records)."""

ADMISSION_PREFIX = "admission/"
AUDIT_PREFIX = "audit/"
LEDGER_PREFIX = "ledger/"
UPDATES_PREFIX = "updates/"
SECAGG_PREFIX = "secagg/"


def site_identity(site_id: str) -> str:
    """Name of the identity the site's own tasks use on its bucket."""
    return f"site:{site_id}"


def coordinator_identity(site_id: str) -> str:
    """Name of the coordinator's read-only identity on `site_id`'s bucket."""
    return f"coordinator@{site_id}"


@dataclass(frozen=True)
class BucketRules:
    """Who may do what in one site's bucket."""

    site_id: str
    bucket: str
    coordinator_reads: tuple[str, ...]  # prefixes the coordinator may GET/HEAD, sorted
    no_delete: tuple[str, ...]  # prefixes where nobody may delete (markers or versions), sorted
    no_marker: tuple[str, ...]  # prefixes where only DeleteObjectVersion stays possible, sorted

    @property
    def site_identity(self) -> str:
        return site_identity(self.site_id)

    @property
    def coordinator_identity(self) -> str:
        return coordinator_identity(self.site_id)


def bucket_rules(federation: Federation, site_id: str) -> BucketRules:
    """The rules of one member site's bucket, from its own policy (see the module doc)."""
    from pipelines.residency.standard import allowed_destinations

    site = federation.sites[site_id]
    policy = federation.policy_of(site_id)
    coordinator = federation.coordinator.id
    from pipelines.residency.protection import federation_protection_of

    secagg = federation_protection_of(federation) == "secagg"
    reads = [
        prefix
        for prefix, cls in BUCKET_LAYOUT.items()
        if cls is not None
        and (secagg or prefix != SECAGG_PREFIX)  # only a secagg federation has secagg/
        and any(
            d.destination == coordinator for d in allowed_destinations(federation, site_id, cls)
        )
    ]
    reads += [AUDIT_PREFIX, ADMISSION_PREFIX]
    no_delete = [LEDGER_PREFIX, AUDIT_PREFIX, ADMISSION_PREFIX]
    no_marker: list[str] = []
    if policy.retention.object_lock:
        no_marker.append(UPDATES_PREFIX)
    return BucketRules(
        site_id=site_id,
        bucket=site.object_store.bucket,
        coordinator_reads=tuple(sorted(reads)),
        no_delete=tuple(sorted(no_delete)),
        no_marker=tuple(sorted(no_marker)),
    )


def access_rules(federation: Federation) -> dict[str, BucketRules]:
    """{site id: BucketRules} for every member site with an S3 bucket, by id."""
    return {
        sid: bucket_rules(federation, sid)
        for sid, site in sorted(federation.sites.items())
        if site.object_store.type == "s3"
    }


# ---- SeaweedFS (local runs and tests) ------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    access_key: str
    secret_key: str


def seaweedfs_identities(rules: BucketRules, keys: Mapping[str, KeyPair]) -> list[dict[str, Any]]:
    """SeaweedFS identities (`-s3.config` entries) for one bucket's rules.

    `keys` maps identity names (`site_identity`, `coordinator_identity`) to key pairs; an
    identity without keys is left out. SeaweedFS actions are `Action:bucket` (whole bucket)
    or `Action:bucket/prefix*` (keys under a prefix); Write covers put and delete, whose
    limits are in `seaweedfs_bucket_policy`."""
    out: list[dict[str, Any]] = []
    grants = {
        rules.site_identity: [
            f"Read:{rules.bucket}",
            f"Write:{rules.bucket}",
            f"List:{rules.bucket}",
            f"Tagging:{rules.bucket}",
            f"GetObjectRetention:{rules.bucket}",
            f"PutObjectRetention:{rules.bucket}",
            f"GetBucketObjectLockConfiguration:{rules.bucket}",
        ],
        rules.coordinator_identity: [f"Read:{rules.bucket}/{p}*" for p in rules.coordinator_reads],
    }
    for name, actions in grants.items():
        pair = keys.get(name)
        if pair is None:
            continue
        out.append(
            {
                "name": name,
                "credentials": [{"accessKey": pair.access_key, "secretKey": pair.secret_key}],
                "actions": actions,
            }
        )
    return out


def _deny_deletes(rules: BucketRules, principal: Any) -> list[dict[str, Any]]:
    arn = f"arn:aws:s3:::{rules.bucket}"
    out = []
    if rules.no_delete:
        out.append(
            {
                "Sid": "NoDeleteUnderLockedPrefixes",
                "Effect": "Deny",
                "Principal": principal,
                "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
                "Resource": [f"{arn}/{p}*" for p in rules.no_delete],
            }
        )
    if rules.no_marker:
        out.append(
            {
                "Sid": "NoDeleteMarkerUnderLockedPrefixes",
                "Effect": "Deny",
                "Principal": principal,
                "Action": ["s3:DeleteObject"],
                "Resource": [f"{arn}/{p}*" for p in rules.no_marker],
            }
        )
    return out


def seaweedfs_bucket_policy(rules: BucketRules) -> dict[str, Any]:
    """The bucket policy that refuses deletes under the locked prefixes to every identity
    (SeaweedFS applies an explicit Deny even to its administrator)."""
    return {"Version": "2012-10-17", "Statement": _deny_deletes(rules, "*")}


# ---- MinIO (production) -------------------------------------------------------------------


def minio_policies(rules: BucketRules) -> dict[str, dict[str, Any]]:
    """MinIO IAM policies (JSON documents) for one site bucket, by policy name:

    `<site>-site`: read, list and write the site's own bucket, with the delete denials;
    `<site>-coordinator-read`: GET (no listing) on exactly the prefixes the policy allows.
    Attach them to the site's user and to the coordinator's read-only user of that MinIO
    (`mc admin policy create` / `mc admin policy attach`, see the README)."""
    arn = f"arn:aws:s3:::{rules.bucket}"
    site_doc = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OwnBucket",
                "Effect": "Allow",
                "Action": [
                    "s3:ListBucket",
                    "s3:ListBucketVersions",
                    "s3:GetBucketObjectLockConfiguration",
                    "s3:GetBucketLocation",
                ],
                "Resource": [arn],
            },
            {
                "Sid": "OwnObjects",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:GetObjectVersion",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:DeleteObjectVersion",
                    "s3:GetObjectRetention",
                    "s3:PutObjectRetention",
                    "s3:GetObjectTagging",
                    "s3:PutObjectTagging",
                ],
                "Resource": [f"{arn}/*"],
            },
            *[{k: v for k, v in s.items() if k != "Principal"} for s in _deny_deletes(rules, None)],
        ],
    }
    coordinator_doc = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadWhatThePolicyAllows",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                "Resource": [f"{arn}/{p}*" for p in rules.coordinator_reads],
            }
        ],
    }
    return {f"{rules.site_id}-site": site_doc, f"{rules.site_id}-coordinator-read": coordinator_doc}


MINIO_POLICY_DIR = "minio-policies"


def minio_policy_files(federation: Federation) -> dict[str, str]:
    """{`minio-policies/<name>.json`: JSON text} for every member site's MinIO (see README,
    "Object-store access rules"), written by `fedpipe manifests` next to the manifests."""
    import json

    out: dict[str, str] = {}
    for rules in access_rules(federation).values():
        for name, doc in minio_policies(rules).items():
            out[f"{MINIO_POLICY_DIR}/{name}.json"] = json.dumps(doc, indent=2) + "\n"
    return out
