"""Shared options describing the cluster's network (`manifests`, `explain`, `doctor`)."""

from __future__ import annotations

import argparse

from pipelines.cli import CommandError
from pipelines.deploy.network import (
    DEFAULT_HOST_CIDRS,
    ClusterNetwork,
    Endpoint,
    NetworkConfigError,
)

_DEFAULT = ClusterNetwork()


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """`--run-namespace`, `--kfp-namespace`, `--artifact-store[-placement]`, `--apiserver-*`,
    `--egress-cidr`."""
    g = parser.add_argument_group("cluster network")
    g.add_argument(
        "--run-namespace",
        default=_DEFAULT.namespace,
        help=f"namespace KFP runs the pipeline's pods in (default {_DEFAULT.namespace})",
    )
    g.add_argument(
        "--kfp-namespace",
        default=_DEFAULT.kfp_namespace,
        help=f"namespace of the KFP control plane (default {_DEFAULT.kfp_namespace})",
    )
    g.add_argument(
        "--artifact-store",
        default=str(_DEFAULT.artifact_store),
        metavar="HOST:PORT",
        help=f"object store of the pipeline root (default {_DEFAULT.artifact_store})",
    )
    g.add_argument(
        "--artifact-store-placement",
        default=None,
        metavar="ID",
        help="placement whose jurisdiction the artifact store is in (default: the coordinator)",
    )
    g.add_argument(
        "--apiserver-cidr",
        action="append",
        default=None,
        metavar="CIDR",
        help="Kubernetes API server address block, repeatable (default "
        f"{', '.join(_DEFAULT.apiserver_cidrs)}; see `kubectl get endpoints kubernetes`)",
    )
    g.add_argument(
        "--apiserver-port",
        type=int,
        default=_DEFAULT.apiserver_port,
        help="Kubernetes API server port (default 443)",
    )
    g.add_argument(
        "--egress-cidr",
        action="append",
        default=[],
        metavar="HOST=CIDR",
        help="address block of an external host, repeatable (built in: "
        + ", ".join(f"{h}={','.join(c)}" for h, c in DEFAULT_HOST_CIDRS.items())
        + ")",
    )


def network_from_args(args: argparse.Namespace) -> ClusterNetwork:
    """The ClusterNetwork the options describe; CommandError on malformed values."""
    import ipaddress

    hosts: dict[str, tuple[str, ...]] = dict(DEFAULT_HOST_CIDRS)
    given: dict[str, list[str]] = {}
    cidrs = args.apiserver_cidr or list(_DEFAULT.apiserver_cidrs)
    try:
        for item in args.egress_cidr:
            host, sep, cidr = item.partition("=")
            if not sep or not host:
                raise CommandError(f"--egress-cidr {item!r}: expected HOST=CIDR")
            given.setdefault(host.strip().lower(), []).append(cidr.strip())
        for cidr in [*cidrs, *(c for cs in given.values() for c in cs)]:
            ipaddress.ip_network(cidr, strict=True)
        store = Endpoint.parse(args.artifact_store)
    except ValueError as exc:  # includes NetworkConfigError
        raise CommandError(str(exc)) from None
    hosts.update({h: tuple(c) for h, c in given.items()})
    return ClusterNetwork(
        namespace=args.run_namespace,
        kfp_namespace=args.kfp_namespace,
        artifact_store=store,
        artifact_store_placement=args.artifact_store_placement,
        apiserver_cidrs=tuple(cidrs),
        apiserver_port=args.apiserver_port,
        host_cidrs=hosts,
    )


__all__ = ["NetworkConfigError", "add_network_arguments", "network_from_args"]
