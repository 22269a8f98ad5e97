"""`fedpipe compile-check`: fail when the checked-in YAML is stale or a policy is violated.

Compiles the federation afresh (nothing written) and compares it with --golden, both with the
`sdkVersion` line stripped. Exit codes: 0 up to date; 1 differs (a short unified diff on
stderr) or a residency violation; 2 invalid configuration or unreadable golden file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.commands._federation_args import add_federation_arguments, load_or_fail
from pipelines.residency import ResidencyViolationError

HELP = "fail when the checked-in pipeline YAML differs from a fresh compile"
MAX_DIFF_LINES = 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_federation_arguments(parser)
    parser.add_argument(
        "--golden", required=True, metavar="FILE", help="checked-in compiled pipeline YAML"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, metavar="N", help="rounds it was compiled with"
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="rewrite --golden with the fresh compile instead of failing (after a change)",
    )


def run(args: argparse.Namespace) -> int:
    from pipelines.cli import CommandError
    from pipelines.compiler import compile_federation, strip_sdk_version, unified_diff

    golden_path = Path(args.golden)
    try:
        golden = "" if args.update else golden_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"--golden {golden_path}: cannot read ({exc.strerror})") from None
    federation = load_or_fail(args)
    try:
        compiled = compile_federation(federation, args.rounds)
    except ResidencyViolationError as exc:
        print(f"fedpipe compile-check: {exc}", file=sys.stderr)
        return 1
    if args.update:
        golden_path.parent.mkdir(parents=True, exist_ok=True)
        golden_path.write_text(compiled.pipeline_yaml, encoding="utf-8")
        print(f"updated {golden_path} (version {compiled.version})")
        return 0
    if strip_sdk_version(golden) == strip_sdk_version(compiled.pipeline_yaml):
        print(f"ok: {golden_path} is up to date (version {compiled.version})")
        return 0
    diff = unified_diff(golden, compiled.pipeline_yaml, str(golden_path))
    shown = diff[:MAX_DIFF_LINES]
    more = len(diff) - len(shown)
    print(
        f"fedpipe compile-check: {golden_path} differs from a fresh compile "
        f"(sdkVersion ignored); refresh it with `fedpipe compile-check "
        f"--golden {golden_path} --update` and commit it:",
        file=sys.stderr,
    )
    print("\n".join(shown), file=sys.stderr)
    if more > 0:
        print(f"... {more} more diff lines", file=sys.stderr)
    return 1
