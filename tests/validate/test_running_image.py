"""Which image the validate task runs in: the pod's status on Kubernetes, the local runner's
variable elsewhere (components.validate.running_image)."""

from __future__ import annotations

from kubernetes.client import V1ContainerStatus, V1Pod, V1PodStatus
from kubernetes.client.exceptions import ApiException

from components.validate.running_image import ObservedImage, image_from_pod, observe

DIGEST = "sha256:" + "ab" * 32
K8S = {
    "KUBERNETES_SERVICE_HOST": "10.0.0.1",
    "FEDPIPE_POD_NAME": "validate-pod",
    "FEDPIPE_POD_NAMESPACE": "fedpipe",
}


def pod(*statuses: tuple[str, str]) -> V1Pod:
    return V1Pod(
        status=V1PodStatus(
            container_statuses=[
                V1ContainerStatus(name=n, image_id=i, image="x", ready=True, restart_count=0)
                for n, i in statuses
            ]
        )
    )


def test_the_kubelets_image_id_of_the_main_container_without_runtime_prefix():
    p = pod(("kfp-launcher", "l@sha256:" + "00" * 32), ("main", f"docker-pullable://r/f@{DIGEST}"))
    assert image_from_pod(p) == f"r/f@{DIGEST}"
    assert image_from_pod(pod(("main", f"r/f@{DIGEST}"))) == f"r/f@{DIGEST}"
    assert image_from_pod(pod(("main", ""))) is None and image_from_pod(V1Pod()) is None


def test_on_kubernetes_the_pod_is_read_and_the_local_variable_ignored():
    asked = []

    def read(name: str, namespace: str) -> V1Pod:
        asked.append((name, namespace))
        return pod(("main", f"r/f@{DIGEST}"))

    env = {**K8S, "FEDPIPE_POD_IMAGE": "claimed@sha256:" + "cd" * 32}
    assert observe(env, read) == ObservedImage(
        f"r/f@{DIGEST}", "pod fedpipe/validate-pod (kubelet's imageID of 'main')"
    )
    assert asked == [("validate-pod", "fedpipe")]


def test_on_kubernetes_without_pod_identity_or_api_access_nothing_is_observed():
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "FEDPIPE_POD_IMAGE": f"r@{DIGEST}"}
    seen = observe(env, lambda n, ns: pod(("main", f"r@{DIGEST}")))
    assert seen.reference is None and "FEDPIPE_POD_NAME/FEDPIPE_POD_NAMESPACE" in seen.source

    def forbidden(name: str, namespace: str) -> V1Pod:
        raise ApiException(status=403, reason="Forbidden")

    seen = observe(K8S, forbidden)
    assert seen == ObservedImage(
        None,
        "pod fedpipe/validate-pod: reading it from the API server failed (Forbidden); give the "
        "task's service account `get` on pods in fedpipe",
    )


def test_locally_the_runners_variable_or_nothing():
    assert observe({"FEDPIPE_POD_IMAGE": f"r@{DIGEST}"}) == ObservedImage(
        f"r@{DIGEST}", "FEDPIPE_POD_IMAGE (the local runner)"
    )
    assert observe({}).reference is None
