"""Policy variants for tests."""

from __future__ import annotations

from components.domain.federation import Federation
from pipelines.config.loader import federation_from_models


def without_metrics(fed: Federation, policy_id: str) -> Federation:
    """The federation with `policy_id` no longer letting metrics go anywhere."""
    policy = fed.policies[policy_id]
    rules = policy.rules.copy(update={"metrics": []})
    changed = policy.copy(update={"rules": rules})
    policies = {**fed.policies, policy_id: changed}
    return federation_from_models(fed.all_sites.values(), policies.values())
