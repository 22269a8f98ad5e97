"""Shared `--host` / auth options of the commands that talk to a KFP host."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from typing import Any

from pipelines.cli import CommandError


def add_host_arguments(parser: argparse.ArgumentParser) -> None:
    """`--host`, `--existing-token`, `--cookies`, `--namespace`."""
    parser.add_argument(
        "--host",
        default=os.environ.get("KF_PIPELINES_ENDPOINT"),
        help="KFP API endpoint, e.g. https://kfp.example.org/pipeline"
        " (default: $KF_PIPELINES_ENDPOINT, else the kube config)",
    )
    parser.add_argument(
        "--existing-token",
        default=os.environ.get("FEDPIPE_KFP_TOKEN"),
        help="bearer token for the host (default: $FEDPIPE_KFP_TOKEN; otherwise kfp's usual"
        " settings: ~/.config/kfp/context.json, KF_PIPELINES_* client ids)",
    )
    parser.add_argument("--cookies", default=None, help="cookie header for the host, if any")
    parser.add_argument(
        "--namespace", default="kubeflow", help="Kubernetes namespace (multi-user KFP)"
    )


def client_from_args(args: argparse.Namespace) -> Any:
    """A connected `kfp.Client`, or a `CommandError` saying why not."""
    from pipelines.kfp_ops.ops import connect

    with host_errors(args.host):
        return connect(
            args.host,
            existing_token=args.existing_token,
            cookies=args.cookies,
            namespace=args.namespace,
        )


@contextlib.contextmanager
def host_errors(host: str | None) -> Iterator[None]:
    """Turn API and connection failures into one-line `CommandError`s naming the host."""
    import kfp_server_api
    import urllib3

    from pipelines.kfp_ops.cron import CronError
    from pipelines.kfp_ops.digest import PipelineYamlError
    from pipelines.kfp_ops.ops import KfpOpsError
    from pipelines.kfp_ops.params import ParamError

    where = host or "the default KFP host"
    try:
        yield
    except (KfpOpsError, CronError, PipelineYamlError, ParamError) as exc:
        raise CommandError(str(exc)) from exc
    except kfp_server_api.ApiException as exc:
        raise CommandError(
            f"KFP host {where} answered {exc.status} {exc.reason}: {exc.body}"
        ) from exc
    except (urllib3.exceptions.HTTPError, OSError, TimeoutError) as exc:
        raise CommandError(f"cannot reach KFP host {where}: {exc}") from exc
