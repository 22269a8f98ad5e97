"""`fedpipe upload`: the compiled pipeline as a KFP pipeline version named by its digest."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.kfp_ops.connection import add_host_arguments, client_from_args, host_errors

HELP = "upload the compiled pipeline to a KFP host; the same digest twice is a no-op"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_host_arguments(parser)
    parser.add_argument(
        "--package",
        type=Path,
        default=Path("dist/federated-training.yaml"),
        help="compiled pipeline YAML (default: dist/federated-training.yaml)",
    )
    parser.add_argument(
        "--pipeline-name", default=None, help="pipeline name on the host (default: from the YAML)"
    )


def run(args: argparse.Namespace) -> int:
    from pipelines.kfp_ops.digest import pipeline_info_of
    from pipelines.kfp_ops.ops import KfpOpsError, upload

    with host_errors(args.host):  # a missing or digest-less YAML fails before connecting
        try:
            text = args.package.read_text(encoding="utf-8")
        except OSError as exc:
            raise KfpOpsError(f"cannot read pipeline package {args.package}: {exc}") from exc
        pipeline_info_of(text, str(args.package))
    client = client_from_args(args)
    with host_errors(args.host):
        result = upload(client, args.package, args.pipeline_name)
    what = "created" if result.created_version else "already there (no-op)"
    print(f"pipeline {result.pipeline_name!r} ({result.pipeline_id})")
    print(f"version {result.version_name} ({result.version_id}): {what}")
    return 0
