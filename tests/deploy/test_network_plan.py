"""Routes from the residency decisions (pure, no compile): endpoint peers, a policy that
forbids the coordinator, and the artifact store on another placement."""

from __future__ import annotations

import pytest

from pipelines.config import federation_from_models, load_federation
from pipelines.deploy.manifests import build_manifests, endpoint_rule
from pipelines.deploy.netpol import Peer, Pod, egress_allowed
from pipelines.deploy.network import ClusterNetwork, Endpoint, NetworkConfigError, plan_routes
from pipelines.placement.labels import SITE_LABEL
from tests.support.paths import REPO

NET = ClusterNetwork()


@pytest.fixture(scope="module")
def fed():
    return load_federation(REPO / "sites", REPO / "policies")


def forbid_coordinator(fed, policy_id: str):
    """The federation with `policy_id` letting no class reach the coordinator."""
    policy = fed.policies[policy_id]
    rules = policy.rules.copy(
        update={c: [] for c in ("validation_summary", "dp_update", "metrics")}
    )
    changed = policy.copy(update={"rules": rules})
    others = [p for pid, p in fed.policies.items() if pid != policy_id]
    return federation_from_models([*fed.sites.values(), fed.coordinator], [*others, changed])


def kinds(routes) -> list[tuple[str, str]]:
    return [(r.kind, r.owner) for r in routes]


@pytest.mark.parametrize(
    ("text", "namespace", "ip", "port"),
    [
        ("minio.hospital-berlin.svc:9000", "hospital-berlin", None, 9000),
        ("minio.x.svc.cluster.local:9000", "x", None, 9000),
        ("10.1.2.3:9000", None, "10.1.2.3", 9000),
        ("storage.googleapis.com", None, None, 443),
    ],
)
def test_endpoint_parse(text, namespace, ip, port):
    e = Endpoint.parse(text)
    assert (e.namespace, e.ip, e.port) == (namespace, ip, port)


def test_endpoint_rules():
    assert endpoint_rule(Endpoint.parse("10.1.2.3:9000"), NET)["to"] == [
        {"ipBlock": {"cidr": "10.1.2.3/32"}}
    ]
    assert endpoint_rule(Endpoint.parse("storage.googleapis.com:443"), NET)["to"] == [
        {"ipBlock": {"cidr": "199.36.153.4/30"}}
    ]
    with pytest.raises(NetworkConfigError, match="--egress-cidr minio.example.org=CIDR"):
        endpoint_rule(Endpoint.parse("minio.example.org:443"), NET)
    with pytest.raises(NetworkConfigError, match="expected host:port"):
        Endpoint.parse("host:99999")


def test_a_policy_forbidding_the_coordinator_removes_exactly_those_routes(fed):
    before = plan_routes(fed, NET)
    after = plan_routes(forbid_coordinator(fed, "eu-health"), NET)
    for sid in ("hospital-berlin", "hospital-paris"):
        assert ("artifact-store", "coordinator") in kinds(before[sid].allowed)
        assert ("artifact-store", "coordinator") not in kinds(after[sid].allowed)
        assert kinds(after[sid].withheld) == [("artifact-store", "coordinator")]
        assert ("object-store", sid) not in kinds(after["coordinator"].allowed)
    assert after["clinic-boston"] == before["clinic-boston"]
    assert kinds(after["coordinator"].allowed)[-1] == ("object-store", "clinic-boston")

    # and on the generated NetworkPolicies: Berlin's pod no longer reaches the artifact store
    objs = build_manifests(forbid_coordinator(fed, "eu-health"), {}, NET).objects()
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    berlin = Pod("fedpipe", {SITE_LABEL: "hospital-berlin"})
    kubeflow = {"kubernetes.io/metadata.name": "kubeflow"}
    store = Peer(9000, pod=Pod("kubeflow", {"app": "minio"}, kubeflow))
    assert not egress_allowed(policies, berlin, store)
    assert egress_allowed(policies, Pod("fedpipe", {SITE_LABEL: "clinic-boston"}), store)


def test_artifact_store_on_a_site_placement(fed):
    net = ClusterNetwork(artifact_store_placement="clinic-boston")
    routes = plan_routes(fed, net)
    # sites send nothing to each other, so only the placement it lies on may reach it
    assert [r.owner for r in routes["clinic-boston"].allowed if r.kind == "artifact-store"] == [
        "clinic-boston"
    ]
    assert [r.kind for r in routes["hospital-berlin"].withheld] == ["artifact-store"]
    with pytest.raises(NetworkConfigError, match="'nowhere' is not a site"):
        plan_routes(fed, ClusterNetwork(artifact_store_placement="nowhere"))


def test_names_and_labels_the_schemas_do_not_check():
    from pipelines.deploy.names import name_errors

    ok = {"kind": "Namespace", "metadata": {"name": "fedpipe", "labels": {"a.b/c": "d-1"}}}
    assert name_errors(ok) == []
    bad = {
        "kind": "NetworkPolicy",
        "metadata": {"name": "Bad_Name", "namespace": "fed.pipe"},
        "spec": {"podSelector": {"matchLabels": {"fedpipe.dev/site": "x" * 64}}},
    }
    errors = name_errors(bad)
    assert len(errors) == 3
    assert errors[0].startswith("metadata.name: 'Bad_Name' is not a DNS-1123 subdomain")
    assert errors[1].startswith("metadata.namespace: 'fed.pipe' is not a DNS-1123 label")
    assert errors[2].startswith("spec.podSelector.matchLabels: label fedpipe.dev/site: value")


@pytest.mark.parametrize(
    ("toleration", "taint", "ok"),
    [
        ({"key": "k", "value": "v", "effect": "NoSchedule"}, ("k", "v", "NoSchedule"), True),
        ({"key": "k", "value": "v", "effect": "NoSchedule"}, ("k", "w", "NoSchedule"), False),
        ({"key": "k", "value": "v", "effect": "NoSchedule"}, ("k", "v", "NoExecute"), False),
        ({"key": "k", "value": "v"}, ("k", "v", "NoExecute"), True),  # no effect: every effect
        ({"key": "k", "operator": "Exists"}, ("k", "any", "NoSchedule"), True),
        ({"operator": "Exists"}, ("other", None, "NoExecute"), True),  # no key: every taint
    ],
)
def test_tolerations_follow_kubernetes_rules(toleration, taint, ok):
    from components.domain.models import Toleration
    from pipelines.deploy.doctor import tolerates

    assert tolerates(Toleration.parse_obj(toleration), *taint) is ok
