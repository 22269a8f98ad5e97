"""Canonical JSON of config models and their digests (pure).

Canonical = `model.dict()` with every field (defaults and nulls included), keys sorted,
no whitespace, UTF-8. The same bytes always give the same sha256, and
`Site.parse_raw(canonical_json(site)) == site`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from components.domain.models import Policy, Site


def canonical_dumps(value: Any) -> str:
    """JSON text with sorted keys and no whitespace (non-ASCII kept as is); ValueError for NaN
    or infinity, which JSON cannot hold."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def canonical_json(model: BaseModel) -> str:
    """The canonical JSON text of a config model (what `site_json`/`policy_json` carry)."""
    return canonical_dumps(model.dict())


def sha256_hex(data: bytes | str) -> str:
    """Hex SHA-256 of bytes, or of a text's UTF-8 encoding."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def policy_digest(policy: Policy) -> str:
    """sha256 (hex) of the policy's canonical JSON: a task input, so caches never cross policies."""
    return sha256_hex(canonical_json(policy))


def site_digest(site: Site) -> str:
    """sha256 (hex) of the site's canonical JSON."""
    return sha256_hex(canonical_json(site))


def federation_digest(
    sites: Iterable[Site], policies: Iterable[Policy], contracts: Iterable[BaseModel] = ()
) -> str:
    """sha256 (hex) over all sites, policies and the data contracts in use, order-independent
    (sorted by id/name)."""
    body: dict[str, Any] = {
        "sites": {s.id: s.dict() for s in sorted(sites, key=lambda s: s.id)},
        "policies": {p.id: p.dict() for p in sorted(policies, key=lambda p: p.id)},
    }
    used = {c.name: c.dict() for c in contracts}  # type: ignore[attr-defined]
    if used:  # a federation without contracts keeps its earlier digest
        body["contracts"] = used
    return sha256_hex(canonical_dumps(body))
