"""`fedpipe doctor`'s checks against a live cluster, one `Check` each (the APIs are passed in).

Per placement: nodes carry its node-selector labels, carry its taints (so other pods stay
off) and have no taint its tolerations miss; its NetworkPolicies are present and as generated.
Per member site: the ConfigMap holding its own copy of its policy exists, parses and matches
the repository's policy, or the check names how it differs (`own_policy.py`).
Per Secret the compiled pipeline reads: present, every key there and non-empty (values are
decoded in memory only to test emptiness, never printed). Then the run namespace (Pod Security
`restricted`), the KFP API and the compiled pipeline version on it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from components.domain.models import Site, Toleration
from pipelines.deploy.manifests import Manifests
from pipelines.placement.labels import SITE_LABEL

SCHEDULING_EFFECTS = ("NoSchedule", "NoExecute")


@dataclass(frozen=True)
class Check:
    """One check: what, whether it passed, what was seen, and (failed) the fix."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        if self.ok:
            return f"ok    {self.name}: {self.detail}"
        return f"FAIL  {self.name}: {self.detail}; fix: {self.fix}"


def tolerates(toleration: Toleration, key: str, value: str | None, effect: str) -> bool:
    """Kubernetes' rule: effects agree (or the toleration has none), and the key/value match
    (`Exists`: key only, or every taint without a key; `Equal`: key and value)."""
    if toleration.effect is not None and toleration.effect != effect:
        return False
    if toleration.operator == "Exists":
        return toleration.key is None or toleration.key == key
    return toleration.key == key and (toleration.value or "") == (value or "")


def _taint_text(key: str, value: str | None, effect: str) -> str:
    return f"{key}={value}:{effect}" if value else f"{key}:{effect}"


def check_nodes(core: Any, site: Site) -> Check:
    """Nodes labelled with every `site.placement.node_selector` label, tainted and tolerated."""
    labels = sorted(site.placement.node_selector.items())
    selector = ",".join(f"{k}={v}" for k, v in labels)
    name = f"nodes {site.id}"
    nodes = core.list_node(label_selector=selector).items
    if not nodes:
        return Check(
            name, False, f"no node carries {selector}",
            f"label the {site.id} pool: kubectl label node <node> {' '.join(f'{k}={v}' for k, v in labels)}",
        )  # fmt: skip
    wanted = [
        t for t in site.placement.tolerations
        if t.operator == "Equal" and t.key and t.effect in SCHEDULING_EFFECTS
    ]  # fmt: skip
    usable, problems = [], []
    for node in nodes:
        taints = [
            (t.key, t.value, t.effect)
            for t in (node.spec.taints or [])
            if t.effect in SCHEDULING_EFFECTS
        ]
        missed = [
            t for t in taints if not any(tolerates(tol, *t) for tol in site.placement.tolerations)
        ]
        absent = [w for w in wanted if (w.key, w.value, w.effect) not in taints]
        node_name = node.metadata.name
        if node.spec.unschedulable:
            problems.append((node_name, "is cordoned", f"kubectl uncordon {node_name}"))
        elif missed:
            t = _taint_text(*missed[0])
            problems.append(
                (node_name, f"has taint {t} that {site.id}'s tolerations do not cover",
                 f"kubectl taint nodes {node_name} {t}- (or add the toleration to sites/{site.id}.yaml)")
            )  # fmt: skip
        elif absent:
            t = _taint_text(absent[0].key or "", absent[0].value, absent[0].effect or "")
            problems.append(
                (node_name, f"lacks taint {t} (other pods may land on {site.id}'s nodes)",
                 f"kubectl taint nodes {node_name} {t}")
            )  # fmt: skip
        else:
            usable.append(node_name)
    if problems:
        node_name, what, fix = problems[0]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        return Check(name, False, f"node {node_name} {what}{more}", fix)
    return Check(
        name,
        True,
        f"{len(usable)} node(s) with {selector}, tainted and tolerated: {', '.join(usable)}",
    )


def secret_key_lengths(core: Any, secret: str, namespace: str) -> dict[str, int]:
    """{key: decoded length} of a Secret. The answer is read raw (`_preload_content=False`):
    the client's own parsing would log the whole body, values included, at DEBUG level."""
    response = core.read_namespaced_secret(secret, namespace, _preload_content=False)
    try:
        data = (json.loads(response.data) or {}).get("data") or {}
        return {key: len(base64.b64decode(value or "")) for key, value in data.items()}
    finally:
        response.release_conn()


