"""The Kubernetes objects a federation needs, as plain dicts and YAML files (pure).

Layout (the shared-control-plane topology: KFP runs every task of a run in one namespace):

* `namespace.yaml`: the run namespace with Pod Security `restricted` labels.
* `<placement>.yaml`, per site and the coordinator: ServiceAccount `fedpipe-<id>`, a Role that
  may `get` only the Secrets that placement's tasks read and, for a site, pods (its validate
  reads from its own pod which image it runs in, `components.validate.running_image`; the
  site's account mounts its token for that) (+ RoleBinding), and NetworkPolicies
  selecting its pods by the `fedpipe.dev/site` label the compiler sets: default-deny ingress and
  egress, then DNS + Kubernetes API + KFP control plane, the artifact store and the object
  stores `network.plan_routes` allows.
* `secret-templates/<secret>.yaml`: each Secret with its key names and empty values (fill and
  apply them by hand; `kubectl apply -f DIR` does not descend into the folder).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from components.domain.federation import Federation
from pipelines.deploy import KUBERNETES_VERSION
from pipelines.deploy.network import (
    ClusterNetwork,
    Endpoint,
    NetworkConfigError,
    PlacementRoutes,
    Route,
    plan_routes,
)
from pipelines.deploy.secrets import secret_refs, secrets_by_name
from pipelines.placement.labels import SITE_LABEL

MANAGED_BY = {"app.kubernetes.io/managed-by": "fedpipe"}
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by Kubernetes on every namespace
PSS_VERSION = "v" + ".".join(KUBERNETES_VERSION.split(".")[:2])
NAMESPACE_FILE = "namespace.yaml"
SECRET_DIR = "secret-templates"


def _meta(name: str, net: ClusterNetwork, placement: str | None = None, **extra: Any) -> dict:
    labels = dict(MANAGED_BY)
    if placement is not None:
        labels[SITE_LABEL] = placement
    return {"name": name, "namespace": net.namespace, "labels": labels, **extra}


def namespace_object(net: ClusterNetwork) -> dict[str, Any]:
    """The run namespace, Pod Security `restricted` enforced (and audited, warned)."""
    labels = dict(MANAGED_BY)
    for mode in ("enforce", "audit", "warn"):
        labels[f"pod-security.kubernetes.io/{mode}"] = "restricted"
        labels[f"pod-security.kubernetes.io/{mode}-version"] = PSS_VERSION
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": net.namespace, "labels": labels},
    }


def account_name(placement: str) -> str:
    return f"fedpipe-{placement}"


def rbac_objects(
    placement: str, secrets: list[str], net: ClusterNetwork, reads_own_pod: bool = False
) -> list[dict[str, Any]]:
    """ServiceAccount, and a Role/RoleBinding to `get` exactly `secrets` and, with
    `reads_own_pod` (a site: validate checks the image it runs in), pods (no rule: no Role).
    The account's token is mounted only with `reads_own_pod`."""
    name = account_name(placement)
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(name, net, placement),
            "automountServiceAccountToken": reads_own_pod,
        }
    ]
    rules: list[dict[str, Any]] = []
    if secrets:
        rules.append(
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": secrets,
                "verbs": ["get"],
            }
        )
    if reads_own_pod:
        rules.append({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]})
    if not rules:
        return objects
    role = f"{name}-secrets"
    objects += [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(role, net, placement),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(role, net, placement),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": net.namespace}],
        },
    ]
    return objects


def _cidr(ip: str) -> str:
    return f"{ip}/{ipaddress.ip_address(ip).max_prefixlen}"


def endpoint_rule(endpoint: Endpoint, net: ClusterNetwork) -> dict[str, Any]:
    """An egress rule to `endpoint`: its namespace (in-cluster service), its address, or the
    address blocks `net.host_cidrs` gives for an external host (NetworkConfigError without)."""
    if endpoint.namespace is not None:
        peers: list[dict[str, Any]] = [
            {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: endpoint.namespace}}}
        ]
    elif endpoint.ip is not None:
        peers = [{"ipBlock": {"cidr": _cidr(endpoint.ip)}}]
    else:
        cidrs = net.host_cidrs.get(endpoint.host)
        if not cidrs:
            raise NetworkConfigError(
                f"endpoint {endpoint}: a NetworkPolicy cannot name a host; give its address "
                f"blocks with --egress-cidr {endpoint.host}=CIDR (repeatable)"
            )
        peers = [{"ipBlock": {"cidr": c}} for c in cidrs]
    return {"to": peers, "ports": [{"protocol": "TCP", "port": endpoint.port}]}


