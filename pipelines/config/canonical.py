"""Compatibility re-export: canonical JSON and digests live in `components.domain.canonical`.

Kept so code written against `pipelines.config.canonical` keeps importing while branches in
flight merge; new code imports `components.domain.canonical`.
"""

from components.domain.canonical import (  # noqa: F401
    canonical_dumps,
    canonical_json,
    federation_digest,
    policy_digest,
    sha256_hex,
    site_digest,
)
