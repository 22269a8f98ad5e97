"""A fake cluster for `fedpipe doctor`: the Kubernetes stand-in loaded with what the guide
tells a platform engineer to create, and the KFP stand-in with the compiled pipeline uploaded."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main
from pipelines.config import load_federation
from pipelines.deploy.manifests import Manifests, build_manifests
from pipelines.deploy.network import ClusterNetwork
from pipelines.localstack.k8s_api import KubeApiServer
from pipelines.localstack.kfp_api import KfpApiServer
from tests.support.paths import REPO

IMAGE = "ghcr.io/x/fedpipe@sha256:" + "c3" * 32
TOKEN_RNG_SEED = 14


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example federation compiled with a digest-pinned image."""
    out = tmp_path_factory.mktemp("dist")
    args = ["--sites", str(REPO / "sites"), "--policies", str(REPO / "policies")]
    assert main(["compile", *args, "--out", str(out), "--image", IMAGE]) == 0
    return out / "federated-training.yaml"


@pytest.fixture(scope="session")
def manifests(package: Path) -> Manifests:
    fed = load_federation(REPO / "sites", REPO / "policies")
    platform = list(yaml.safe_load_all(package.read_text()))[1]
    return build_manifests(fed, platform, ClusterNetwork())


@dataclass
class FakeCluster:
    kube: KubeApiServer
    kfp: KfpApiServer
    kubeconfig: Path
    package: Path
    secret_values: list[str]  # every secret value the cluster holds (and the API token)

    def doctor_args(self) -> list[str]:
        return [
            "doctor",
            "--sites", str(REPO / "sites"),
            "--policies", str(REPO / "policies"),
            "--kubeconfig", str(self.kubeconfig),
            "--host", self.kfp.url,
            "--package", str(self.package),
        ]  # fmt: skip


def node(name: str, site: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"fedpipe.dev/site": site, "kubernetes.io/os": "linux"},
        },
        "spec": {"taints": [{"key": "fedpipe.dev/site", "value": site, "effect": "NoSchedule"}]},
    }


def own_policy_config_map(site: str, policy: str, text: str | None = None) -> dict:
    """`kubectl -n fedpipe create configmap <site>-own-policy
    --from-file=policy.json=policies/<policy>.yaml` (or `text` as the policy)."""
    body = text if text is not None else (REPO / "policies" / f"{policy}.yaml").read_text()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{site}-own-policy", "namespace": "fedpipe"},
        "data": {"policy.json": body},
    }


@pytest.fixture()
def cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: Path, manifests: Manifests
) -> Iterator[FakeCluster]:
    """A cluster that matches the manifests: nodes, namespace, policies, filled Secrets."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.config/kfp, no ~/.kube
    rng = random.Random(TOKEN_RNG_SEED)
    token = f"tok-{rng.getrandbits(128):032x}"
    values = [token]
    with KubeApiServer(token) as kube, KfpApiServer() as kfp:
        for site in ("clinic-boston", "hospital-berlin", "hospital-paris", "coordinator"):
            kube.add(node(f"{site}-node-1", site))
        kube.add(node("general-1", "none") | {"metadata": {"name": "general-1"}, "spec": {}})
        for obj in manifests.objects():
            if obj["kind"] == "Secret":
                filled = {k: f"v-{rng.getrandbits(96):024x}" for k in obj["stringData"]}
                values += filled.values()
                obj = {**obj, "stringData": filled}
            if obj["kind"] in ("Namespace", "Secret", "NetworkPolicy"):
                kube.add(obj)
        fed = load_federation(REPO / "sites", REPO / "policies")
        for site in fed.sites.values():  # each site's operator: its own copy of its policy
            kube.add(own_policy_config_map(site.id, fed.policy_of(site.id).id))
        assert main(["upload", "--host", kfp.url, "--package", str(package)]) == 0
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "stand-in", "cluster": {"server": kube.url}}],
                    "users": [{"name": "engineer", "user": {"token": token}}],
                    "contexts": [
                        {"name": "fed", "context": {"cluster": "stand-in", "user": "engineer"}}
                    ],
                    "current-context": "fed",
                }
            )
        )
        yield FakeCluster(kube, kfp, kubeconfig, package, values)
