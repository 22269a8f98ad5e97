"""NetworkPolicy egress semantics: may this pod open a connection to that peer? (pure)

Follows the Kubernetes rules: a pod is isolated for egress once any policy in its namespace
selects it with `Egress` in `policyTypes`; an isolated pod may reach a peer when some such
policy has an egress rule whose `to` (empty: any peer) and `ports` (empty: any port) both
match. A pod peer matches `podSelector`/`namespaceSelector` (no namespaceSelector: the policy's
own namespace); an address matches `ipBlock` (cidr minus except). Label selectors support
`matchLabels` and `matchExpressions` (In, NotIn, Exists, DoesNotExist). Named ports are not
supported (the generated policies use numbers).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pod:
    """A pod: its namespace, the namespace's labels and its own labels."""

    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Peer:
    """A connection's far end: a pod or an address, and the port/protocol."""

    port: int
    protocol: str = "TCP"
    pod: Pod | None = None
    ip: str | None = None


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector against labels; `{}` matches everything."""
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"unknown selector operator {op!r}")
    return True


def _peer_matches(rule_peer: Mapping[str, Any], policy_ns: str, peer: Peer) -> bool:
    if "ipBlock" in rule_peer:
        if peer.ip is None:
            return False
        block = rule_peer["ipBlock"]
        addr = ipaddress.ip_address(peer.ip)
        if addr not in ipaddress.ip_network(block["cidr"], strict=False):
            return False
        return not any(addr in ipaddress.ip_network(e) for e in block.get("except") or [])
    if peer.pod is None:
        return False
    ns_sel = rule_peer.get("namespaceSelector")
    if ns_sel is None:
        if peer.pod.namespace != policy_ns:
            return False
    elif not selector_matches(ns_sel, peer.pod.namespace_labels):
        return False
    return selector_matches(rule_peer.get("podSelector"), peer.pod.labels)


def _port_matches(ports: list[Mapping[str, Any]] | None, peer: Peer) -> bool:
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != peer.protocol:
            continue
        if "port" not in p:
            return True
        start = p["port"]
        if not isinstance(start, int):
            raise ValueError(f"named port {start!r} is not supported")
        if start <= peer.port <= p.get("endPort", start):
            return True
    return False


def policy_types(spec: Mapping[str, Any]) -> list[str]:
    """`policyTypes`, or its default: Ingress, plus Egress when the spec has an egress section."""
    if spec.get("policyTypes"):
        return list(spec["policyTypes"])
    return ["Ingress", *(["Egress"] if "egress" in spec else [])]


def egress_allowed(policies: Iterable[Mapping[str, Any]], source: Pod, peer: Peer) -> bool:
    """True when `source` may open a connection to `peer` under `policies` (any namespaces)."""
    selecting = [
        p
        for p in policies
        if p.get("kind") == "NetworkPolicy"
        and p["metadata"].get("namespace") == source.namespace
        and "Egress" in policy_types(p["spec"])
        and selector_matches(p["spec"].get("podSelector"), source.labels)
    ]
    if not selecting:
        return True  # not isolated for egress
    for policy in selecting:
        for rule in policy["spec"].get("egress") or []:
            to = rule.get("to")
            peers_ok = not to or any(
                _peer_matches(r, policy["metadata"]["namespace"], peer) for r in to
            )
            if peers_ok and _port_matches(rule.get("ports"), peer):
                return True
    return False
