"""Sites and policies: loading the YAML files with cross-checks (`loader`), JSON Schemas.

The models, canonical JSON and digests are domain types in `components.domain`; they are
re-exported here so `from pipelines.config import Site` keeps working.
"""

from components.domain.canonical import (
    canonical_dumps,
    canonical_json,
    policy_digest,
    site_digest,
)
from components.domain.federation import Federation
from components.domain.models import API_VERSION, ARTIFACT_CLASSES, DestinationRule, Policy, Site
from pipelines.config.loader import ConfigError, federation_from_models, load_federation

__all__ = [
    "API_VERSION",
    "ARTIFACT_CLASSES",
    "ConfigError",
    "DestinationRule",
    "Federation",
    "Policy",
    "Site",
    "canonical_dumps",
    "canonical_json",
    "federation_from_models",
    "load_federation",
    "policy_digest",
    "site_digest",
]
