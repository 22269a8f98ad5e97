"""`fedpipe compile`: residency-checked, versioned KFP YAML plus the residency report.

Writes `federated-training.yaml`, `residency-report.json`, `residency-report.md` into --out.
`--image REPO@sha256:…` sets every task's image (a tag without a digest is refused unless
`--allow-mutable-image`). Exit codes: 0 written; 1 a policy forbids an artifact flow (one line per violation on stderr);
2 invalid configuration. On 1 and 2 nothing is written to --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.commands._federation_args import add_federation_arguments, load_or_fail
from pipelines.residency import ResidencyViolationError
from pipelines.task_inputs import ARG_LIMIT_BYTES, over_limit

HELP = "compile the residency-checked pipeline YAML and its residency report"
ETCD_LIMIT_BYTES = int(1.5 * 2**20)  # Kubernetes objects live in etcd (~1.5 MiB per object)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_federation_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--rounds", type=int, default=1, metavar="N", help="rounds to unroll (default 1)"
    )
    parser.add_argument(
        "--image",
        default=None,
        metavar="REPO@sha256:DIGEST",
        help="container image of every task, pinned by digest (default: the components' "
        "FEDPIPE_IMAGE tag, fine for local runs only)",
    )
    parser.add_argument(
        "--allow-mutable-image",
        action="store_true",
        help="accept an --image without a digest (its tag may later name other bytes)",
    )


def run(args: argparse.Namespace) -> int:
    from pipelines.cli import CommandError
    from pipelines.compiler import compile_federation, write_outputs

    if args.rounds < 1:
        raise CommandError(f"--rounds must be at least 1, got {args.rounds}")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CommandError(f"--out {args.out} exists and is not a folder")
    image = None
    if args.image is not None:
        from pipelines.placement.image_ref import ImageRefError, require_pinned

        try:
            image = require_pinned(args.image, args.allow_mutable_image)
        except ImageRefError as exc:
            raise CommandError(f"--image: {exc}") from None
    federation = load_or_fail(args)
    try:
        compiled = compile_federation(federation, args.rounds, image=image)
    except ResidencyViolationError as exc:
        print(f"fedpipe compile: {exc}", file=sys.stderr)
        return 1
    paths = write_outputs(compiled.files(), args.out)
    crossing = sum(d.crossing for d in compiled.decisions)
    print(
        f"compiled {len(federation.sites)} sites × {args.rounds} round(s): "
        f"{len(compiled.edges)} artifact edges, {crossing} crossing, all allowed; "
        f"version {compiled.version}"
    )
    for path in paths:
        print(f"wrote {path}")
    if image is None:
        print(
            "fedpipe compile: note: tasks name the mutable image tag of the components "
            "(FEDPIPE_IMAGE); for a cluster pass --image REPO@sha256:<digest>",
            file=sys.stderr,
        )
    for task, estimate in sorted(over_limit(compiled.inline_inputs).items()):
        print(
            f"fedpipe compile: warning: task {task} would receive about {estimate / 1024:.0f} KiB "
            f"of inline inputs; a Kubeflow pod gets them as one argument and Linux allows "
            f"{ARG_LIMIT_BYTES // 1024} KiB, so it would fail to start (split the federation)",
            file=sys.stderr,
        )
    size = len(compiled.pipeline_yaml.encode("utf-8"))
    if size > ETCD_LIMIT_BYTES:
        print(
            f"fedpipe compile: warning: the pipeline YAML is {size / 2**20:.2f} MiB; a Kubeflow "
            f"workflow above about 1.5 MiB may not fit in etcd (split the federation or use "
            f"fewer rounds per run)",
            file=sys.stderr,
        )
    return 0
