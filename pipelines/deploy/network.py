"""Which endpoints each placement's pods may reach, from the residency checker's decisions (pure).

Every pod of a placement (selected by its `fedpipe.dev/site` label) may reach DNS, the
Kubernetes API and the KFP control plane (metadata and status; no artifact bytes) and its own
object store. The rest comes from `check_flows(standard_flows(...))`, the evaluation
`fedpipe check` and the compiler's checker make:

* the KFP artifact store (pipeline root), which KFP uploads every task output to, lies on one
  placement (default: the coordinator's). Another placement's pods may reach it only when at
  least one of their standard crossings to that placement is allowed: a site whose policy lets
  nothing go there has no route to it.
* a class whose artifact is a reference to an object in the producer's own bucket
  (`PULLED_FROM_SOURCE_STORE`: export's `dp_update`, which aggregate reads there) opens the
  consumer placement's route to the producer's store, only when that crossing is allowed.

Limits: NetworkPolicies see addresses and ports, not artifact classes, and select pods by
placement, not by stage; an in-cluster service is reached by its namespace (not its pods).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from components.domain.federation import Federation
from components.domain.models import Site
from pipelines.residency import ResidencyDecision, check_flows, standard_flows

# Classes whose bytes stay in the producer's store; the consumer reads them there.
PULLED_FROM_SOURCE_STORE = frozenset({"dp_update"})
GCS_ENDPOINT = "storage.googleapis.com:443"
# restricted.googleapis.com (Private Google Access with VPC Service Controls); override per host
DEFAULT_HOST_CIDRS: Mapping[str, tuple[str, ...]] = {"storage.googleapis.com": ("199.36.153.4/30",)}


class NetworkConfigError(ValueError):
    """An endpoint that cannot be expressed as a NetworkPolicy peer; the message says the fix."""


@dataclass(frozen=True)
class Endpoint:
    """`host:port` of a service a task talks to."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, default_port: int = 443) -> Endpoint:
        host, sep, port = text.strip().rpartition(":")
        if not sep:
            host, port = text.strip(), str(default_port)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise NetworkConfigError(f"endpoint {text!r}: expected host:port")
        return cls(host.lower(), int(port))

    @property
    def namespace(self) -> str | None:
        """The namespace of an in-cluster service name (`svc.ns.svc[.cluster.local]`), or None."""
        labels = self.host.split(".")
        if len(labels) >= 3 and labels[2] == "svc":
            return labels[1]
        return None

    @property
    def ip(self) -> str | None:
        try:
            return str(ipaddress.ip_address(self.host))
        except ValueError:
            return None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


DEFAULT_ARTIFACT_STORE = Endpoint("minio-service.kubeflow.svc", 9000)  # standalone KFP's MinIO


@dataclass(frozen=True)
class ClusterNetwork:
    """What the generated rules need to know about the cluster (defaults: a standalone KFP).

    namespace: where KFP runs the pipeline's pods (the run's namespace / KFP profile).
    kfp_namespace, kfp_ports: the KFP control plane (ml-pipeline 8887 gRPC / 8888 HTTP,
        metadata-grpc-service 8080).
    artifact_store: the pipeline root's object store; artifact_store_placement: the placement
        it lies on (None: the coordinator's).
    apiserver_cidrs, apiserver_port: the Kubernetes API server's addresses (the launcher reads
        its ConfigMap, Argo's executor reports task results there).
    host_cidrs: address blocks of external hosts (a NetworkPolicy cannot name a host).
    """

    namespace: str = "fedpipe"
    kfp_namespace: str = "kubeflow"
    kfp_ports: tuple[int, ...] = (8080, 8887, 8888)
    artifact_store: Endpoint = DEFAULT_ARTIFACT_STORE
    artifact_store_placement: str | None = None
    apiserver_cidrs: tuple[str, ...] = ("10.96.0.1/32",)
    apiserver_port: int = 443
    dns_namespace: str = "kube-system"
    dns_pod_labels: Mapping[str, str] = field(default_factory=lambda: {"k8s-app": "kube-dns"})
    host_cidrs: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_HOST_CIDRS)
    )


