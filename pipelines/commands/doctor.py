"""`fedpipe doctor`: is this cluster ready for the compiled pipeline? One line per check.

Through the `kubernetes` client (kube config: --kubeconfig/--context, else the usual
$KUBECONFIG / ~/.kube/config): the run namespace, each placement's nodes and NetworkPolicies,
each site's own-policy ConfigMap (present, parses, as in the repository or how it differs),
every Secret the compiled pipeline reads (keys only, values never shown); when policies ask
for `aggregation.protection: he`, through the object stores (the credentials fedpipe's tasks
read: env or $FEDPIPE_SECRETS_DIR, the coordinator's GCS credentials): each such site holds
the secret CKKS context, the coordinator only the public one, all from one setup; then through
the KFP API: that it answers and that the pipeline version of --package is uploaded. Exit codes: 0
every check passed; 1 some failed (each names its fix); 2 usage/configuration error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.commands._federation_args import add_federation_arguments, load_or_fail
from pipelines.commands._network_args import add_network_arguments, network_from_args
from pipelines.kfp_ops.connection import add_host_arguments

HELP = "check a cluster and KFP host are ready for the compiled pipeline (exit 1 on any failure)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_federation_arguments(parser)
    add_host_arguments(parser)
    parser.add_argument(
        "--package",
        type=Path,
        default=Path("dist/federated-training.yaml"),
        help="compiled pipeline YAML (default: dist/federated-training.yaml)",
    )
    parser.add_argument("--kubeconfig", default=None, help="kube config file (default: usual)")
    parser.add_argument("--context", default=None, help="kube config context (default: current)")
    parser.add_argument(
        "--manifests-dir",
        default="manifests",
        metavar="DIR",
        help="where `fedpipe manifests` wrote the objects (named in fixes; default manifests)",
    )
    add_network_arguments(parser)


def _kube_clients(args: argparse.Namespace):  # -> (ApiClient, CoreV1Api, NetworkingV1Api)
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    from pipelines.cli import CommandError

    try:
        api = config.new_client_from_config(config_file=args.kubeconfig, context=args.context)
    except (ConfigException, OSError) as exc:
        raise CommandError(f"kube config: {exc}") from None
    return api, client.CoreV1Api(api), client.NetworkingV1Api(api)


def _kfp_checks(args: argparse.Namespace, pipeline_name: str, digest: str) -> list:
    from pipelines.cli import CommandError
    from pipelines.deploy.doctor import Check
    from pipelines.kfp_ops.connection import client_from_args, host_errors
    from pipelines.kfp_ops.digest import version_name_for
    from pipelines.kfp_ops.ops import find_pipeline_id, find_version

    where = args.host or "the default KFP host"
    upload = f"fedpipe upload --host {where} --package {args.package}"
    try:
        kfp = client_from_args(args)
        with host_errors(args.host):
            kfp.list_pipelines(page_size=1)
    except CommandError as exc:
        return [Check("kfp api", False, str(exc), "check --host, the token and the network path")]
    checks = [Check("kfp api", True, f"answers at {where}")]
    name = f"pipeline version {pipeline_name} {version_name_for(digest)}"
    try:
        with host_errors(args.host):
            pid = find_pipeline_id(kfp, pipeline_name)
            version = find_version(kfp, pid, version_name_for(digest)) if pid else None
    except CommandError as exc:
        return [*checks, Check(name, False, str(exc), upload)]
    if pid is None:
        checks.append(Check(name, False, f"no pipeline {pipeline_name!r} on the host", upload))
    elif version is None:
        checks.append(Check(name, False, "this compile's version is not uploaded", upload))
    else:
        checks.append(Check(name, True, f"uploaded ({version.pipeline_version_id})"))
    return checks


def _he_checks(federation) -> list:
    """When policies ask for `aggregation.protection: he`: the CKKS contexts in the object
    stores (`pipelines.deploy.he_contexts`); nothing otherwise."""
    from pipelines.deploy.he_contexts import he_checks, he_sites, store_readers

    sites = he_sites(federation.sites, lambda s: federation.policy_of(s).aggregation.protection)
    if not sites:
        return []
    return he_checks(sites, federation.coordinator, store_readers(federation.coordinator))


def run(args: argparse.Namespace) -> int:
    import urllib3
    import yaml

    from pipelines.cli import CommandError
    from pipelines.deploy.doctor import Check, cluster_checks
    from pipelines.deploy.manifests import build_manifests
    from pipelines.deploy.network import NetworkConfigError
    from pipelines.kfp_ops.digest import PipelineYamlError, pipeline_info_of

    net = network_from_args(args)
    federation = load_or_fail(args)
    try:
        text = args.package.read_text(encoding="utf-8")
        info = pipeline_info_of(text, str(args.package))
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except OSError as exc:
        raise CommandError(f"cannot read pipeline package {args.package}: {exc}") from None
    except PipelineYamlError as exc:
        raise CommandError(str(exc)) from None
    platform = docs[1] if len(docs) > 1 else {}
    try:
        manifests = build_manifests(federation, platform, net)
    except NetworkConfigError as exc:
        raise CommandError(str(exc)) from None
    api, core, networking = _kube_clients(args)
    try:
        checks = cluster_checks(
            core,
            networking,
            api.sanitize_for_serialization,
            federation.all_sites.values(),
            manifests,
            args.manifests_dir,
            {
                sid: (
                    federation.policy_of(sid),
                    f"{args.policies}/{federation.policy_of(sid).id}.yaml",
                )
                for sid in federation.sites
            },
        )
    except urllib3.exceptions.HTTPError as exc:
        host = api.configuration.host
        reason = type(getattr(exc, "reason", exc)).__name__
        checks = [
            Check(
                "kubernetes api", False, f"cannot reach {host} ({reason})", "check the kube config"
            )
        ]
    finally:
        api.close()
    checks += _he_checks(federation)
    checks += _kfp_checks(args, info.name, info.digest)
    for check in checks:
        print(check.line())
    failed = sum(not c.ok for c in checks)
    print(
        f"{len(checks) - failed} of {len(checks)} checks passed"
        + ("" if not failed else f"; {failed} failed")
    )
    return 1 if failed else 0
