"""The NetworkPolicy evaluator on hand-written policies (expected results by hand)."""

from __future__ import annotations

import pytest

from pipelines.deploy.netpol import Peer, Pod, egress_allowed, policy_types, selector_matches

APP = Pod("ns", {"app": "a", "tier": "web"}, {"kubernetes.io/metadata.name": "ns"})
DB = Pod("db", {"app": "pg"}, {"kubernetes.io/metadata.name": "db", "team": "x"})


def policy(spec: dict, namespace: str = "ns") -> dict:
    return {
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": namespace},
        "spec": spec,
    }


def test_selectors():
    assert selector_matches({}, {"a": "1"})
    assert selector_matches({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"})
    assert not selector_matches({"matchLabels": {"a": "1"}}, {"a": "2"})
    expr = {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}
    assert selector_matches(expr, {"a": "2"}) and not selector_matches(expr, {})
    notin = {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}
    assert selector_matches(notin, {}) and not selector_matches(notin, {"a": "1"})
    assert selector_matches({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {})


def test_policy_types_default():
    assert policy_types({}) == ["Ingress"]
    assert policy_types({"egress": []}) == ["Ingress", "Egress"]


def test_unselected_pod_is_not_isolated_and_ingress_only_policy_does_not_isolate_egress():
    other = policy({"podSelector": {"matchLabels": {"app": "other"}}, "policyTypes": ["Egress"]})
    ingress = policy({"podSelector": {}, "policyTypes": ["Ingress"]})
    assert egress_allowed([other, ingress], APP, Peer(5432, pod=DB))


def test_default_deny_then_namespace_and_port():
    deny = policy({"podSelector": {}, "policyTypes": ["Egress"]})
    assert not egress_allowed([deny], APP, Peer(5432, pod=DB))
    allow = policy(
        {
            "podSelector": {"matchLabels": {"app": "a"}},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}],
                    "ports": [{"protocol": "TCP", "port": 5000, "endPort": 5500}],
                }
            ],
        }
    )
    assert egress_allowed([deny, allow], APP, Peer(5432, pod=DB))
    assert not egress_allowed([deny, allow], APP, Peer(5432, "UDP", pod=DB))
    assert not egress_allowed([deny, allow], APP, Peer(6000, pod=DB))
    # a pod selector alone means the policy's own namespace
    same_ns = policy({"podSelector": {}, "egress": [{"to": [{"podSelector": {}}]}]})
    assert not egress_allowed([same_ns], APP, Peer(5432, pod=DB))
    assert egress_allowed([same_ns], APP, Peer(80, pod=Pod("ns", {"app": "z"})))
    # a policy in another namespace does not select the pod
    assert egress_allowed(
        [policy({"podSelector": {}, "egress": []}, "elsewhere")], APP, Peer(1, ip="1.1.1.1")
    )


@pytest.mark.parametrize(
    ("ip", "ok"), [("10.0.0.5", True), ("10.0.1.5", False), ("11.0.0.1", False)]
)
def test_ip_block_with_except(ip: str, ok: bool):
    p = policy(
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}]}],
        }
    )
    assert egress_allowed([p], APP, Peer(443, ip=ip)) is ok
    assert not egress_allowed([p], APP, Peer(443, pod=DB))  # an ipBlock never matches a pod peer
