"""`fedpipe run --local`: train the federation on this machine through kfp.local.

Exit codes: 0 the run finished (runs/<run-id>/summary.json written); 1 a task failed (the
message names task, site and round); 2 a usage or configuration error; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines.cli import CommandError
from pipelines.commands._federation_args import add_federation_arguments

HELP = "run the federation locally through kfp.local (object stores on 127.0.0.1)"


def _param(text: str) -> tuple[str, object]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: use NAME=VALUE")
    return name, parse_value(raw)


def parse_value(raw: str) -> object:
    """A JSON number, string, true/false or null as such; anything else (objects too) as text."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, int | float | bool | str) or value is None else raw


class _Terminal:
    """Permanent progress lines, plus (on a terminal) one transient 'running: ...' line."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.current = ""

    def line(self, text: str) -> None:
        if self.tty and self.current:
            sys.stdout.write("\r\033[K")
        print(text, flush=True)
        if self.tty and self.current:
            sys.stdout.write(self.current[: _width()])
            sys.stdout.flush()

    def status(self, text: str) -> None:
        if not self.tty:
            return
        self.current = text
        sys.stdout.write("\r\033[K" + text[: _width()])
        sys.stdout.flush()


def _width() -> int:
    import shutil

    return max(20, shutil.get_terminal_size().columns - 1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--local", action="store_true", required=True, help="run with kfp.local (required)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="federated rounds (default 5)")
    parser.add_argument(
        "--example",
        "--dataset",
        dest="dataset",
        default="breast_cancer",
        metavar="NAME",
        help="bundled example: the contract sites/contracts/NAME.yaml and scikit-learn's "
        "load_NAME data split over the sites (breast_cancer, digits, wine, diabetes; "
        "default breast_cancer)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="your own files instead of an example: DIR/<site-id>/train.<csv|parquet> and "
        "holdout.<csv|parquet>, each uploaded into that site's bucket only; the sites' own "
        "contract (data.contract) applies",
    )
    parser.add_argument(
        "--split", choices=["iid", "dirichlet"], default="iid", help="how rows go to sites"
    )
    parser.add_argument(
        "--alpha", type=float, default=0.5, help="Dirichlet label-skew alpha (default 0.5)"
    )
    parser.add_argument(
        "--no-dp",
        action="store_true",
        help="train without DP (refused unless every site's policy sets dp.allow_dp_off)",
    )
    parser.add_argument("--run-id", default=None, help="run id (default local-<UTC time>)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data split and init")
    add_federation_arguments(parser)
    parser.add_argument("--runs-dir", default="runs", help="output folder (default runs)")
    parser.add_argument(
        "--own-policies",
        default=None,
        metavar="DIR",
        help="the policies each site keeps itself, uploaded to its bucket at site setup "
        "(admission/policy.json; default: the --policies the pipeline is compiled from); a "
        "site whose own copy is stricter than the compiled one refuses the run and abstains",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the centralized baseline")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="tasks run at once (default: the number of cores)",
    )
    parser.add_argument(
        "--isolation",
        choices=["warm", "process"],
        default="warm",
        help="warm: each task in a fresh fork of a worker that imported TensorFlow etc. once "
        "(default); process: a new interpreter per task, as kfp.local runs it (with "
        "--workers 1: kfp.local's own sequential orchestrator)",
    )
    parser.add_argument(
        "--task-timeout",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="a task running longer is killed and fails the run (default 3600)",
    )
    parser.add_argument(
        "--param",
        action="append",
        type=_param,
        default=[],
        metavar="NAME=VALUE",
        help='set a pipeline parameter (e.g. local_epochs=2, model_name="mlp"); checked against '
        "the compiled pipeline's inputs and value rules before anything starts",
    )


def run(args: argparse.Namespace) -> int:
    from pipelines.local_run.runner import RunError, RunOptions, run_local

    options = RunOptions(
        rounds=args.rounds,
        dataset=args.dataset,
        data_dir=args.data.resolve() if args.data is not None else None,
        split=args.split,
        alpha=args.alpha,
        dp=not args.no_dp,
        run_id=args.run_id,
        sites_dir=Path(args.sites),
        policies_dir=Path(args.policies),
        own_policies_dir=Path(args.own_policies) if args.own_policies else None,
        runs_dir=Path(args.runs_dir),
        seed=args.seed,
        baseline=not args.no_baseline,
        isolation=args.isolation,
        task_timeout_s=args.task_timeout,
        overrides=dict(args.param),
    )
    if args.workers is not None:
        options.workers = args.workers

    term = _Terminal(sys.stdout.isatty())
    try:
        run_local(options, emit=term.line, status=term.status if term.tty else None)
    except RunError as exc:
        term.status("")
        text = str(exc)
        if text.startswith("task "):
            print(f"fedpipe run: {text}", file=sys.stderr)
            return 1
        raise CommandError(text) from None
    return 0
