"""`fedpipe` command line: a thin dispatcher over `pipelines/commands/<name>.py`.

Each command module defines `HELP: str` (its line in `fedpipe --help`, copied into `COMMANDS`
so that listing imports no command), `add_arguments(parser) -> None` and `run(args) -> int`;
its docstring is the command's page (`fedpipe COMMAND --help`). Modules are imported only when
their command runs, so `fedpipe check` never pays for TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command name -> (module, one-line help: the module's HELP, tests/commands/test_cli_help.py)
COMMANDS: dict[str, tuple[str, str]] = {
    "check": (
        "pipelines.commands.check",
        "validate sites/ and policies/ (schemas, cross-checks, residency of the standard flows)",
    ),
    "explain": (
        "pipelines.commands.explain",
        "who sends what where, readable (per site: class -> allowed destinations, DP limits)",
    ),
    "compile": (
        "pipelines.commands.compile",
        "compile the residency-checked pipeline YAML and its residency report",
    ),
    "compile-check": (
        "pipelines.commands.compile_check",
        "fail when the checked-in pipeline YAML differs from a fresh compile",
    ),
    "manifests": (
        "pipelines.commands.manifests",
        "write the Kubernetes objects (namespace, RBAC, NetworkPolicies, Secret templates)",
    ),
    "doctor": (
        "pipelines.commands.doctor",
        "check a cluster and KFP host are ready for the compiled pipeline (exit 1 on any failure)",
    ),
    "run": (
        "pipelines.commands.run",
        "run the federation locally through kfp.local (object stores on 127.0.0.1)",
    ),
    "upload": (
        "pipelines.commands.upload",
        "upload the compiled pipeline to a KFP host; the same digest twice is a no-op",
    ),
    "schedule": (
        "pipelines.commands.schedule",
        "create or update a recurring run (cron with 6 fields, seconds first)",
    ),
    "simulate": (
        "pipelines.commands.simulate",
        "run the same federation in TFF's simulator (DP off, FedAvg)",
    ),
    "contract": (
        "pipelines.commands.contract",
        "draft a data contract from a sample file (prints YAML, writes nothing)",
    ),
    "audit": (
        "pipelines.commands.audit",
        "verify (or show) a run's tamper-evident audit chains and print their timeline",
    ),
    "he-setup": (
        "pipelines.commands.he_setup",
        "make the CKKS context for aggregation.protection he (secret key for the sites only)",
    ),
}


DESCRIPTION = (
    "fedpipe: residency-aware federated learning as Kubeflow Pipelines. "
    "`fedpipe COMMAND --help` shows a command's page."
)


class CommandError(Exception):
    """An error the user can act on: printed as one message, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fedpipe` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="fedpipe", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (module_name, help_text) in COMMANDS.items():
        cmd_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:
            module = importlib.import_module(module_name)
            cmd_parser.description = (module.__doc__ or help_text).strip()
            cmd_parser.formatter_class = argparse.RawDescriptionHelpFormatter
            module.add_arguments(cmd_parser)
    args = parser.parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args))
    except CommandError as exc:
        print(f"fedpipe {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fedpipe {args.command}: interrupted", file=sys.stderr)
        return 130


def console_main() -> None:
    """The `fedpipe` console script: `main()`, then exit; after a command that loaded
    TensorFlow Federated (`simulate`) without interpreter teardown
    (`pipelines.simulate.reaper.exit_now_if_tff_loaded`)."""
    from pipelines.simulate.reaper import exit_now_if_tff_loaded

    code = main()
    exit_now_if_tff_loaded(code)
    raise SystemExit(code)


if __name__ == "__main__":
    # `python -m pipelines.cli`: run the imported module's entry point, whose CommandError is
    # the class the commands raise (this file as __main__ defines a second, unrelated one)
    from pipelines.cli import console_main as _console_main

    _console_main()
