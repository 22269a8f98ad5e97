"""Test federation for the coordinator side: sites with fresh Ed25519 keys, policies, and
updates written to real buckets exactly as the export stage writes them."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from components.audit.events import admission_key
from components.audit.records import Record
from components.audit.store import ChainWriter, S3Store, record_key
from components.common.manifest import (
    UpdateManifest,
    generate_keypair,
    sign_manifest,
    update_object_key,
)
from components.common.tensors import dump_tensors
from components.domain.canonical import canonical_json, policy_digest, sha256_hex
from components.domain.models import Policy, Site

TIME = "2026-12-06T00:00:00Z"


def make_policy(
    policy_id: str = "eu-health",
    *,
    min_sites: int = 2,
    epsilon_per_round: float = 3.0,
    allow_dp_off: bool = False,
    dp_update: list[dict[str, Any]] | None = None,
    quarantine_after: int | None = None,
) -> Policy:
    rules = (
        [{"roles": ["coordinator"], "jurisdictions": ["EU"]}] if dp_update is None else dp_update
    )
    return Policy.parse_obj(
        {
            "apiVersion": "fedpipe.dev/v1",
            "kind": "ResidencyPolicy",
            "id": policy_id,
            "description": "test policy",
            "rules": {"dp_update": rules, "metrics": rules},
            "dp": {
                "epsilon_per_round": epsilon_per_round,
                "lifetime_epsilon": 50.0,
                "delta": 1e-5,
                "allow_dp_off": allow_dp_off,
            },
            "aggregation": {"min_sites": min_sites, "quarantine_after": quarantine_after},
            "encryption": {"at_rest": "sse-s3"},
            "retention": {"days": 1, "object_lock": False},
        }
    )


def make_site(
    site_id: str,
    public_pem: str,
    *,
    bucket: str,
    endpoint: str,
    policy: str = "eu-health",
    secure: bool = False,
) -> Site:
    return Site.parse_obj(
        {
            "apiVersion": "fedpipe.dev/v1",
            "kind": "Site",
            "id": site_id,
            "role": "site",
            "deployment": "on-prem",
            "provider": "on-prem",
            "region": "de-berlin",
            "jurisdiction": "DE",
            "policy": policy,
            "placement": {"node_selector": {"fedpipe.dev/site": site_id}},
            "data": {
                "contract": "digits",
                "uri": f"s3://{bucket}/data/train.csv",
                "holdout_uri": f"s3://{bucket}/data/holdout.csv",
                "snapshot": "s1",
            },
            "object_store": {
                "type": "s3",
                "endpoint": endpoint,
                "bucket": bucket,
                "secret_name": f"{site_id}-store",
                "secure": secure,
            },
            "signing": {"public_key": public_pem},
        }
    )


def make_coordinator(
    bucket: str, *, jurisdiction: str = "NL", region: str = "europe-west4"
) -> Site:
    return Site.parse_obj(
        {
            "apiVersion": "fedpipe.dev/v1",
            "kind": "Site",
            "id": "coordinator",
            "role": "coordinator",
            "deployment": "cloud",
            "provider": "gcp",
            "region": region,
            "jurisdiction": jurisdiction,
            "policy": "coordinator",
            "placement": {"node_selector": {"fedpipe.dev/site": "coordinator"}},
            "object_store": {"type": "gcs", "bucket": bucket, "secret_name": "coordinator-store"},
        }
    )


def unique(prefix: str) -> str:
    """A bucket-safe unique name (the servers live for the whole session)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def global_tensors() -> dict[str, np.ndarray]:
    """A small two-layer model's tensors (12 + 3 + 6 + 2 = 23 parameters)."""
    rng = np.random.default_rng(7)
    return {
        "hidden/kernel": rng.normal(size=(4, 3)).astype(np.float32),
        "hidden/bias": np.zeros(3, np.float32),
        "output/kernel": rng.normal(size=(3, 2)).astype(np.float32),
        "output/bias": np.zeros(2, np.float32),
    }


def constant_update(value: float) -> dict[str, np.ndarray]:
    """An update with every entry equal to `value` (shapes of `global_tensors`)."""
    return {k: np.full(v.shape, value, np.float32) for k, v in global_tensors().items()}


@dataclass
class SiteKit:
    """A site with its key pair and policy."""

    site: Site
    policy: Policy
    private_pem: str

    @property
    def id(self) -> str:
        return self.site.id


def new_site(
    site_id: str, *, endpoint: str, policy: Policy | None = None, secure: bool = False
) -> SiteKit:
    private_pem, public_pem = generate_keypair()
    policy = policy or make_policy()
    site = make_site(
        site_id,
        public_pem,
        bucket=unique(site_id),
        endpoint=endpoint,
        policy=policy.id,
        secure=secure,
    )
    return SiteKit(site, policy, private_pem)


