"""`make bench`: run every benchmark module `pipelines/benchmarks/*_bench.py` and print figures.

Each module is run as its own process (`python -m pipelines.benchmarks.<name>`), in name
order, so one benchmark's imports and child processes cannot skew another's. A module
prints its own figures and exits non-zero when it misses a target. Usage:
`python -m pipelines.bench [NAME ...]` (default: all).
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import time
from collections.abc import Sequence

import pipelines.benchmarks

SUFFIX = "_bench"


def discover() -> list[str]:
    """Names of the benchmark modules (without package), sorted."""
    return sorted(
        m.name
        for m in pkgutil.iter_modules(pipelines.benchmarks.__path__)
        if m.name.endswith(SUFFIX)
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the named (default: all) benchmarks; exit code 1 when any failed."""
    names = list(sys.argv[1:] if argv is None else argv) or discover()
    unknown = sorted(set(names) - set(discover()))
    if unknown:
        print(f"bench: unknown benchmark(s) {unknown}; known: {discover()}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"=== {name} ===", flush=True)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", f"pipelines.benchmarks.{name}"], check=False)
        print(
            f"=== {name}: exit {proc.returncode}, {time.perf_counter() - start:.1f} s ===\n",
            flush=True,
        )
        if proc.returncode != 0:
            failed.append(name)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
