"""Sites and policies: schemas (`models`), loading with cross-checks (`loader`), digests."""

from pipelines.config.canonical import (
    canonical_dumps,
    canonical_json,
    config_digest,
    policy_digest,
    site_digest,
)
from pipelines.config.loader import (
    ConfigError,
    Federation,
    federation_from_models,
    load_federation,
)
from pipelines.config.models import API_VERSION, ARTIFACT_CLASSES, DestinationRule, Policy, Site

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
    "config_digest",
    "federation_from_models",
    "load_federation",
    "policy_digest",
    "site_digest",
]