def signed_update(
    kit: SiteKit,
    tensors: dict[str, np.ndarray],
    *,
    run_id: str,
    round_index: int,
    epsilon: float | None = 1.0,
    num_examples: int | None = None,
    signing_pem: str | None = None,
    raw_npz: bytes | None = None,
    **overrides: Any,
) -> tuple[bytes, bytes]:
    """(npz bytes, signed manifest JSON) as export writes them; overrides change manifest fields.

    raw_npz: bytes to store instead of `dump_tensors(tensors)` (e.g. a float64 file).
    The manifest's `extra.global_version` is round_index - 1 (the round's starting version)
    unless `extra` is overridden.
    """
    npz = raw_npz if raw_npz is not None else dump_tensors(tensors)
    manifest = UpdateManifest(
        run_id=run_id,
        round=round_index,
        site_id=kit.id,
        content_sha256=sha256_hex(npz),
        tensor_names=sorted(tensors),
        dp={"noise_multiplier": 1.1, "l2_norm_clip": 1.0},
        epsilon=epsilon,
        epsilon_pld=epsilon * 0.9 if isinstance(epsilon, float | int) else None,
        delta=1e-5,
        num_examples=num_examples,
        policy_digest=policy_digest(kit.policy),
        extra={"global_version": round_index - 1},
    )
    manifest = replace(manifest, **overrides)
    signed = sign_manifest(manifest, signing_pem or kit.private_pem)
    return npz, signed.to_json()


def npz_float64(tensors: dict[str, np.ndarray]) -> bytes:
    """An .npz with float64 tensors (dump_tensors would cast to float32)."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v, np.float64) for k, v in sorted(tensors.items())})
    return buf.getvalue()


def put_update(
    minio, kit: SiteKit, npz: bytes, manifest: bytes, *, key: str, ensure_bucket: bool = True
) -> None:
    """Write `<key>.npz` and `<key>.manifest.json` into the site's bucket."""
    bucket = kit.site.object_store.bucket
    if ensure_bucket and not minio.bucket_exists(bucket):
        minio.make_bucket(bucket)
    for suffix, data in ((".npz", npz), (".manifest.json", manifest)):
        minio.put_object(bucket, key + suffix, io.BytesIO(data), len(data))


def write_ref(folder: Path, ref: dict[str, Any]) -> str:
    """An export `update` artifact folder holding ref.json; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ref.json").write_text(json.dumps(ref))
    return str(folder)


def admit(
    minio,
    kit: SiteKit,
    run_id: str,
    *,
    decision: str = "accept",
    reasons: tuple[str, ...] = (),
    rule: str | None = None,
    signing_pem: str | None = None,
) -> Record:
    """The site's signed admission record for `run_id`: appended to its audit chain and
    stored under its fixed key, as validate writes it (kept when one is there already)."""
    bucket = kit.site.object_store.bucket
    if not minio.bucket_exists(bucket):
        minio.make_bucket(bucket)
    digest = policy_digest(kit.policy)
    key = admission_key(run_id, kit.id, digest)
    store = S3Store(minio, bucket)
    if store.keys(key):
        return Record.from_json(store.get(key))
    body = {
        "round": 0,
        "site": kit.id,
        "run_id": run_id,
        "policy_digest": digest,
        "decision": decision,
        "reasons": list(reasons),
        "checked": {"run_id": run_id, "rule": rule},
        "summary": f"{kit.id} {decision}",
    }
    writer = ChainWriter(
        store, run_id, f"site/{kit.id}", signing_pem or kit.private_pem, lambda: TIME
    )
    record = writer.append("admission", body)
    store.put_new(key, record.to_json())
    return record


def audit_export(minio, kit: SiteKit, run_id: str, round_index: int, npz: bytes) -> dict:
    """Append the export record to the site's chain (as export does); the ref.json pointer."""
    store = S3Store(minio, kit.site.object_store.bucket)
    chain = f"site/{kit.id}"
    writer = ChainWriter(store, run_id, chain, kit.private_pem, lambda: TIME)
    record = writer.append(
        "export", {"round": round_index, "content_sha256": sha256_hex(npz), "summary": "update"}
    )
    return {"key": record_key(run_id, chain, record.seq), "hash": record.hash}


def export(
    minio,
    kit: SiteKit,
    tensors: dict[str, np.ndarray],
    folder: Path,
    *,
    run_id: str,
    round_index: int,
    key_round: int | None = None,
    key_run: str | None = None,
    admitted: bool = True,
    audited: bool = False,
    **signed_kwargs: Any,
) -> str:
    """Sign and store an update at the key of (key_run or run, key_round or round); write the
    ref.json folder; return the folder path (what the aggregate executor receives).
    `admitted`: also write the site's accepted admission of the run (as validate does);
    `audited`: also append the export to the site's audit chain and point ref.json to it."""
    npz, manifest = signed_update(
        kit, tensors, run_id=run_id, round_index=round_index, **signed_kwargs
    )
    if admitted:
        admit(minio, kit, run_id)
    key = update_object_key(key_run or run_id, key_round or round_index, kit.id)
    put_update(minio, kit, npz, manifest, key=key)
    return write_ref(
        folder,
        {
            "status": "exported",
            "site_id": kit.id,
            "bucket": kit.site.object_store.bucket,
            "key": key + ".npz",  # as components/export writes it
            "manifest_key": key + ".manifest.json",
            "manifest": json.loads(manifest),
            "reason": None,
            **({"audit": audit_export(minio, kit, run_id, round_index, npz)} if audited else {}),
        },
    )


def abstain(kit: SiteKit, folder: Path, reason: str) -> str:
    return write_ref(
        folder,
        {
            "status": "abstained",
            "site_id": kit.id,
            "bucket": kit.site.object_store.bucket,
            "key": None,
            "manifest": None,
            "reason": reason,
        },
    )


def sites_json(kits: list[SiteKit]) -> str:
    return json.dumps({k.id: json.loads(canonical_json(k.site)) for k in kits})


def policies_json(kits: list[SiteKit]) -> str:
    return json.dumps({k.policy.id: json.loads(canonical_json(k.policy)) for k in kits})
