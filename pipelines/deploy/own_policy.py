"""`fedpipe doctor`: each site's own copy of its policy, the ConfigMap its validate admits runs
against (`own_policy` in its site file), read from the cluster and compared with the policy in
the repository.

Present with its key, parses as a policy, and either the same policy (same digest) or, when it
differs, every differing field named; a difference under which the site's admission would
refuse every run compiled from the repository (`components.validate.admission.
policy_refusals`) fails the check, a stricter-nowhere difference is reported but passes.
"""

from __future__ import annotations

from typing import Any

from components.domain.canonical import policy_digest
from components.domain.models import Policy, Site
from pipelines.deploy.doctor import Check

MAX_LISTED = 6


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in sorted(value.items()):
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def policy_differences(repo: Policy, own: Policy) -> list[str]:
    """Every field (dotted path; lists compared whole) whose value differs, as
    'path: repository <value>, cluster <value>' (pure)."""
    mine, theirs = _flatten(own.dict()), _flatten(repo.dict())
    out = []
    for path in sorted(set(mine) | set(theirs)):
        if path == "description":
            continue
        a, b = theirs.get(path), mine.get(path)
        if a != b:
            out.append(f"{path}: repository {a!r}, cluster {b!r}")
    return out


def check_own_policy(
    core: Any, namespace: str, site: Site, repo: Policy, policy_file: str
) -> Check:
    """The site's own-policy ConfigMap: present, parses, same as `repo` (or how it differs)."""
    from kubernetes.client import ApiException

    from components.validate.admission import parse_own_policy, policy_refusals

    ref = site.own_policy
    name = f"own policy {site.id}"
    if ref is None:
        return Check(
            name,
            True,
            "no ConfigMap named in its site file: validate reads admission/policy.json from "
            "the site's own bucket (not checked here)",
        )
    where = f"ConfigMap {namespace}/{ref.config_map}"
    create = (
        f"the site's operator: kubectl -n {namespace} create configmap {ref.config_map} "
        f"--from-file={ref.key}=<the site's own copy of {policy_file}>"
    )
    try:
        config_map = core.read_namespaced_config_map(ref.config_map, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return Check(name, False, f"{where} missing (the site admits no run)", create)
        return Check(
            name, False, f"cannot read {where}: {exc.status} {exc.reason}", "check your access"
        )
    text = (config_map.data or {}).get(ref.key)
    if not text:
        return Check(name, False, f"{where} has no (or an empty) key {ref.key!r}", create)
    try:
        own = parse_own_policy(text, f"{where} key {ref.key}")
    except ValueError as exc:
        return Check(name, False, str(exc), create)
    if policy_digest(own) == policy_digest(repo):
        return Check(name, True, f"{where} matches {policy_file} (policy {repo.id})")
    differences = policy_differences(repo, own)
    listed = "; ".join(differences[:MAX_LISTED])
    if len(differences) > MAX_LISTED:
        listed += f" (+{len(differences) - MAX_LISTED} more)"
    refusals = policy_refusals(site, own, repo)
    if refusals:
        return Check(
            name,
            False,
            f"{where} differs from {policy_file}: {listed}; the site refuses every run "
            f"compiled from the repository: {'; '.join(refusals)}",
            f"align them: change {policy_file} and recompile, or (the site's operator) "
            f"replace the ConfigMap ({create.split(': ', 1)[1]} --dry-run=client -o yaml | "
            f"kubectl replace -f -)",
        )
    return Check(
        name, True, f"{where} differs from {policy_file} ({listed}) but admits what it allows"
    )
