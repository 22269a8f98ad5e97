"""`fedpipe check`: schemas, cross-file checks and the static residency check of the standard flows.

Exit codes: 0 all good; 1 a standard flow is denied (one line per violation on stderr);
2 invalid configuration (every `file: field.path: message` line on stderr).
"""

from __future__ import annotations

import argparse
import sys

from pipelines.commands._federation_args import add_federation_arguments, load_or_fail
from pipelines.residency.checker import ResidencyViolationError, check_flows, violations
from pipelines.residency.standard import standard_flows

HELP = "validate sites/ and policies/ (schemas, cross-checks, residency of the standard flows)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_federation_arguments(parser)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also print every allowed crossing"
    )


def run(args: argparse.Namespace) -> int:
    federation = load_or_fail(args)
    decisions = check_flows(standard_flows(federation), federation)
    denied = violations(decisions)
    if denied:
        print(f"fedpipe check: {ResidencyViolationError(denied)}", file=sys.stderr)
        return 1
    if args.verbose:
        for decision in decisions:
            print(decision.line())
    coord = federation.coordinator
    print(
        f"ok: {len(federation.sites)} sites, coordinator {coord.id} "
        f"({coord.provider} {coord.region}, {coord.jurisdiction}), "
        f"{len(federation.policies)} policies; {len(decisions)} standard crossings allowed"
    )
    return 0
