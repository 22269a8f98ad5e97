"""`fedpipe doctor` against the Kubernetes and KFP stand-ins on 127.0.0.1."""

from __future__ import annotations

import pytest
import yaml

from pipelines.cli import main
from pipelines.deploy.manifests import Manifests
from tests.support.paths import REPO

from .conftest import FakeCluster, own_policy_config_map

SITES = ("clinic-boston", "hospital-berlin", "hospital-paris")

pytestmark = pytest.mark.integration


def run_doctor(cluster: FakeCluster, capsys) -> tuple[int, list[str]]:
    code = main(cluster.doctor_args())
    return code, capsys.readouterr().out.splitlines()


def secret_names(manifests: Manifests) -> list[str]:
    return [o["metadata"]["name"] for o in manifests.objects() if o["kind"] == "Secret"]


def test_all_checks_pass_on_a_matching_cluster(cluster: FakeCluster, manifests: Manifests, capsys):
    code, lines = run_doctor(cluster, capsys)
    assert code == 0, "\n".join(lines)
    # namespace, nodes and policies of 4 placements, 3 own policies, each Secret, KFP API,
    # version
    total = 1 + 2 * 4 + 3 + len(secret_names(manifests)) + 2
    assert lines[-1] == f"{total} of {total} checks passed"
    assert all(line.startswith("ok    ") for line in lines[:-1])
    assert (
        "ok    nodes hospital-berlin: 1 node(s) with fedpipe.dev/site=hospital-berlin, "
        "tainted and tolerated: hospital-berlin-node-1" in lines
    )
    assert (
        "ok    secret fedpipe/hospital-paris-object-store: keys access-key, secret-key, "
        "signing-key present" in lines
    )
    assert "ok    network policies coordinator: 4 present as generated" in lines
    assert (
        "ok    own policy hospital-berlin: ConfigMap fedpipe/hospital-berlin-own-policy matches "
        f"{REPO}/policies/eu-health.yaml (policy eu-health)" in lines
    )
    assert any(
        line.startswith("ok    pipeline version federated-training sha256-") for line in lines
    )
    paths = {r.path for r in cluster.kube.requests}
    assert paths == {
        "/api/v1/nodes",
        "/api/v1/namespaces/fedpipe",
        "/apis/networking.k8s.io/v1/namespaces/fedpipe/networkpolicies",
        *(f"/api/v1/namespaces/fedpipe/secrets/{s}" for s in secret_names(manifests)),
        *(f"/api/v1/namespaces/fedpipe/configmaps/{s}-own-policy" for s in SITES),
    }  # fmt: skip
    selectors = {
        r.query.get("labelSelector") for r in cluster.kube.requests if r.path == "/api/v1/nodes"
    }
    assert "fedpipe.dev/site=coordinator" in selectors


def test_a_missing_node_label_fails_with_the_fix(
    cluster: FakeCluster, manifests: Manifests, capsys
):
    total = 1 + 2 * 4 + 3 + len(secret_names(manifests)) + 2
    node = cluster.kube.state.nodes["hospital-paris-node-1"]
    del node.metadata.labels["fedpipe.dev/site"]
    code, lines = run_doctor(cluster, capsys)
    assert code == 1
    assert (
        "FAIL  nodes hospital-paris: no node carries fedpipe.dev/site=hospital-paris; fix: label "
        "the hospital-paris pool: kubectl label node <node> fedpipe.dev/site=hospital-paris"
    ) in lines
    assert lines[-1] == f"{total - 1} of {total} checks passed; 1 failed"


def test_a_missing_taint_or_an_untolerated_one_fails(cluster: FakeCluster, capsys):
    cluster.kube.state.nodes["clinic-boston-node-1"].spec.taints = None
    cluster.kube.state.nodes["coordinator-node-1"].spec.taints[0].value = "other"
    code, lines = run_doctor(cluster, capsys)
    assert code == 1
    assert (
        "FAIL  nodes clinic-boston: node clinic-boston-node-1 lacks taint "
        "fedpipe.dev/site=clinic-boston:NoSchedule (other pods may land on clinic-boston's nodes); "
        "fix: kubectl taint nodes clinic-boston-node-1 fedpipe.dev/site=clinic-boston:NoSchedule"
    ) in lines
    assert (
        "FAIL  nodes coordinator: node coordinator-node-1 has taint fedpipe.dev/site=other:NoSchedule "
        "that coordinator's tolerations do not cover; fix: kubectl taint nodes coordinator-node-1 "
        "fedpipe.dev/site=other:NoSchedule- (or add the toleration to sites/coordinator.yaml)"
    ) in lines


