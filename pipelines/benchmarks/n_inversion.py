"""N-inversion search over what a run published: how many training-set sizes fit each site?

`python -m pipelines.benchmarks.n_inversion runs/<run-id> [--min 9 --max 600]`

Reads every figure the run's tasks let out of the sites: the signed manifests in export's
`ref.json` artifacts, the coordinator's `round.json` reports and the global models'
`meta.json` (under `<run>/kfp/` and `<run>/global_model/`). For each site it takes each
published epsilon with its DP settings (batch size, local epochs, noise multiplier, delta;
all published) and searches N in [min, max] with the real accountant
(`components.privacy.accounting`): a candidate is an N whose epsilon fits every published
figure of that site (`components.privacy.disclosure.consistent_sizes`). Prints, per site, the
number of candidates and their range, and exits 1 when a site whose policy hides N has at
most 20 (`--need`). The run's host-side `summary.json` and report (the local runner reads
every site's ledger, as no single party of a real federation can) are not inputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

NEED = 20


@cache
def _epsilon(n: int, batch: int, epochs: int, sigma: float, delta: float) -> float:
    from components.privacy.accounting import dp_sgd_event, rdp_epsilon

    if n < batch:
        return float("inf")
    return rdp_epsilon([dp_sgd_event(n, batch, epochs, sigma)], delta)


def _figure(entry: Any) -> tuple[float, str, tuple[int, int, float, float]] | None:
    """(epsilon, disclosure, (batch, epochs, sigma, delta)) of one published entry, or None."""
    if not isinstance(entry, dict) or entry.get("epsilon") is None:
        return None
    dp = entry.get("dp") or {}
    try:
        settings = (
            int(dp["batch_size"]),
            int(dp["local_epochs"]),
            float(dp["noise_multiplier"]),
            float(entry["delta"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    return float(entry["epsilon"]), str(dp.get("epsilon_disclosure", "exact")), settings


def published_figures(run_dir: Path) -> Iterator[tuple[str, str, Any]]:
    """(site, file, figure) for every epsilon the run's task outputs carry."""
    roots = [run_dir / "kfp", run_dir / "global_model"]
    for root in roots:
        for path in sorted(root.rglob("*.json")) if root.is_dir() else []:
            try:
                body = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(body, dict):
                continue
            manifest = (
                (body.get("manifest") or {}).get("manifest") if path.name == "ref.json" else None
            )
            if isinstance(manifest, dict):
                fig = _figure(manifest)
                if fig:
                    yield str(manifest.get("site_id")), str(path), fig
            for site, entry in (
                (body.get("epsilon") or {}).items() if isinstance(body.get("epsilon"), dict) else []
            ):
                fig = _figure(entry)
                if fig:
                    yield site, str(path), fig


def search(run_dir: Path, low: int, high: int) -> dict[str, dict[str, Any]]:
    """site -> {"figures", "candidates"} over N in [low, high]."""
    from components.privacy.disclosure import consistent_sizes, epsilon_interval

    per_site: dict[str, dict[str, Any]] = {}
    for site, _, (eps, disclosure, settings) in published_figures(run_dir):
        per_site.setdefault(site, {"figures": set()})["figures"].add((eps, disclosure, settings))
    for _site, info in per_site.items():
        candidates = set(range(low, high + 1))
        for eps, disclosure, settings in sorted(info["figures"]):
            interval = epsilon_interval(eps, disclosure)
            fits = consistent_sizes(
                interval, lambda n, s=settings: _epsilon(n, *s), range(low, high + 1)
            )
            candidates &= set(fits)
        info["candidates"] = sorted(candidates)
    return per_site


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--min", dest="low", type=int, default=9)
    parser.add_argument("--max", dest="high", type=int, default=600)
    parser.add_argument("--need", type=int, default=NEED)
    args = parser.parse_args(argv)
    results = search(args.run_dir, args.low, args.high)
    if not results:
        print(f"no published epsilon found under {args.run_dir}/kfp or /global_model")
        return 1
    worst = None
    for site, info in sorted(results.items()):
        found = info["candidates"]
        kinds = sorted({d for _, d, _ in info["figures"]})
        span = f"{found[0]}..{found[-1]}" if found else "-"
        print(
            f"{site}: {len(found)} candidate N in {args.low}..{args.high} ({span}); "
            f"{len(info['figures'])} distinct published figure(s), disclosure {', '.join(kinds)}"
        )
        worst = len(found) if worst is None else min(worst, len(found))
    return 0 if worst is not None and worst > args.need else 1


if __name__ == "__main__":
    sys.exit(main())
