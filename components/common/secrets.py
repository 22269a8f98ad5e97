"""Where executors find per-site secrets and endpoints (see components/CONTRACT.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path


class MissingSecretError(RuntimeError):
    """A secret a task needs is not available to it."""


def _env_suffix(site_id: str) -> str:
    return site_id.upper().replace("-", "_").replace(".", "_")


def secret_env_name(site_id: str, name: str) -> str:
    """The site-specific env name of secret `name`: FEDPIPE_<NAME>__<SITE> ('-' -> '_')."""
    return f"FEDPIPE_{name.upper()}__{_env_suffix(site_id)}"


def site_secret(site_id: str, name: str) -> str:
    """The secret `name` (e.g. S3_ACCESS_KEY, SIGNING_KEY) of `site_id`.

    Order: env FEDPIPE_<NAME>__<SITE>, env FEDPIPE_<NAME>, file $FEDPIPE_SECRETS_DIR/<site>/<name>.
    """
    key = name.upper()
    for env in (secret_env_name(site_id, key), f"FEDPIPE_{key}"):
        value = os.environ.get(env)
        if value:
            return value
    secrets_dir = os.environ.get("FEDPIPE_SECRETS_DIR")
    if secrets_dir:
        path = Path(secrets_dir) / site_id / name.lower()
        if path.is_file():
            return path.read_text()
    raise MissingSecretError(
        f"site {site_id}: secret {key} not found (env FEDPIPE_{key}__{_env_suffix(site_id)} or "
        f"FEDPIPE_{key}, or file $FEDPIPE_SECRETS_DIR/{site_id}/{name.lower()})"
    )


def object_store_endpoint(site_id: str, configured: str) -> str:
    """The site's object-store endpoint, unless FEDPIPE_ENDPOINT_OVERRIDES (JSON) names it."""
    raw = os.environ.get("FEDPIPE_ENDPOINT_OVERRIDES")
    if raw:
        overrides = json.loads(raw)
        if site_id in overrides:
            return str(overrides[site_id])
    return configured
