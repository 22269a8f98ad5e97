"""Shared `--sites/--policies` options and loading for commands that read a federation."""

from __future__ import annotations

import argparse

from components.domain.federation import Federation
from pipelines.cli import CommandError
from pipelines.config.loader import ConfigError, load_federation


def add_federation_arguments(parser: argparse.ArgumentParser) -> None:
    """`--sites DIR` (default sites) and `--policies DIR` (default policies)."""
    parser.add_argument("--sites", default="sites", metavar="DIR", help="folder of site YAML")
    parser.add_argument(
        "--policies", default="policies", metavar="DIR", help="folder of policy YAML"
    )


def load_or_fail(args: argparse.Namespace) -> Federation:
    """The checked federation, or CommandError carrying every `file: field: message` line."""
    try:
        return load_federation(args.sites, args.policies)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
