"""Generated federations of any size, cloned from the example in `sites/` and `policies/`."""

from __future__ import annotations

from pathlib import Path

from components.domain.federation import Federation
from components.domain.models import Site
from pipelines.config.loader import federation_from_models, load_federation

REPO = Path(__file__).resolve().parents[2]


def generated_federation(
    n_sites: int, template: Federation | None = None, prefix: str = "site"
) -> Federation:
    """`n_sites` member sites `<prefix>-0001`..., cloned round-robin from the template's sites.

    Each clone keeps its template's jurisdiction and policy and gets its own id, bucket, signing key,
    Secret, node label and toleration; coordinator and policies are the template's.
    """
    if n_sites < 1:
        raise ValueError(f"n_sites must be at least 1, got {n_sites}")
    template = template or load_federation(REPO / "sites", REPO / "policies")
    members = list(template.sites.values())
    sites = [_clone(members[i % len(members)], f"{prefix}-{i + 1:04d}") for i in range(n_sites)]
    return federation_from_models([*sites, template.coordinator], template.policies.values())


def _clone(site: Site, site_id: str) -> Site:
    doc = site.dict()
    bucket = f"{site_id}-fl"
    doc["id"] = site_id
    doc["region"] = f"{site.region}-{site_id}"
    doc["placement"] = {
        "node_selector": {"fedpipe.dev/site": site_id},
        "tolerations": [
            {
                "key": "fedpipe.dev/site",
                "operator": "Equal",
                "value": site_id,
                "effect": "NoSchedule",
            }
        ],
    }
    doc["signing"] = {"public_key": _public_key_of(site_id)}
    doc["object_store"] = {
        **doc["object_store"],
        "endpoint": f"minio.{site_id}.svc:9000",
        "bucket": bucket,
        "secret_name": f"{site_id}-object-store",
    }
    doc["data"] = {
        **doc["data"],
        "uri": f"s3://{bucket}/data/train.csv",
        "holdout_uri": f"s3://{bucket}/data/holdout.csv",
    }
    return Site.parse_obj(doc)


def _public_key_of(site_id: str) -> str:
    """A deterministic Ed25519 public key per generated site (a federation refuses two sites
    sharing one key; the same site id always gives the same key, so compiles are repeatable)."""
    import hashlib

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = hashlib.sha256(f"fedpipe generated site {site_id}".encode()).digest()
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
