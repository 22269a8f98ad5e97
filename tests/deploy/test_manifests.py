"""`fedpipe manifests` on the example federation: strict schema validation, RBAC, Secret
templates, and which peers each placement's pods may reach (before and after the coordinator
moves to the US)."""

from __future__ import annotations

import shutil
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from pipelines.cli import main
from pipelines.config import load_federation
from pipelines.deploy import KUBERNETES_VERSION
from pipelines.deploy.netpol import Peer, Pod, egress_allowed
from pipelines.deploy.secrets import secret_refs
from pipelines.deploy.validate import validation_errors
from pipelines.placement.labels import SITE_LABEL
from tests.support.paths import REPO

GOLDEN = REPO / "pipelines" / "compiled" / "federated-training.yaml"
NS = "fedpipe"
SITES = ("clinic-boston", "hospital-berlin", "hospital-paris")
PLACEMENTS = (*SITES, "coordinator")


def ns_pod(namespace: str, **labels: str) -> Pod:
    return Pod(namespace, labels, {"kubernetes.io/metadata.name": namespace})


# The far ends a task pod might try; names -> Peer
PEERS: dict[str, Peer] = {
    "dns": Peer(53, "UDP", pod=ns_pod("kube-system", **{"k8s-app": "kube-dns"})),
    "apiserver": Peer(443, ip="10.96.0.1"),
    "kfp-api": Peer(8888, pod=ns_pod("kubeflow", app="ml-pipeline")),
    "metadata": Peer(8080, pod=ns_pod("kubeflow", component="metadata-grpc-server")),
    "artifact-store": Peer(9000, pod=ns_pod("kubeflow", app="minio")),
    "gcs": Peer(443, ip="199.36.153.5"),
    "internet": Peer(443, ip="93.184.216.34"),
    "other-kube-system": Peer(443, pod=ns_pod("kube-system", component="etcd")),
    **{f"store:{s}": Peer(9000, pod=ns_pod(s, app="minio")) for s in SITES},
    **{f"pod:{s}": Peer(8080, pod=ns_pod(NS, **{SITE_LABEL: s})) for s in PLACEMENTS},
}
INFRA = {"dns", "apiserver", "kfp-api", "metadata"}


def generate(tmp_path: Path, sites: Path = REPO / "sites") -> Path:
    out = tmp_path / "manifests"
    args = ["manifests", "--sites", str(sites), "--policies", str(REPO / "policies")]
    assert main([*args, "--out", str(out)]) == 0
    return out


