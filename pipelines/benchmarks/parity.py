"""Federated vs centralized accuracy of the local run (the parity claims of `fedpipe run`).

`python -m pipelines.benchmarks.parity [--rounds 5] [--only NAME ...]` runs `fedpipe run
--local` for each configuration (each in a fresh runs folder, so a DP-off run never touches a
real ledger) and prints, per configuration, the federated global model's pooled test accuracy,
the centralized baseline's (same model, pooled training data, same epochs/batch/lr, DP off)
and the gap in points against the claim:

* DP off: within 1.5 points on breast cancer and digits, IID and Dirichlet(0.5);
* DP on (default noise fitted to the policies): within 4 points on breast cancer.

Settings: the dataset's recipe (`pipelines.local_run.recipes`) unless `--param` overrides it.

Exit 1 when a claim is missed. Not part of `make bench` (about 3–6 minutes per configuration
on 2 cores); `--only bc-iid-nodp` runs one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Config:
    name: str
    dataset: str
    split: str
    dp: bool
    max_gap_points: float


CONFIGS = (
    Config("bc-iid-nodp", "breast_cancer", "iid", False, 1.5),
    Config("bc-dirichlet-nodp", "breast_cancer", "dirichlet", False, 1.5),
    Config("digits-iid-nodp", "digits", "iid", False, 1.5),
    Config("digits-dirichlet-nodp", "digits", "dirichlet", False, 1.5),
    Config("bc-iid-dp", "breast_cancer", "iid", True, 4.0),
)


def gap_points(federated: float, centralized: float) -> float:
    """How far the federated accuracy is below the centralized one, in points (>= 0 = worse)."""
    return 100.0 * (centralized - federated)


def main(argv: Sequence[str] | None = None) -> int:
    from pipelines.local_run.runner import RunOptions, run_local

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None, help="configuration names")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="pipeline parameter for every configuration (e.g. local_epochs=3)",
    )
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[2]
    from pipelines.commands.run import parse_value

    overrides = {}
    for item in args.param:
        name, _, raw = item.partition("=")
        overrides[name] = parse_value(raw)
    chosen = [c for c in CONFIGS if not args.only or c.name in args.only]
    rows = []
    missed = []
    for cfg in chosen:
        with tempfile.TemporaryDirectory(prefix="fedpipe-parity-") as tmp:
            t0 = time.perf_counter()
            result = run_local(
                RunOptions(
                    rounds=args.rounds,
                    dataset=cfg.dataset,
                    split=cfg.split,
                    alpha=args.alpha,
                    dp=cfg.dp,
                    run_id=f"parity-{cfg.name}",
                    sites_dir=repo / "sites",
                    policies_dir=repo / "policies",
                    runs_dir=Path(tmp),
                    seed=args.seed,
                    overrides=overrides,
                ),
                emit=lambda line: None,
            )
            wall = time.perf_counter() - t0
        s = result.summary
        fed = float(s["final"]["test_accuracy"])
        cen = float(s["baseline"]["test_accuracy"])
        gap = gap_points(fed, cen)
        eps = max((e.get("rdp") or 0.0) for e in s["epsilon_total"].values()) if cfg.dp else None
        ok = gap <= cfg.max_gap_points
        if not ok:
            missed.append(cfg.name)
        rows.append((cfg, fed, cen, gap, eps, wall, ok))
        print(
            f"{cfg.name:<22} federated {100 * fed:6.2f}%  centralized {100 * cen:6.2f}%  "
            f"gap {gap:+5.2f} pts (claim ≤ {cfg.max_gap_points})  "
            + (f"max ε {eps:.2f}  " if eps is not None else "")
            + f"{'ok' if ok else 'MISSED'}  ({wall:.0f} s)",
            flush=True,
        )
    print(
        f"{len(rows) - len(missed)}/{len(rows)} claims hold ({args.rounds} rounds, seed {args.seed})"
    )
    if missed:
        print(f"missed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
