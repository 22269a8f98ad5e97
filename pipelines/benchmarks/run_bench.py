"""Benchmark of local runs (`make bench` → `run_bench`): pipeline seconds per site-round.

Runs `fedpipe run --local` (DP on, no centralized baseline, digits so that 30 sites still get
~50 training rows each) for 3, 10 and 30 member sites × 3 rounds, each size once with warm
task workers and once with one process per task (`--isolation`), every run in its own
temporary runs folder (fresh ledgers). Prints per run the pipeline phase, seconds per
site-round and the warm worker's start-up, then how the cost per site-round grows with the
sites. Exits 1 when a run fails or warm is not faster than process at some size.

`python -m pipelines.benchmarks.run_bench [--small] [--sizes 3,10,30] [--rounds 3]
[--modes warm,process] [--dataset digits]`; `--small` runs 3 and 10 sites only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SIZES = (3, 10, 30)
SMALL_SIZES = (3, 10)


@dataclass(frozen=True)
class BenchRun:
    """One run's figures: sites, rounds, isolation mode, tasks, pipeline phase seconds."""

    sites: int
    rounds: int
    mode: str
    tasks: int
    pipeline_s: float
    wall_s: float

    @property
    def per_site_round_s(self) -> float:
        return self.pipeline_s / (self.sites * self.rounds)


def growth(runs: Sequence[BenchRun], mode: str) -> float | None:
    """Seconds per site-round at the most sites over that at the fewest (1.0 = linear cost)."""
    mine = sorted((r for r in runs if r.mode == mode), key=lambda r: r.sites)
    if len(mine) < 2 or mine[0].per_site_round_s <= 0:
        return None
    return mine[-1].per_site_round_s / mine[0].per_site_round_s


def speedups(runs: Sequence[BenchRun]) -> dict[int, float]:
    """{sites: process pipeline seconds / warm pipeline seconds} where both ran."""
    by = {(r.sites, r.mode): r for r in runs}
    return {
        n: by[(n, "process")].pipeline_s / by[(n, "warm")].pipeline_s
        for n, mode in by
        if mode == "warm" and (n, "process") in by and by[(n, "warm")].pipeline_s > 0
    }


def federation_dirs(n_sites: int, out: Path) -> tuple[Path, Path]:
    """Sites and policies folders of the example federation (3) or a generated one (else)."""
    if n_sites == 3:
        return REPO / "sites", REPO / "policies"
    from pipelines.benchmarks.federations import generated_federation
    from pipelines.local_run.siteconf import site_yaml

    federation = generated_federation(n_sites)
    sites = out / "sites"
    sites.mkdir(parents=True)
    for site_id, site in federation.all_sites.items():
        (sites / f"{site_id}.yaml").write_text(site_yaml(site))
    shutil.copytree(REPO / "sites" / "contracts", sites / "contracts")
    policies = out / "policies"
    shutil.copytree(REPO / "policies", policies)
    return sites, policies


def bench_run(n_sites: int, rounds: int, mode: str, dataset: str) -> BenchRun:
    from pipelines.local_run.runner import RunOptions, run_local

    with tempfile.TemporaryDirectory(prefix=f"fedpipe-bench-{n_sites}-{mode}-") as tmp:
        sites, policies = federation_dirs(n_sites, Path(tmp) / "config")
        options = RunOptions(
            rounds=rounds,
            dataset=dataset,
            run_id=f"bench-{n_sites}-{mode}",
            sites_dir=sites,
            policies_dir=policies,
            runs_dir=Path(tmp) / "runs",
            baseline=False,
            isolation=mode,
        )
        t0 = time.perf_counter()
        result = run_local(options, emit=lambda line: None)
        wall = time.perf_counter() - t0
    return BenchRun(
        n_sites, rounds, mode, len(result.task_seconds), result.timings["pipeline_s"], wall
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="3 and 10 sites only")
    parser.add_argument("--sizes", default=None, help="comma-separated site counts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default="warm,process")
    parser.add_argument("--dataset", default="digits")
    args = parser.parse_args(argv)
    sizes = (
        tuple(int(x) for x in args.sizes.split(","))
        if args.sizes
        else (SMALL_SIZES if args.small else SIZES)
    )
    modes = [m for m in args.modes.split(",") if m]
    print(
        f"local runs: {args.rounds} rounds, {args.dataset}, DP on, no baseline; "
        f"{len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    print(
        f"{'sites':>5} {'mode':<8}{'tasks':>6}{'pipeline s':>12}{'s/site-round':>14}{'wall s':>9}"
    )
    runs: list[BenchRun] = []
    failed = False
    for n in sizes:
        for mode in modes:
            try:
                run = bench_run(n, args.rounds, mode, args.dataset)
            except Exception as exc:  # report and go on with the other sizes
                print(f"{n:>5} {mode:<8} FAILED: {exc}", flush=True)
                failed = True
                continue
            runs.append(run)
            print(
                f"{run.sites:>5} {run.mode:<8}{run.tasks:>6}{run.pipeline_s:>12.1f}"
                f"{run.per_site_round_s:>14.2f}{run.wall_s:>9.1f}",
                flush=True,
            )
    for mode in modes:
        g = growth(runs, mode)
        if g is not None:
            print(f"{mode}: s/site-round at {max(sizes)} sites is {g:.2f}× that at {min(sizes)}")
    for n, x in sorted(speedups(runs).items()):
        print(f"{n} sites: warm is {x:.1f}× faster than process")
        failed = failed or x <= 1.0
    print(f"load average after {os.getloadavg()[0]:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
