"""Benchmark of local runs (`make bench` → `run_bench`): pipeline seconds per site-round.

Runs `fedpipe run --local` (DP on, no centralized baseline, digits: 30 sites get ~38
training rows each, and the bench's copy of the contract asks no more, `federation_dirs`) for 3, 10 and 30 member sites × 3 rounds, each size once with warm
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
TEST_FRACTION = 0.2  # of `components.datasets.prepare.prepare_local`, as the local run calls it


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


def fitted_rows(min_train: int, min_holdout: int, rows: int, n_sites: int) -> tuple[int, int]:
    """(min_train, min_holdout) that every site of an IID `fedpipe run --local` split of `rows`
    rows over `n_sites` sites meets (20 % pooled test, 20 % of a site's rows its holdout):
    the contract's own minimums where the split reaches them, else half (train) and a tenth
    (holdout) of the rows a site gets, which leaves room for rounding. Pure."""
    per_site = int(rows * (1.0 - TEST_FRACTION)) // n_sites
    return min(min_train, max(1, per_site // 2)), min(min_holdout, max(1, per_site // 10))


def federation_dirs(n_sites: int, out: Path, dataset: str = "digits") -> tuple[Path, Path]:
    """Sites and policies folders of the example federation (3) or a generated one (else).

    A generated federation gets a copy of the contracts in which `dataset`'s minimum table
    sizes fit its split (`fitted_rows`): digits' 1797 rows over 30 sites leave each site
    38 training rows, under the contract's 50, and every site would abstain. The bench
    measures time, not accuracy; the fitted figures are printed."""
    if n_sites == 3:
        return REPO / "sites", REPO / "policies"
    import yaml

    from components.datasets.prepare import load_frame
    from pipelines.benchmarks.federations import generated_federation
    from pipelines.config.loader import load_contract
    from pipelines.local_run.siteconf import site_yaml

    federation = generated_federation(n_sites)
    sites = out / "sites"
    sites.mkdir(parents=True)
    for site_id, site in federation.all_sites.items():
        (sites / f"{site_id}.yaml").write_text(site_yaml(site))
    shutil.copytree(REPO / "sites" / "contracts", sites / "contracts")
    path = sites / "contracts" / f"{dataset}.yaml"
    contract = load_contract(path)
    fitted = fitted_rows(
        contract.min_rows, contract.min_holdout_rows, len(load_frame(contract)), n_sites
    )
    if fitted != (contract.min_rows, contract.min_holdout_rows):
        doc = yaml.safe_load(path.read_text())
        doc["rows"] = {"min_train": fitted[0], "min_holdout": fitted[1]}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        print(
            f"{n_sites} sites: {dataset} contract rows.min_train/min_holdout "
            f"{contract.min_rows}/{contract.min_holdout_rows} -> {fitted[0]}/{fitted[1]} "
            "in the bench's copy (each site's split is smaller)",
            flush=True,
        )
    policies = out / "policies"
    shutil.copytree(REPO / "policies", policies)
    return sites, policies


def bench_run(n_sites: int, rounds: int, mode: str, dataset: str) -> BenchRun:
    from pipelines.local_run.runner import RunOptions, run_local

    with tempfile.TemporaryDirectory(prefix=f"fedpipe-bench-{n_sites}-{mode}-") as tmp:
        sites, policies = federation_dirs(n_sites, Path(tmp) / "config", dataset)
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
