"""Compile time and YAML size for generated federations of 10, 100 and 300 sites × 1 round.

Prints, per size: tasks, median wall time of `compile_federation` (build + flow check +
KFP compile + version) over REPEATS runs, YAML size and the same documents as compact JSON
(closer to what the KFP backend stores) and the largest inline inputs of one task (its
executor input is one command-line argument, at most 128 KiB on Linux:
`pipelines/task_inputs.py`); then the growth from 100 to 300 sites (linear = 3.0×).
Target: 100 sites ≤ 3 s and ≤ 1.5 MiB (the Argo workflow object has to fit in etcd). Exit 1
when the target is missed.
"""

from __future__ import annotations

import statistics
import sys
import time

SIZES = (10, 100, 300)
REPEATS = 3
TARGET_SITES = 100
TARGET_SECONDS = 3.0
TARGET_BYTES = int(1.5 * 1024 * 1024)


def measure(n_sites: int, repeats: int = REPEATS) -> dict[str, float]:
    """Median compile seconds and YAML bytes for `n_sites` × 1 round."""
    from pipelines.benchmarks.federations import generated_federation
    from pipelines.compiler import compile_federation

    federation = generated_federation(n_sites)
    times, size, tasks = [], 0, 0
    for _ in range(repeats):
        start = time.perf_counter()
        compiled = compile_federation(federation, rounds=1)
        times.append(time.perf_counter() - start)
        size = len(compiled.pipeline_yaml.encode("utf-8"))
        tasks = len({e.task for e in compiled.edges} | {e.dest_task for e in compiled.edges})
    inline = compiled.inline_inputs
    biggest = max(inline, key=inline.__getitem__)
    return {
        "sites": n_sites,
        "tasks": tasks,
        "seconds": statistics.median(times),
        "bytes": size,
        "json_bytes": ir_json_bytes(compiled.pipeline_yaml),
        "inline_task": biggest,
        "inline_bytes": inline[biggest],
    }


def ir_json_bytes(pipeline_yaml: str) -> int:
    """Size of both YAML documents as compact JSON: closer to what the backend stores."""
    import json

    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs = list(yaml.load_all(pipeline_yaml, Loader=loader))
    return len(json.dumps(docs, separators=(",", ":"), sort_keys=True).encode("utf-8"))


def main() -> int:
    warm = time.perf_counter()
    measure(3, repeats=1)  # imports and first-use costs, not counted
    print(f"warm-up (imports, 3 sites): {time.perf_counter() - warm:.2f} s")
    print(
        f"{'sites':>6} {'tasks':>6} {'median s':>9} {'YAML MiB':>9} {'KiB/site':>9} "
        f"{'JSON MiB':>9}  largest inline inputs (limit 128 KiB per task)"
    )
    rows = {}
    for n in SIZES:
        row = measure(n)
        rows[n] = row
        print(
            f"{n:>6} {row['tasks']:>6} {row['seconds']:>9.3f} {row['bytes'] / 2**20:>9.3f} "
            f"{row['bytes'] / 1024 / n:>9.1f} {row['json_bytes'] / 2**20:>9.3f}  "
            f"{row['inline_bytes'] / 1024:.0f} KiB ({row['inline_task']})",
            flush=True,
        )
    big, mid = rows[SIZES[-1]], rows[TARGET_SITES]
    scale = SIZES[-1] / TARGET_SITES
    print(
        f"growth {TARGET_SITES}→{SIZES[-1]} sites (linear = {scale:.1f}×): "
        f"time {big['seconds'] / mid['seconds']:.2f}×, size {big['bytes'] / mid['bytes']:.2f}×"
    )
    ok_time = mid["seconds"] <= TARGET_SECONDS
    ok_size = mid["bytes"] <= TARGET_BYTES
    print(
        f"target {TARGET_SITES} sites: {mid['seconds']:.2f} s ≤ {TARGET_SECONDS} s "
        f"{'ok' if ok_time else 'MISSED'}; {mid['bytes'] / 2**20:.3f} MiB ≤ 1.5 MiB "
        f"{'ok' if ok_size else 'MISSED'}"
    )
    return 0 if ok_time and ok_size else 1


if __name__ == "__main__":
    sys.exit(main())
