"""The Kubernetes API stand-in, through the official `kubernetes` client."""

from __future__ import annotations

import base64

import pytest
from kubernetes import client

from pipelines.localstack.k8s_api import KubeApiServer, parse_label_selector

pytestmark = pytest.mark.integration


@pytest.fixture()
def kube():
    with KubeApiServer("t0ken") as server:
        api = client.ApiClient(
            client.Configuration(host=server.url, api_key={"authorization": "Bearer t0ken"})
        )
        yield server, client.CoreV1Api(api)
        api.close()


def test_label_selectors():
    assert parse_label_selector("a=1, b==2,c!=3,d,!e") == [
        ("a", "=", "1"), ("b", "=", "2"), ("c", "!=", "3"), ("d", "exists", None),
        ("e", "!exists", None),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="set-based"):
        parse_label_selector("a in (1,2)")


def test_objects_are_client_models_and_unknown_fields_are_refused(kube):
    server, core = kube
    server.add(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"a": "1"}}}
    )
    server.add(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2", "labels": {"a": "2"}}}
    )
    assert [n.metadata.name for n in core.list_node(label_selector="a=2").items] == ["n2"]
    assert [n.metadata.name for n in core.list_node(label_selector="a!=2").items] == ["n1"]
    bad = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "x"}, "spec": {"taintz": []}}
    with pytest.raises(
        ValueError, match=r"Node.spec: unknown field\(s\) \['taintz'\] for V1NodeSpec"
    ):
        server.add(bad)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns"},
              "stringData": {"k": "value"}}  # fmt: skip
    server.add(secret)
    got = core.read_namespaced_secret("s", "ns")
    assert isinstance(got, client.V1Secret) and base64.b64decode(got.data["k"]) == b"value"
    with pytest.raises(client.ApiException) as missing:
        core.read_namespaced_secret("nope", "ns")
    assert missing.value.status == 404 and '"reason": "NotFound"' in missing.value.body
    assert [r.path for r in server.requests][-1] == "/api/v1/namespaces/ns/secrets/nope"
