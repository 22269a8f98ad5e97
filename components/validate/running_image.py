"""Which image this task actually runs in (the edge that feeds the admission's image check).

The image the pipeline names (validate's `image` input) is written by whoever compiled the
pipeline; the site checks the image its pod really runs as well:

* on Kubernetes (`KUBERNETES_SERVICE_HOST` set, as the kubelet does in every pod): the pod's
  own object, named by `FEDPIPE_POD_NAME` / `FEDPIPE_POD_NAMESPACE` (the downward API, set on
  the compiled validate task), read from the site's API server; the container `main`'s
  `status.containerStatuses[].imageID` is the digest the kubelet pulled. The task's service
  account needs `get` on pods in its namespace. Nothing else counts there:
  `FEDPIPE_POD_IMAGE` is ignored on Kubernetes, so a pipeline cannot claim an image by
  setting a variable;
* elsewhere (`fedpipe run --local`): `FEDPIPE_POD_IMAGE`, which the local runner sets to the
  container image of the task's compiled executor (what its pod would run).

Not observed (None) when neither gives a reference; the admission then refuses a run under an
image allowlist (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

POD_NAME_ENV = "FEDPIPE_POD_NAME"
POD_NAMESPACE_ENV = "FEDPIPE_POD_NAMESPACE"
LOCAL_IMAGE_ENV = "FEDPIPE_POD_IMAGE"
KUBERNETES_ENV = "KUBERNETES_SERVICE_HOST"
MAIN_CONTAINER = "main"  # the container KFP runs a task's program in


@dataclass(frozen=True)
class ObservedImage:
    """The image reference this task runs in (None: not observed) and where it came from
    (or why it could not be observed)."""

    reference: str | None
    source: str


def image_from_pod(pod: Any, container: str = MAIN_CONTAINER) -> str | None:
    """The image ID the kubelet reports for `container` of `pod` (a `V1Pod`), without a
    runtime prefix such as `docker-pullable://`; None when the pod reports none (pure)."""
    statuses = getattr(getattr(pod, "status", None), "container_statuses", None) or []
    for status in statuses:
        if status.name == container and status.image_id:
            _, sep, rest = str(status.image_id).partition("://")
            return rest if sep else str(status.image_id)
    return None


def read_own_pod(name: str, namespace: str) -> Any:
    """The pod `namespace/name` from the cluster's API server (in-cluster credentials)."""
    from kubernetes import client, config

    config.load_incluster_config()
    return client.CoreV1Api().read_namespaced_pod(name, namespace)


def _pod_errors() -> tuple[type[BaseException], ...]:
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    return (ApiException, ConfigException, HTTPError, OSError)


def observe(
    environ: Mapping[str, str], read_pod: Callable[[str, str], Any] = read_own_pod
) -> ObservedImage:
    """The image this task runs in, from the sources in the module doc's order."""
    if environ.get(KUBERNETES_ENV):
        name, namespace = environ.get(POD_NAME_ENV), environ.get(POD_NAMESPACE_ENV)
        if not name or not namespace:
            return ObservedImage(
                None,
                f"a Kubernetes pod without {POD_NAME_ENV}/{POD_NAMESPACE_ENV} (the compiled "
                f"validate task sets them from the downward API; recompile with fedpipe)",
            )
        where = f"pod {namespace}/{name}"
        try:
            pod = read_pod(name, namespace)
        except _pod_errors() as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            return ObservedImage(
                None,
                f"{where}: reading it from the API server failed ({reason}); give the task's "
                f"service account `get` on pods in {namespace}",
            )
        reference = image_from_pod(pod)
        if reference is None:
            return ObservedImage(None, f"{where}: no imageID for container {MAIN_CONTAINER!r}")
        return ObservedImage(reference, f"{where} (kubelet's imageID of {MAIN_CONTAINER!r})")
    value = environ.get(LOCAL_IMAGE_ENV)
    if value:
        return ObservedImage(value, f"{LOCAL_IMAGE_ENV} (the local runner)")
    return ObservedImage(None, f"neither a Kubernetes pod nor {LOCAL_IMAGE_ENV}")
