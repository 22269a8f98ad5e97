"""The common inputs of a per-site task, parsed and cross-checked (pure).

`parse_site_task` rebuilds the site and its governing policy from the task's JSON inputs
and refuses inputs that disagree (another site's spec, a policy that is not the site's,
a digest that does not match the policy): such a task was wired wrongly or tampered with,
and must not act on the site's bucket.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.domain.canonical import policy_digest as digest_of
from components.domain.models import Policy, Site
from components.domain.run_id import RunIdError, effective_run_id


class TaskInputError(ValueError):
    """A per-site task's inputs that are inconsistent or malformed (names site and field)."""


@dataclass(frozen=True)
class SiteTask:
    """site: the task's site; policy: its governing policy; run_id: effective run id."""

    site: Site
    policy: Policy
    run_id: str
    round_index: int


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
    try:
        effective = effective_run_id(run_id, kfp_job_id, f"site {site_id}")
    except RunIdError as exc:
        raise TaskInputError(str(exc)) from None
    return SiteTask(site, policy, effective, round_index)