@dataclass(frozen=True)
class Route:
    """One endpoint a placement's pods may reach, or (in `withheld`) may not, and why.

    kind: "dns", "kubernetes-api", "kfp-control-plane", "artifact-store" or "object-store".
    owner: the placement the endpoint belongs to (object stores, artifact store), else "".
    rules: residency rules that opened it ("eu-health rules.dp_update[0]"), or that were
        searched when withheld; () for infrastructure.
    """

    kind: str
    owner: str
    endpoint: str
    reason: str
    rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlacementRoutes:
    """Routes of one placement's pods: allowed and (for `explain`) withheld."""

    placement: str
    allowed: tuple[Route, ...]
    withheld: tuple[Route, ...]


def store_endpoint(site: Site) -> Endpoint:
    """The site's object-store endpoint (GCS: the public JSON API host)."""
    store = site.object_store
    if store.type == "gcs":
        return Endpoint.parse(GCS_ENDPOINT)
    assert store.endpoint is not None  # the model requires one for s3
    return Endpoint.parse(store.endpoint, 443 if store.secure else 80)


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def plan_routes(
    federation: Federation,
    net: ClusterNetwork,
    decisions: list[ResidencyDecision] | None = None,
) -> dict[str, PlacementRoutes]:
    """{placement id: its routes}, placements in federation order (coordinator last).

    `decisions` defaults to `check_flows(standard_flows(federation), federation)`.
    """
    if decisions is None:
        decisions = check_flows(standard_flows(federation), federation)
    store_at = net.artifact_store_placement or federation.coordinator.id
    if store_at not in federation.all_sites:
        raise NetworkConfigError(
            f"artifact store placement {store_at!r} is not a site of the federation "
            f"(known: {', '.join(federation.all_sites)})"
        )
    api = ", ".join(f"{c}:{net.apiserver_port}" for c in net.apiserver_cidrs)
    kfp = f"{net.kfp_namespace} namespace, ports {', '.join(map(str, net.kfp_ports))}"
    out: dict[str, PlacementRoutes] = {}
    for pid, site in federation.all_sites.items():
        allowed = [
            Route("dns", "", f"{net.dns_namespace}/kube-dns:53", "name resolution"),
            Route("kubernetes-api", "", api, "KFP launcher and Argo executor report status"),
            Route("kfp-control-plane", "", kfp, "KFP API and ML metadata (no artifact bytes)"),
            Route("object-store", pid, str(store_endpoint(site)), "its own object store"),
        ]
        withheld: list[Route] = []
        artifact = str(net.artifact_store)
        if pid == store_at:
            allowed.append(
                Route(
                    "artifact-store", store_at, artifact, "the artifact store is on its placement"
                )
            )
        else:
            out_edges = [
                d
                for d in decisions
                if d.edge.source == pid and d.edge.dest == store_at and d.crossing
            ]
            ok = [d for d in out_edges if d.allowed]
            classes = ", ".join(_unique([d.edge.artifact_class or "" for d in ok]))
            if ok:
                allowed.append(
                    Route(
                        "artifact-store", store_at, artifact,
                        f"its {classes} may reach {store_at}, where the artifact store is",
                        _unique([d.rule or "" for d in ok]),
                    )
                )  # fmt: skip
            else:
                withheld.append(
                    Route(
                        "artifact-store", store_at, artifact,
                        f"no class of {pid} may reach {store_at}, where the artifact store is",
                        _unique([d.rule or "" for d in out_edges]),
                    )
                )  # fmt: skip
        pulls: dict[str, list[ResidencyDecision]] = {}
        for d in decisions:
            if (
                d.edge.dest == pid
                and d.crossing
                and d.edge.artifact_class in PULLED_FROM_SOURCE_STORE
            ):
                pulls.setdefault(d.edge.source, []).append(d)
        for source, ds in pulls.items():
            endpoint = str(store_endpoint(federation.all_sites[source]))
            classes = ", ".join(_unique([d.edge.artifact_class or "" for d in ds]))
            if all(d.allowed for d in ds):
                allowed.append(
                    Route(
                        "object-store", source, endpoint,
                        f"reads {source}'s {classes} in {source}'s store",
                        _unique([d.rule or "" for d in ds]),
                    )
                )  # fmt: skip
            else:
                withheld.append(
                    Route(
                        "object-store", source, endpoint,
                        f"{source}'s {classes} may not reach {pid}",
                        _unique([d.rule or "" for d in ds if not d.allowed]),
                    )
                )  # fmt: skip
        out[pid] = PlacementRoutes(pid, tuple(allowed), tuple(withheld))
    return out