def test_a_missing_or_empty_secret_key_fails_with_the_fix(cluster: FakeCluster, capsys):
    secret = cluster.kube.state.secrets[("fedpipe", "hospital-berlin-object-store")]
    del secret.data["signing-key"]
    paris = cluster.kube.state.secrets[("fedpipe", "hospital-paris-object-store")]
    paris.data["secret-key"] = ""
    del cluster.kube.state.secrets[("fedpipe", "clinic-boston-object-store")]
    code, lines = run_doctor(cluster, capsys)
    assert code == 1
    assert (
        "FAIL  secret fedpipe/hospital-berlin-object-store: key(s) missing: signing-key; fix: add "
        "them: kubectl -n fedpipe edit secret hospital-berlin-object-store (or recreate: kubectl -n "
        "fedpipe create secret generic hospital-berlin-object-store --from-literal=access-key=<access-key> "
        "--from-literal=secret-key=<secret-key> --from-literal=signing-key=<signing-key> (template "
        "manifests/secret-templates/hospital-berlin-object-store.yaml))"
    ) in lines
    assert (
        "FAIL  secret fedpipe/hospital-paris-object-store: key(s) empty: secret-key; fix: fill them: "
        "kubectl -n fedpipe edit secret hospital-paris-object-store"
    ) in lines
    assert any(
        line.startswith("FAIL  secret fedpipe/clinic-boston-object-store: missing; fix: kubectl -n "
                        "fedpipe create secret generic clinic-boston-object-store")
        for line in lines
    )  # fmt: skip


def test_a_missing_or_changed_network_policy_fails_with_the_fix(cluster: FakeCluster, capsys):
    del cluster.kube.state.network_policies[("fedpipe", "fedpipe-coordinator-egress-object-stores")]
    berlin = cluster.kube.state.network_policies[
        ("fedpipe", "fedpipe-hospital-berlin-egress-infrastructure")
    ]
    berlin.spec.egress[0].ports[0].port = 5353
    code, lines = run_doctor(cluster, capsys)
    assert code == 1
    assert (
        "FAIL  network policies coordinator: missing: fedpipe-coordinator-egress-object-stores; "
        "fix: kubectl apply -f manifests/coordinator.yaml (from `fedpipe manifests`)"
    ) in lines
    assert (
        "FAIL  network policies hospital-berlin: differ from the policies' rules: "
        "fedpipe-hospital-berlin-egress-infrastructure; fix: kubectl apply -f "
        "manifests/hospital-berlin.yaml (from `fedpipe manifests`)"
    ) in lines


def test_version_not_uploaded_and_unreachable_apis_fail(cluster: FakeCluster, capsys, tmp_path):
    cluster.kfp.state.versions.clear()
    code, lines = run_doctor(cluster, capsys)
    assert code == 1
    failed = [line for line in lines if line.startswith("FAIL")]
    assert (
        len(failed) == 1
        and "this compile's version is not uploaded; fix: fedpipe upload --host" in failed[0]
    )
    url, args = cluster.kube.url, cluster.doctor_args()
    cluster.kube.stop()
    cluster.kfp.stop()
    code = main(args)
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[0].startswith(f"FAIL  kubernetes api: cannot reach {url}")
    assert lines[1].startswith("FAIL  kfp api: cannot reach KFP host")


def test_a_wrong_token_is_refused_by_the_stand_in(cluster: FakeCluster, capsys):
    cluster.kube.token = "another"
    code, lines = run_doctor(cluster, capsys)
    assert code == 1
    assert (
        "FAIL  namespace fedpipe: cannot read it: 401 Unauthorized; fix: check your access" in lines
    )


