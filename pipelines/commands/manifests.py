"""`fedpipe manifests`: the cluster objects a federation needs, derived from its policies.

Writes into --out: `namespace.yaml`, one `<placement>.yaml` per site and the coordinator
(ServiceAccount, Role/RoleBinding for its Secrets, NetworkPolicies) and
`secret-templates/<secret>.yaml` (key names, empty values), and `minio-policies/<name>.json`
(each site MinIO's IAM policies from `pipelines.access.rules`). Every object is validated strictly
against the Kubernetes OpenAPI schemas first. Exit codes: 0 written; 1 an object failed
validation (nothing written); 2 configuration error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.commands._federation_args import add_federation_arguments, load_or_fail
from pipelines.commands._network_args import add_network_arguments, network_from_args

HELP = "write the Kubernetes objects (namespace, RBAC, NetworkPolicies, Secret templates)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_federation_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_network_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pipelines.cli import CommandError
    from pipelines.deploy import KUBERNETES_VERSION
    from pipelines.deploy.files import write_tree
    from pipelines.deploy.manifests import build_manifests, platform_spec
    from pipelines.deploy.network import NetworkConfigError
    from pipelines.deploy.validate import validation_errors

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CommandError(f"--out {args.out} exists and is not a folder")
    net = network_from_args(args)
    federation = load_or_fail(args)
    try:
        manifests = build_manifests(federation, platform_spec(federation), net)
    except NetworkConfigError as exc:
        raise CommandError(str(exc)) from None
    errors = validation_errors(manifests.objects())
    if errors:
        print(
            f"fedpipe manifests: {len(errors)} object(s) invalid for Kubernetes "
            f"{KUBERNETES_VERSION} (nothing was written):",
            file=sys.stderr,
        )
        for line in errors:
            print(f"  {line}", file=sys.stderr)
        return 1
    from pipelines.access.rules import minio_policy_files

    paths = write_tree({**manifests.texts(), **minio_policy_files(federation)}, args.out)
    print(
        f"{len(manifests.objects())} objects for {len(federation.all_sites)} placements, valid "
        f"for Kubernetes {KUBERNETES_VERSION} (strict); namespace {net.namespace}"
    )
    for path in paths:
        print(f"wrote {path}")
    return 0
