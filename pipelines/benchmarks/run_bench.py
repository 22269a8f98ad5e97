"""Benchmark of the default local run (`make bench` → `run_bench`): where the time goes.

Runs `fedpipe run --local` with the defaults (3 sites, 5 rounds, breast cancer, DP on) into a
temporary runs folder, every task started with `PYTHONPROFILEIMPORTTIME=1`, then splits each
task's wall time into

* start: a bare interpreter start (`python -I -S -c pass`, measured here),
* imports: the sum of the top-level import times the task's interpreter reported
  (`-X importtime`, lazy imports inside executors included),
* work: the rest (reading inputs, training, object-store I/O, writing outputs).

Prints the run's phases, a table per stage and the total; exits 1 when the run misses the
5-minute target. `python -m pipelines.benchmarks.run_bench [--rounds N] [--workers N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from pipelines.benchmarks.timing import median_seconds

TARGET_S = 300.0


def import_seconds(lines: Iterable[str]) -> float:
    """Seconds of top-level imports in `-X importtime` output (cumulative column, µs)."""
    rows: list[tuple[int, int]] = []
    for line in lines:
        if not line.startswith("import time:"):
            continue
        parts = line.split("|")
        if len(parts) != 3:
            continue
        try:
            cumulative = int(parts[1].strip())
        except ValueError:
            continue  # the header line
        name = parts[2].rstrip("\n")
        rows.append((len(name) - len(name.lstrip(" ")), cumulative))
    if not rows:
        return 0.0
    top = min(depth for depth, _ in rows)
    return sum(us for depth, us in rows if depth == top) / 1e6


def bare_start_seconds(repeat: int = 5) -> float:
    """Median wall time of `python -I -S -c pass` (interpreter start, no site imports)."""
    argv = [sys.executable, "-I", "-S", "-c", "pass"]
    return median_seconds(lambda: subprocess.run(argv, check=True), repeat)


def stage_table(
    task_seconds: dict[str, float],
    task_imports: dict[str, float],
    stages: dict[str, str],
    start: float,
) -> list[tuple[str, int, float, float, float, float]]:
    """Rows (stage, tasks, total s, start s, imports s, work s), sums over the stage's tasks."""
    acc: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0, 0.0])
    for task, seconds in task_seconds.items():
        row = acc[stages.get(task, task)]
        imports = task_imports.get(task, 0.0)
        row[0] += 1
        row[1] += seconds
        row[2] += start
        row[3] += imports
        row[4] += max(0.0, seconds - start - imports)
    return [(stage, int(r[0]), r[1], r[2], r[3], r[4]) for stage, r in sorted(acc.items())]


def main(argv: Sequence[str] | None = None) -> int:
    from pipelines.local_run.runner import RunOptions, run_local

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dataset", default="breast_cancer")
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[2]
    start = bare_start_seconds()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="fedpipe-bench-") as tmp:
        options = RunOptions(
            rounds=args.rounds,
            dataset=args.dataset,
            workers=args.workers,
            run_id="bench",
            sites_dir=repo / "sites",
            policies_dir=repo / "policies",
            runs_dir=Path(tmp),
            task_env={"PYTHONPROFILEIMPORTTIME": "1"},
        )
        t0 = time.perf_counter()
        result = run_local(options, emit=lambda line: None)
        wall = time.perf_counter() - t0
        logs = Path(result.run_dir) / "logs" / "tasks"
        imports = {
            p.stem: import_seconds(p.read_text(errors="replace").splitlines())
            for p in logs.glob("*.log")
        }
        import yaml

        from pipelines.local_run.progress import task_map

        spec_text = (Path(result.run_dir) / "compiled" / "federated-training.yaml").read_text()
        tasks = task_map(yaml.safe_load(spec_text.split("\n---\n")[0]))
    stages = {name: info.stage for name, info in tasks.items()}
    rows = stage_table(result.task_seconds, imports, stages, start)
    summary = result.summary
    print(
        f"default local run: {args.rounds} rounds, 3 sites, {args.dataset}, DP on, "
        f"{args.workers} tasks at once; {os.cpu_count()} cores, load average before "
        f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}"
    )
    print(f"wall time {wall:.1f} s (target ≤ {TARGET_S:.0f} s)")
    for key, value in sorted(result.timings.items()):
        print(f"  {key:<12} {value:7.1f} s")
    print(f"interpreter start (python -I -S -c pass): {start * 1000:.0f} ms per task")
    print()
    header = f"{'stage':<11}{'tasks':>6}{'task s':>9}{'start s':>9}{'import s':>10}{'work s':>9}{'import+start':>14}"
    print(header)
    totals = [0, 0.0, 0.0, 0.0, 0.0]
    for stage, n, total, st, imp, work in rows:
        share = (st + imp) / total if total else 0.0
        print(f"{stage:<11}{n:>6}{total:>9.1f}{st:>9.1f}{imp:>10.1f}{work:>9.1f}{share:>13.0%}")
        for i, v in enumerate((n, total, st, imp, work)):
            totals[i] += v
    share = (totals[2] + totals[3]) / totals[1] if totals[1] else 0.0
    print(
        f"{'all':<11}{totals[0]:>6}{totals[1]:>9.1f}{totals[2]:>9.1f}{totals[3]:>10.1f}"
        f"{totals[4]:>9.1f}{share:>13.0%}"
    )
    print("(task seconds add up over tasks running at the same time)")
    final = summary.get("final") or {}
    print(
        "result: federated test accuracy "
        f"{final.get('test_accuracy')}, baseline {(summary.get('baseline') or {}).get('test_accuracy')}, "
        f"epsilon {json.dumps({s: round(e['rdp'], 3) for s, e in summary['epsilon_total'].items()})}"
    )
    if wall > TARGET_S:
        print(f"MISSED: {wall:.1f} s > {TARGET_S:.0f} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