def _infra_rules(net: ClusterNetwork) -> list[dict[str, Any]]:
    dns_peer = {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: net.dns_namespace}},
        "podSelector": {"matchLabels": dict(net.dns_pod_labels)},
    }
    return [
        {"to": [dns_peer], "ports": [{"protocol": p, "port": 53} for p in ("UDP", "TCP")]},
        {
            "to": [{"ipBlock": {"cidr": c}} for c in net.apiserver_cidrs],
            "ports": [{"protocol": "TCP", "port": net.apiserver_port}],
        },
        {
            "to": [
                {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: net.kfp_namespace}}}
            ],
            "ports": [{"protocol": "TCP", "port": p} for p in net.kfp_ports],
        },
    ]


def _why(routes: list[Route]) -> str:
    parts = []
    for r in routes:
        rules = f" ({'; '.join(r.rules)})" if r.rules else ""
        parts.append(f"{r.endpoint}: {r.reason}{rules}")
    return "; ".join(parts)


def _policy(
    name: str, placement: str, net: ClusterNetwork, egress: list[dict] | None, why: str
) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": {"matchLabels": {SITE_LABEL: placement}}}
    if egress is None:  # default deny both ways
        spec["policyTypes"] = ["Ingress", "Egress"]
    else:
        spec["policyTypes"] = ["Egress"]
        spec["egress"] = egress
    annotations = {"fedpipe.dev/why": why}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(name, net, placement, annotations=annotations),
        "spec": spec,
    }


def network_policies(routes: PlacementRoutes, net: ClusterNetwork) -> list[dict[str, Any]]:
    """default-deny, infrastructure, artifact store (if allowed), object stores."""
    pid = routes.placement
    base = f"fedpipe-{pid}"
    infra = [r for r in routes.allowed if r.kind in ("dns", "kubernetes-api", "kfp-control-plane")]
    artifact = [r for r in routes.allowed if r.kind == "artifact-store"]
    stores = [r for r in routes.allowed if r.kind == "object-store"]
    out = [
        _policy(f"{base}-default-deny", pid, net, None, "deny all ingress and egress of the pods"),
        _policy(f"{base}-egress-infrastructure", pid, net, _infra_rules(net), _why(infra)),
    ]
    if artifact:
        rules = [endpoint_rule(net.artifact_store, net)]
        out.append(_policy(f"{base}-egress-artifact-store", pid, net, rules, _why(artifact)))
    if stores:
        rules = []
        for r in stores:
            rule = endpoint_rule(Endpoint.parse(r.endpoint), net)
            if rule not in rules:
                rules.append(rule)
        out.append(_policy(f"{base}-egress-object-stores", pid, net, rules, _why(stores)))
    return out


def secret_template(name: str, keys: list[str], read_by: list[str], net: ClusterNetwork) -> dict:
    """A Secret with every key and an empty value (key names only, never a value)."""
    meta = _meta(name, net, annotations={"fedpipe.dev/read-by": ", ".join(read_by)})
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "stringData": dict.fromkeys(keys, ""),
    }


@dataclass(frozen=True)
class Manifests:
    """{relative file path: objects}; `texts()` renders them."""

    files: dict[str, list[dict[str, Any]]]
    header: str

    def objects(self) -> list[dict[str, Any]]:
        return [o for objs in self.files.values() for o in objs]

    def texts(self) -> dict[str, str]:
        return {
            path: self.header + yaml.safe_dump_all(objs, sort_keys=False, width=100)
            for path, objs in self.files.items()
        }


def build_manifests(
    federation: Federation, platform: Mapping[str, Any], net: ClusterNetwork
) -> Manifests:
    """Every object for `federation`; `platform`: the compiled platform spec (Secret refs)."""
    routes = plan_routes(federation, net)
    refs = secret_refs(platform)
    files: dict[str, list[dict[str, Any]]] = {NAMESPACE_FILE: [namespace_object(net)]}
    for pid in federation.all_sites:
        secrets = sorted(refs.get(pid, {}))
        is_site = federation.all_sites[pid].role == "site"
        files[f"{pid}.yaml"] = rbac_objects(pid, secrets, net, is_site) + network_policies(
            routes[pid], net
        )
    for name, entry in secrets_by_name(refs).items():
        files[f"{SECRET_DIR}/{name}.yaml"] = [
            secret_template(name, entry["keys"], entry["read_by"], net)
        ]
    header = (
        "# Generated by `fedpipe manifests` from sites/ and policies/ (config digest "
        f"{federation.digest()[:19]}); regenerate instead of editing.\n"
    )
    return Manifests(files, header)


def platform_spec(federation: Federation) -> dict[str, Any]:
    """The platform spec the compiler would write for `federation` (1 round), built without the
    residency check so that a forbidden federation still gets (narrower) network rules."""
    from pipelines.dag import build_pipeline
    from pipelines.kfp_speed import gc_paused
    from pipelines.yaml_writer import pipeline_documents

    with gc_paused():
        _, platform = pipeline_documents(build_pipeline(federation, 1))
    return platform