def load_all(out: Path) -> list[dict]:
    return [d for f in sorted(out.rglob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]


def reachable(objects: list[dict]) -> dict[str, set[str]]:
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    return {
        p: {
            name
            for name, peer in PEERS.items()
            if egress_allowed(policies, ns_pod(NS, **{SITE_LABEL: p}), peer)
        }
        for p in PLACEMENTS
    }


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> list[dict]:
    return load_all(generate(tmp_path_factory.mktemp("m")))


def test_every_file_validates_strict(example):
    # 3 of them the coordinator-read Secret templates, 1 the coordinator's Role (its audit key)
    assert len(example) == 36
    for obj in example:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert validation_errors(example) == []
    (ns,) = [o for o in example if o["kind"] == "Namespace"]
    broken = {**ns, "metadata": {**ns["metadata"], "lables": {}}}
    assert validation_errors([broken]) == [
        f"Namespace/{NS}: metadata: Additional properties are not allowed ('lables' was unexpected)"
    ]


def test_namespace_enforces_restricted_pod_security(example):
    (ns,) = [o for o in example if o["kind"] == "Namespace"]
    labels = ns["metadata"]["labels"]
    assert ns["metadata"]["name"] == NS
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "v1.30"


def test_roles_get_only_the_secrets_their_tasks_read(example):
    fed = load_federation(REPO / "sites", REPO / "policies")
    compiled = secret_refs(list(yaml.safe_load_all(GOLDEN.read_text()))[1])
    roles = {o["metadata"]["labels"][SITE_LABEL]: o for o in example if o["kind"] == "Role"}
    for pid in PLACEMENTS:
        rule = roles[pid]["rules"][0]
        assert rule["verbs"] == ["get"] and rule["resources"] == ["secrets"]
        assert rule["resourceNames"] == sorted(compiled[pid])
    for sid in SITES:
        assert roles[sid]["rules"][0]["resourceNames"] == [fed.sites[sid].object_store.secret_name]
        # validate reads its own pod (which image it runs in), with the account's token
        assert roles[sid]["rules"][1] == {
            "apiGroups": [""],
            "resources": ["pods"],
            "verbs": ["get"],
        }
    accounts = {
        o["metadata"]["labels"][SITE_LABEL]: o for o in example if o["kind"] == "ServiceAccount"
    }
    for pid in PLACEMENTS:
        assert accounts[pid]["automountServiceAccountToken"] is (pid in SITES)
        assert len(roles[pid]["rules"]) == (2 if pid in SITES else 1)
    bindings = [o for o in example if o["kind"] == "RoleBinding"]
    assert {(b["roleRef"]["name"], b["subjects"][0]["name"]) for b in bindings} == {
        (f"fedpipe-{p}-secrets", f"fedpipe-{p}") for p in PLACEMENTS
    }


def test_secret_templates_carry_key_names_only(example):
    fed = load_federation(REPO / "sites", REPO / "policies")
    compiled = secret_refs(list(yaml.safe_load_all(GOLDEN.read_text()))[1])
    secrets = {o["metadata"]["name"]: o for o in example if o["kind"] == "Secret"}
    assert set(secrets) == {name for refs in compiled.values() for name in refs}
    for obj in secrets.values():
        assert "data" not in obj and set(obj["stringData"].values()) == {""}
    for sid in SITES:  # a site's own Secret: store credentials and its signing key
        name = fed.sites[sid].object_store.secret_name
        assert secrets[name]["stringData"] == {
            "access-key": "",
            "secret-key": "",
            "signing-key": "",
        }
        assert sid in secrets[name]["metadata"]["annotations"]["fedpipe.dev/read-by"]


def test_network_policy_semantics_example(example):
    got = reachable(example)
    for sid in SITES:
        assert got[sid] == INFRA | {"artifact-store", f"store:{sid}"}, sid
    assert got["coordinator"] == INFRA | {"artifact-store", "gcs"} | {f"store:{s}" for s in SITES}
    for p in PLACEMENTS:  # default-deny ingress too
        deny = [o for o in example if o["metadata"]["name"] == f"fedpipe-{p}-default-deny"]
        assert deny[0]["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert "ingress" not in deny[0]["spec"]


def test_coordinator_in_the_us_cuts_eu_routes_and_compile_stays_denied(tmp_path, capsys):
    sites = tmp_path / "sites"
    shutil.copytree(REPO / "sites", sites)
    coord = sites / "coordinator.yaml"
    doc = yaml.safe_load(coord.read_text())
    doc.update(region="us-east1", jurisdiction="US")
    coord.write_text(yaml.safe_dump(doc, sort_keys=False))

    got = reachable(load_all(generate(tmp_path, sites)))
    eu = ("hospital-berlin", "hospital-paris")
    for sid in eu:  # the EU sites' route to the (now US) coordinator's artifact store is gone
        assert got[sid] == INFRA | {f"store:{sid}"}, sid
    assert got["clinic-boston"] == INFRA | {"artifact-store", "store:clinic-boston"}
    # and the coordinator can no longer read the EU sites' stores
    assert got["coordinator"] == INFRA | {"artifact-store", "gcs", "store:clinic-boston"}

    out = tmp_path / "compiled"
    args = ["--sites", str(sites), "--policies", str(REPO / "policies"), "--out", str(out)]
    assert main(["compile", *args]) == 1
    assert "residency violations" in capsys.readouterr().err
    assert not out.exists()


def test_an_external_store_without_address_blocks_is_refused(tmp_path, capsys):
    sites = tmp_path / "sites"
    shutil.copytree(REPO / "sites", sites)
    paris = sites / "hospital-paris.yaml"
    paris.write_text(
        paris.read_text().replace("minio.hospital-paris.svc:9000", "s3.paris.example:443")
    )
    out = tmp_path / "m"
    args = ["manifests", "--sites", str(sites), "--policies", str(REPO / "policies")]
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "endpoint s3.paris.example:443" in err and "--egress-cidr s3.paris.example=CIDR" in err
    assert not out.exists()
    assert main([*args, "--out", str(out), "--egress-cidr", "s3.paris.example=192.0.2.0/28"]) == 0
    paris_pol = [
        o
        for o in load_all(out)
        if o["metadata"]["name"] == "fedpipe-hospital-paris-egress-object-stores"
    ]
    assert paris_pol[0]["spec"]["egress"] == [
        {"to": [{"ipBlock": {"cidr": "192.0.2.0/28"}}], "ports": [{"protocol": "TCP", "port": 443}]}
    ]


def test_an_invalid_run_namespace_is_refused_before_writing(tmp_path, capsys):
    out = tmp_path / "m"
    args = ["manifests", "--sites", str(REPO / "sites"), "--policies", str(REPO / "policies")]
    assert main([*args, "--out", str(out), "--run-namespace", "Fed_Pipe"]) == 1
    err = capsys.readouterr().err
    assert "(nothing was written)" in err
    assert "Namespace/Fed_Pipe: metadata.name: 'Fed_Pipe' is not a DNS-1123 label" in err
    assert not out.exists()