def test_own_policy_config_maps_missing_unparsable_stricter_or_looser(cluster, capsys):
    """The ConfigMap each site's validate admits runs against: missing and unparsable fail
    with the fix; a stricter copy fails naming each difference and the refusal it causes; a
    looser one passes, naming how it differs."""
    policy = yaml.safe_load((REPO / "policies" / "eu-health.yaml").read_text())
    strict = {**policy, "dp": {**policy["dp"], "epsilon_per_round": 1.0}}
    loose = {**policy, "dp": {**policy["dp"], "lifetime_epsilon": 80.0}}
    del cluster.kube.state.config_maps[("fedpipe", "clinic-boston-own-policy")]
    for site, text in (
        ("hospital-berlin", yaml.safe_dump(strict)),
        ("hospital-paris", "dp: [not, a, policy"),
    ):
        cluster.kube.add(own_policy_config_map(site, "eu-health", text))
    code, lines = run_doctor(cluster, capsys)
    assert code == 1
    own = {line.split(":", 1)[0]: line for line in lines if " own policy " in line}
    assert own["FAIL  own policy clinic-boston"].startswith(
        "FAIL  own policy clinic-boston: ConfigMap fedpipe/clinic-boston-own-policy missing (the "
        "site admits no run); fix: the site's operator: kubectl -n fedpipe create configmap "
        "clinic-boston-own-policy --from-file=policy.json=<the site's own copy of "
    )
    assert own["FAIL  own policy hospital-berlin"].startswith(
        "FAIL  own policy hospital-berlin: ConfigMap fedpipe/hospital-berlin-own-policy differs "
        f"from {REPO}/policies/eu-health.yaml: dp.epsilon_per_round: repository 3.0, cluster "
        "1.0; the site refuses every run compiled from the repository: dp.epsilon_per_round: "
        "the pipeline allows 3, the site's own policy 1; fix: align them"
    )
    assert own["FAIL  own policy hospital-paris"].startswith(
        "FAIL  own policy hospital-paris: the site's own policy at ConfigMap "
        "fedpipe/hospital-paris-own-policy key policy.json is not a valid policy:"
    )
    cluster.kube.add(own_policy_config_map("hospital-berlin", "eu-health", yaml.safe_dump(loose)))
    code, lines = run_doctor(cluster, capsys)
    assert (
        "ok    own policy hospital-berlin: ConfigMap fedpipe/hospital-berlin-own-policy differs "
        f"from {REPO}/policies/eu-health.yaml (dp.lifetime_epsilon: repository 50.0, cluster "
        "80.0) but admits what it allows"
    ) in lines


def test_policies_asking_for_he_check_the_ckks_contexts(
    cluster: FakeCluster, capsys, tmp_path, monkeypatch, gcs_server
):
    """With the policies switched to he, doctor also reads the contexts from the object
    stores: here no site has S3 keys in its environment and the coordinator's bucket (the
    GCS stand-in) holds nothing, so each line names the site and the object or secret."""
    import shutil

    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    for name in ("eu-health.yaml", "us-health.yaml"):
        path = policies / name
        path.write_text(
            path.read_text().replace("aggregation:\n", "aggregation:\n  protection: he\n")
        )
    for var in ("FEDPIPE_S3_ACCESS_KEY", "FEDPIPE_S3_SECRET_KEY", "FEDPIPE_SECRETS_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    args = cluster.doctor_args()
    args[args.index("--policies") + 1] = str(policies)
    assert main(args) == 1
    lines = capsys.readouterr().out.splitlines()
    he = [line for line in lines if " he context " in line]
    assert [line.split(":")[0] for line in he] == [
        *(f"FAIL  he context {s}" for s in SITES),
        "FAIL  he context coordinator",
    ]
    assert "secret S3_ACCESS_KEY not found" in he[0] and "DIR/clinic-boston/he-context" in he[0]
    assert he[-1].startswith(
        "FAIL  he context coordinator: gs://fedpipe-coordinator-global/he/context.public is "
        "missing; fix: fedpipe he-setup --out DIR, then put DIR/coordinator/he-context.public"
    )
