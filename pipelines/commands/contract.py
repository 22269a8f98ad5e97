"""`fedpipe contract draft FILE [--target COLUMN] [--name NAME]`: print a data contract proposal.

Reads a sample table (CSV or Parquet, by suffix) on the user's machine and prints a
`kind: DataContract` YAML proposal (`pipelines/contract_draft.py`) to stdout. It writes
nothing and talks to no federation: save the output as `sites/contracts/<name>.yaml`, edit it,
and name it in each site's `data.contract`.
Exit codes: 0 printed; 2 the file cannot be read or drafted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "draft a data contract from a sample file (prints YAML, writes nothing)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    draft = sub.add_parser("draft", help=HELP, description=HELP)
    draft.add_argument("file", type=Path, help="a sample table (*.csv, *.parquet, *.pq)")
    draft.add_argument(
        "--target", default=None, help="the target column (default: label, else the last)"
    )
    draft.add_argument("--name", default=None, help="contract name (default: the file's stem)")


def run(args: argparse.Namespace) -> int:
    from components.datasets.features import DataError
    from components.datasets.io import read_site_table
    from pipelines.contract_draft import DraftError, contract_yaml, draft_contract

    path: Path = args.file.resolve()
    try:
        frame = read_site_table(path.as_uri(), None, "draft")
        doc, notes = draft_contract(frame, args.name or path.stem, args.target)
    except (DataError, DraftError) as exc:
        print(f"fedpipe contract draft: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(contract_yaml(doc, notes, path.name))
    return 0