def check_secret(
    core: Any, namespace: str, secret: str, keys: Iterable[str], template: str
) -> Check:
    """The Secret exists in `namespace` with every key non-empty; names keys, never values."""
    from kubernetes.client import ApiException

    keys = sorted(keys)
    name = f"secret {namespace}/{secret}"
    literals = " ".join(f"--from-literal={k}=<{k}>" for k in keys)
    create = (
        f"kubectl -n {namespace} create secret generic {secret} {literals} (template {template})"
    )
    try:
        data = secret_key_lengths(core, secret, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return Check(name, False, "missing", create)
        return Check(
            name,
            False,
            f"cannot read it: {exc.status} {exc.reason}",
            "grant `get` on it to your user",
        )
    missing = [k for k in keys if k not in data]
    if missing:
        return Check(
            name, False, f"key(s) missing: {', '.join(missing)}",
            f"add them: kubectl -n {namespace} edit secret {secret} (or recreate: {create})",
        )  # fmt: skip
    empty = [k for k in keys if not data[k]]
    if empty:
        return Check(
            name, False, f"key(s) empty: {', '.join(empty)}",
            f"fill them: kubectl -n {namespace} edit secret {secret}",
        )  # fmt: skip
    return Check(name, True, f"keys {', '.join(keys)} present")


def check_network_policies(
    networking: Any, sanitize: Callable[[Any], Any], namespace: str, placement: str,
    expected: list[dict[str, Any]], file: str,
) -> Check:  # fmt: skip
    """Every generated NetworkPolicy of `placement` exists in `namespace` with the same spec."""
    name = f"network policies {placement}"
    found = {
        p.metadata.name: p
        for p in networking.list_namespaced_network_policy(
            namespace, label_selector=f"{SITE_LABEL}={placement}"
        ).items
    }
    fix = f"kubectl apply -f {file} (from `fedpipe manifests`)"
    missing = [p["metadata"]["name"] for p in expected if p["metadata"]["name"] not in found]
    if missing:
        return Check(name, False, f"missing: {', '.join(missing)}", fix)
    differ = [
        p["metadata"]["name"]
        for p in expected
        if sanitize(found[p["metadata"]["name"]].spec) != p["spec"]
    ]
    if differ:
        return Check(name, False, f"differ from the policies' rules: {', '.join(differ)}", fix)
    return Check(name, True, f"{len(expected)} present as generated")


def check_namespace(core: Any, expected: Mapping[str, Any], file: str) -> Check:
    """The run namespace exists with the generated Pod Security labels."""
    from kubernetes.client import ApiException

    ns = expected["metadata"]["name"]
    name = f"namespace {ns}"
    try:
        obj = core.read_namespace(ns)
    except ApiException as exc:
        if exc.status == 404:
            return Check(name, False, "missing", f"kubectl apply -f {file}")
        return Check(name, False, f"cannot read it: {exc.status} {exc.reason}", "check your access")
    labels = obj.metadata.labels or {}
    wrong = sorted(
        k for k, v in expected["metadata"]["labels"].items()
        if k.startswith("pod-security.") and labels.get(k) != v
    )  # fmt: skip
    if wrong:
        return Check(
            name,
            False,
            f"Pod Security labels differ: {', '.join(wrong)}",
            f"kubectl apply -f {file}",
        )
    return Check(name, True, "present, Pod Security restricted")


def guarded(name: str, check: Callable[[], Check]) -> Check:
    """`check()`, or a failed Check when the API refuses the read (status and reason only)."""
    from kubernetes.client import ApiException

    try:
        return check()
    except ApiException as exc:
        return Check(name, False, f"cannot read it: {exc.status} {exc.reason}", "check your access")


def cluster_checks(
    core: Any,
    networking: Any,
    sanitize: Callable[[Any], Any],
    sites: Iterable[Site],
    manifests: Manifests,
    manifests_dir: str,
    repo_policies: Mapping[str, tuple[Any, str]] | None = None,
) -> list[Check]:
    """Namespace, then per placement its nodes and NetworkPolicies, per member site in
    `repo_policies` ({site id: (its policy in the repository, that file)}) its own-policy
    ConfigMap (`pipelines.deploy.own_policy`), then every Secret."""
    from pipelines.deploy.own_policy import check_own_policy

    sites = list(sites)

    files = manifests.files
    (namespace,) = files["namespace.yaml"]
    ns = namespace["metadata"]["name"]
    checks = [check_namespace(core, namespace, f"{manifests_dir}/namespace.yaml")]
    for site in sites:
        checks.append(guarded(f"nodes {site.id}", lambda s=site: check_nodes(core, s)))
        policies = [o for o in files[f"{site.id}.yaml"] if o["kind"] == "NetworkPolicy"]
        file = f"{manifests_dir}/{site.id}.yaml"
        checks.append(
            guarded(
                f"network policies {site.id}",
                lambda s=site, p=policies, f=file: check_network_policies(
                    networking, sanitize, ns, s.id, p, f
                ),
            )
        )
    by_id = {site.id: site for site in sites}
    for site_id, (policy, policy_file) in sorted((repo_policies or {}).items()):
        site = by_id[site_id]
        checks.append(
            guarded(
                f"own policy {site_id}",
                lambda s=site, p=policy, f=policy_file: check_own_policy(core, ns, s, p, f),
            )
        )
    for path, objects in files.items():
        for obj in objects:
            if obj["kind"] == "Secret":
                checks.append(
                    check_secret(
                        core,
                        ns,
                        obj["metadata"]["name"],
                        obj["stringData"],
                        f"{manifests_dir}/{path}",
                    )
                )
    return checks
