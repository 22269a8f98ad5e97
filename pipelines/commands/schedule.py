"""`fedpipe schedule`: create or replace a recurring run of one pipeline version."""

from __future__ import annotations

import argparse

from pipelines.kfp_ops.connection import add_host_arguments, client_from_args, host_errors

HELP = "create or update a recurring run (cron with 6 fields, seconds first)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_host_arguments(parser)
    parser.add_argument("--pipeline-name", required=True, help="pipeline name on the host")
    parser.add_argument(
        "--version", required=True, help="pipeline version: its digest (or a unique prefix)"
    )
    parser.add_argument(
        "--cron",
        required=True,
        help="6 fields, seconds first: '0 0 2 * * *' = every day at 02:00:00",
    )
    parser.add_argument(
        "--max-concurrency", type=int, default=1, help="runs at the same time (default 1)"
    )
    parser.add_argument(
        "--catchup",
        action="store_true",
        help="backfill missed intervals (default: off, only the latest is run)",
    )
    parser.add_argument("--experiment", default="fedpipe", help="experiment (default fedpipe)")
    parser.add_argument(
        "--name", default=None, help="recurring run name (default <pipeline-name>-recurring)"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="pipeline parameter, repeatable; resume=true is always set",
    )


def run(args: argparse.Namespace) -> int:
    from pipelines.kfp_ops.cron import validate_cron
    from pipelines.kfp_ops.ops import ScheduleRequest, schedule

    req = ScheduleRequest(
        pipeline_name=args.pipeline_name,
        version=args.version,
        cron=args.cron,
        max_concurrency=args.max_concurrency,
        catchup=args.catchup,
        experiment=args.experiment,
        params=tuple(args.param),
        name=args.name,
    )
    with host_errors(args.host):
        validate_cron(req.cron)  # refuse a bad cron before connecting
    client = client_from_args(args)
    with host_errors(args.host):
        result = schedule(client, req)
    verb = f"replaced {', '.join(result.replaced)} with" if result.replaced else "created"
    print(
        f"recurring run {result.run_name!r}: {verb} {result.recurring_run_id} in experiment"
        f" {req.experiment!r}; version {result.version_name}; cron '{req.cron}';"
        f" max concurrency {req.max_concurrency}; catch-up {'on' if req.catchup else 'off'}"
    )
    print("parameters: " + ", ".join(f"{k}={v!r}" for k, v in sorted(result.parameters.items())))
    return 0
