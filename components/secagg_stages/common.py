"""What the SecAgg+ site and coordinator executors share (I/O edge): keys from specs and
secrets, the site's bucket, reading the refs of earlier tasks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from components.common.artifact_files import REF_FILE, write_json
from components.common.secrets import site_secret
from components.domain.models import Site
from components.secagg.errors import SecAggError
from components.secagg.exchange import SiteBucket
from components.secagg.keys import public_bytes


def public_key(site: Site) -> Ed25519PublicKey:
    """The Ed25519 public key of a site spec (the coordinator's included)."""
    if site.signing is None:
        raise SecAggError(f"site {site.id} names no signing.public_key; SecAgg+ needs it")
    key = serialization.load_pem_public_key(site.signing.public_key.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise SecAggError(f"site {site.id}: signing.public_key is not an Ed25519 key")
    return key


def private_key(site: Site) -> Ed25519PrivateKey:
    """The task's own Ed25519 key (`SIGNING_KEY` secret), checked against its spec."""
    key = serialization.load_pem_private_key(
        site_secret(site.id, "SIGNING_KEY").encode(), password=None
    )
    if not isinstance(key, Ed25519PrivateKey):
        raise SecAggError(f"site {site.id}: the SIGNING_KEY secret is not an Ed25519 key")
    if public_bytes(key.public_key()) != public_bytes(public_key(site)):
        raise SecAggError(
            f"site {site.id}: the SIGNING_KEY secret does not match signing.public_key of its "
            "site spec; nothing was signed"
        )
    return key


def sites_of(sites_json: str) -> dict[str, Site]:
    return {sid: Site.parse_obj(body) for sid, body in json.loads(sites_json).items()}


def site_keys(sites: Mapping[str, Site]) -> dict[str, Ed25519PublicKey]:
    """{site id: Ed25519 public key} of every member (what advertisements are checked with)."""
    return {sid: public_key(site) for sid, site in sorted(sites.items())}


def site_bucket(site: Site, client: Any, sse: Any = None) -> SiteBucket:
    return SiteBucket(client, site.object_store.bucket, site.id, sse)


def read_ref(folder: str | Path) -> dict[str, Any]:
    """A task's `ref.json`, or an abstained stand-in naming why it is unreadable."""
    try:
        body = json.loads((Path(folder) / REF_FILE).read_text())
    except (OSError, ValueError) as exc:
        return {"status": "abstained", "reason": f"reference unreadable ({exc})"}
    if not isinstance(body, dict):
        return {"status": "abstained", "reason": "reference is not an object"}
    return body


def write_ref(folder: str | Path, body: Mapping[str, Any]) -> dict[str, Any]:
    write_json(folder, REF_FILE, body)
    return dict(body)
