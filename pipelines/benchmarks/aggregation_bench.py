"""Aggregation rules: GB/s of update data consumed and peak extra memory, one core.

For K ∈ {10, 100} updates × P ∈ {1e5, 1e6, 1e7} float32 parameters (each update a dict of a
kernel (P/1000 − 1, 1000) and a bias (1000,), separate arrays as after loading), prints the
median wall time of REPEATS calls of `rules.aggregate` per rule as GB/s of update bytes
(K·P·4 / time) beside a plain numpy sum over the same arrays (this machine's memory
bandwidth, measured in the same run), and the peak memory a call allocates (tracemalloc) in
units of one update (P·4 bytes). BLAS is limited to one thread (threadpoolctl).

Also geometric median and centred clipping (no target), and the anomaly scoring the
aggregate task runs every round (`anomaly.score_round`, a screened geometric median plus norms,
dots and distances; no target). `--only a,b` runs the cases whose label contains a or b,
`--sizes 100x1e6,10x1e5` only those K×P.

Targets: mean ≥ 5 GB/s with O(P) memory, median and trimmed mean ≥ 1 GB/s, Multi-Krum
≥ 2 GB/s, checked on the P ≥ 1e6 sizes (i.i.d. normal updates). At K=100 an extra row shows
Multi-Krum on an attacked round (10 updates scaled by −10: outliers, so it sums the selected
updates instead of finishing from column sums; no target) (at 1e5, per-call overhead dominates). Exit 1 when
one is missed. `--max-gb X` skips inputs above X GB (default 4.5: all six sizes run; the
largest is exactly 4.0 GB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

KS = (10, 100)
PS = (100_000, 1_000_000, 10_000_000)
REPEATS = 3
BIAS = 1000
TARGETS = {"fedavg": 5.0, "median": 1.0, "trimmed_mean": 1.0, "multi_krum": 2.0}
ANOMALY = "anomaly scoring"  # anomaly.score_round over the K updates: per-round overhead


def make_updates(k: int, p: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """K separate updates of P float32 parameters (kernel + bias), standard normal."""
    rng = np.random.default_rng(seed)
    return [
        {
            "kernel": rng.standard_normal((p // BIAS - 1, BIAS), dtype=np.float32),
            "bias": rng.standard_normal(BIAS, dtype=np.float32),
        }
        for _ in range(k)
    ]


def cases(k: int) -> list[tuple[str, str, dict]]:
    """(label, rule, kwargs) measured for K updates."""
    f = 2 if k == 10 else 10
    return [
        ("fedavg", "fedavg", {}),
        ("fedavg weighted", "fedavg", {"weights": list(range(1, k + 1))}),
        ("median", "median", {}),
        ("trimmed_mean β=0.1", "trimmed_mean", {"beta": 0.1}),
        (f"multi_krum f={f} m={k - f}", "multi_krum", {"f": f}),
        (f"krum f={f}", "krum", {"f": f}),
        ("norm_bounded_mean", "norm_bounded_mean", {"clip_norm": 1.0}),
        ("geometric_median", "geometric_median", {}),
        ("centred_clipping", "centred_clipping", {}),
        ("screened_geometric_median", "screened_geometric_median", {}),
    ]


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median (CPU seconds of this thread, wall seconds) of `repeats` calls."""
    cpu, wall = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return statistics.median(cpu), statistics.median(wall)


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes allocated during one call (numpy allocations are traced)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def main(argv: list[str] | None = None) -> int:
    from threadpoolctl import threadpool_limits

    from components.aggregation.anomaly import score_round
    from components.aggregation.rules import aggregate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-gb", type=float, default=4.5)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--only", default="", help="comma-separated label substrings")
    parser.add_argument("--sizes", default="", help="comma-separated KxP, e.g. 100x1e6")
    args = parser.parse_args(argv)
    only = [o for o in args.only.split(",") if o]
    sizes = {(int(a), int(float(b))) for a, b in (x.split("x") for x in args.sizes.split(",") if x)}

    def wanted(label: str) -> bool:
        return not only or any(o in label for o in only)

    print(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores, one BLAS thread; "
        f"GB/s = K·P·4 bytes / median CPU time of this thread ({args.repeats} repeats, "
        f"1 at ≥ 1 GB); 'wall' from the median wall time; 'vs sum' = rule GB/s ÷ numpy-sum GB/s"
    )
    header = (
        f"{'K':>4} {'P':>6} {'GB':>5}  {'rule':<24} {'GB/s':>6} {'wall':>6} {'vs sum':>6} "
        f"{'peak mem':>9}"
    )
    misses: list[str] = []
    started = time.perf_counter()
    with threadpool_limits(1):
        aggregate(make_updates(12, 10 * BIAS), "median")  # warm up caches and imports
        for k in KS:
            for p in PS:
                gb = k * p * 4 / 1e9
                if sizes and (k, p) not in sizes:
                    continue
                if gb > args.max_gb:
                    print(f"skip K={k} P={p:.0e}: {gb:.1f} GB of input > --max-gb {args.max_gb}")
                    continue
                updates = make_updates(k, p)
                repeats = args.repeats if gb < 1 else 1
                arrays = [x for d in updates for x in d.values()]
                ref, ref_wall = timed(lambda a=arrays: [x.sum() for x in a], repeats)
                print(header)

                def row(
                    label: str,
                    cpu: float,
                    wall: float,
                    peak: str,
                    ref: float = ref,
                    k: int = k,
                    p: int = p,
                    gb: float = gb,
                ) -> None:
                    print(
                        f"{k:>4} {p:>6.0e} {gb:>5.2f}  {label:<24} {gb / cpu:>6.2f} "
                        f"{gb / wall:>6.2f} {ref / cpu:>6.2f} {peak:>9}"
                    )

                row("numpy sum (bandwidth)", ref, ref_wall, "-")
                if p == 1_000_000 and wanted("np.median"):
                    stacked = np.stack(
                        [np.concatenate([a.ravel() for a in d.values()]) for d in updates]
                    )
                    row("np.median(axis=0)", *timed(lambda s=stacked: np.median(s, axis=0), 1), "-")
                    del stacked
                for label, rule, kw in cases(k):
                    if not wanted(label):
                        continue
                    kw = dict(kw)
                    weights = kw.pop("weights", None)

                    def call(r=rule, w=weights, kw=kw, u=updates):
                        return aggregate(u, r, w, **kw)

                    cpu, wall = timed(call, repeats)
                    peak = f"{peak_bytes(call) / (p * 4):.2f}×P" if gb < 1 else "-"
                    row(label, cpu, wall, peak)
                    target = TARGETS.get(rule)
                    rate = gb / cpu
                    if target and p >= 1_000_000 and rate < target and "weighted" not in label:
                        misses.append(f"K={k} P={p:.0e} {label}: {rate:.2f} < {target} GB/s")
                if wanted(ANOMALY):
                    by_site = {f"site-{i:03d}": u for i, u in enumerate(updates)}
                    cpu, wall = timed(lambda b=by_site: score_round(b), repeats)
                    row(ANOMALY, cpu, wall, "-")
                if k > 16:  # an attacked round: f updates scaled by −10 (no target, shown)
                    f = 10
                    scaled = [
                        {n: np.float32(-10) * v for n, v in u.items()} for u in updates[1 : f + 1]
                    ]
                    attacked = [updates[0], *scaled, *updates[f + 1 :]]
                    for rule, kw in (("multi_krum", {"f": f}), ("geometric_median", {})):
                        if wanted(rule):
                            cpu, wall = timed(
                                lambda u=attacked, r=rule, kw=kw: aggregate(u, r, **kw), repeats
                            )
                            row(f"{rule}, {f} at −10×", cpu, wall, "-")
                    if wanted("geometric_median"):  # update 0 the outlier: Gram recomputed
                        first = [scaled[0], updates[0], *scaled[1:], *updates[f + 1 :]]
                        cpu, wall = timed(lambda u=first: aggregate(u, "geometric_median"), repeats)
                        row("geometric_median, x0 out", cpu, wall, "-")
                        del first
                    del scaled, attacked
                del updates, arrays
    print(f"total {time.perf_counter() - started:.0f} s wall")
    for miss in misses:
        print(f"MISSED {miss}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
