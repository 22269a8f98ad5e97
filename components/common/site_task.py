"""The common inputs of a per-site task, parsed and cross-checked (pure).

`parse_site_task` rebuilds the site and its governing policy from the task's JSON inputs
and refuses inputs that disagree (another site's spec, a policy that is not the site's,
a digest that does not match the policy): such a task was wired wrongly or tampered with,
and must not act on the site's bucket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class TaskInputError(ValueError):
    """A per-site task's inputs that are inconsistent or malformed (names site and field)."""


@dataclass(frozen=True)
class SiteTask:
    """site: `pipelines.config.models.Site`; policy: its `Policy`; run_id: effective run id."""

    site: Any
    policy: Any
    run_id: str
    round_index: int


def effective_run_id(run_id: str, kfp_job_id: str, site_id: str) -> str:
    """`run_id`, or `kfp_job_id` when it is empty; must be usable in object keys."""
    value = run_id or kfp_job_id
    if not value:
        raise TaskInputError(f"site {site_id}: both run_id and kfp_job_id are empty")
    if not _RUN_ID.fullmatch(value) or ".." in value:
        raise TaskInputError(
            f"site {site_id}: run id {value!r} is not usable in object keys "
            "([A-Za-z0-9._-], at most 128 characters)"
        )
    return value


def parse_site_task(
    *,
    site_id: str,
    policy_digest: str,
    site_json: str,
    policy_json: str,
    run_id: str,
    kfp_job_id: str,
    round_index: int,
) -> SiteTask:
    """Parse and cross-check the common inputs of a per-site task; TaskInputError if they
    disagree (site id, role, the site's policy id, policy digest, run id, round).

    policy_json arrives as a pipeline input (`config_policy_<id>`, editable in the run form);
    policy_digest is a compiled constant, so an edited policy is refused here.
    """
    from pipelines.config.canonical import policy_digest as digest_of
    from pipelines.config.models import Policy, Site

    try:
        site = Site.parse_raw(site_json)
    except ValueError as exc:
        raise TaskInputError(f"site {site_id}: site_json is not a valid Site: {exc}") from None
    if site.id != site_id:
        raise TaskInputError(
            f"site_json describes site {site.id!r}, task input site_id {site_id!r}"
        )
    if site.role != "site":
        raise TaskInputError(f"site {site_id}: role is {site.role!r}; this task runs on sites")
    try:
        policy = Policy.parse_raw(policy_json)
    except ValueError as exc:
        raise TaskInputError(f"site {site_id}: policy_json is not a valid Policy: {exc}") from None
    if policy.id != site.policy:
        raise TaskInputError(
            f"site {site_id}: policy_json is policy {policy.id!r}, the site is governed by "
            f"{site.policy!r}"
        )
    actual = digest_of(policy)
    if actual != policy_digest:
        raise TaskInputError(
            f"site {site_id}: policy_digest input {policy_digest[:12]}... does not match policy "
            f"{policy.id!r} (sha256 {actual[:12]}...)"
        )
    if round_index < 1:
        raise TaskInputError(f"site {site_id}: round_index {round_index} must be >= 1")
    return SiteTask(site, policy, effective_run_id(run_id, kfp_job_id, site_id), round_index)
