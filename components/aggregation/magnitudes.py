"""Weights and magnitudes at the coordinator, before plain FedAvg combines updates (pure).

* Claimed sample counts are FedAvg weights: a site claiming 10^12 examples would dominate.
  `cap_counts` caps each claim at the site's declared maximum (`data.num_examples.max`, else
  its policy's `aggregation.max_num_examples`); a site with neither is capped at
  `FALLBACK_CLAIM_FACTOR` times the round's lower median claim. Every cap is recorded.
* `norm_guard`: an update whose L2 norm (computed in float64, so 3e38-valued tensors do not
  overflow) is more than `factor` times the round's lower median update norm is rejected, with
  the reason. The lower median of two updates is the smaller one: with one honest and one
  inflated update the inflated one goes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from components.common.tensors import Tensors

FALLBACK_CLAIM_FACTOR = 10.0


def lower_median(values: list[float]) -> float:
    """The lower median (the ⌈k/2⌉-th smallest); ValueError for no values."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def update_norm(tensors: Tensors) -> float:
    """The L2 norm of all tensors together, accumulated in float64 (no overflow below 1e154)."""
    total = 0.0
    for name in sorted(tensors):
        a = np.asarray(tensors[name], dtype=np.float64)
        total += float(np.dot(a.ravel(), a.ravel()))
    return math.sqrt(total)


def cap_counts(
    claims: Mapping[str, int],
    caps: Mapping[str, tuple[int, str] | None],
    fallback_factor: float = FALLBACK_CLAIM_FACTOR,
) -> tuple[dict[str, float], dict[str, str]]:
    """(weight per site, note per capped site).

    claims: site -> claimed sample count; caps: site -> (declared maximum, where it is
    declared) or None (then `fallback_factor` × the lower median claim)."""
    if not claims:
        return {}, {}
    median = lower_median([float(c) for c in claims.values()])
    weights: dict[str, float] = {}
    notes: dict[str, str] = {}
    for site, claim in sorted(claims.items()):
        declared = caps.get(site)
        if declared is not None:
            cap, source = float(declared[0]), declared[1]
        else:
            cap = fallback_factor * median
            source = (
                f"no declared maximum: {fallback_factor:g}× the round's median claim {median:g}"
            )
        if claim > cap:
            weights[site] = cap
            notes[site] = f"claimed {claim} examples, above {cap:g} ({source}); weighted as {cap:g}"
        else:
            weights[site] = float(claim)
    return weights, notes


def norm_guard(norms: Mapping[str, float], factor: float) -> dict[str, str]:
    """site -> rejection reason for each update whose norm exceeds `factor` × the lower median
    norm of all of them (none when the median is 0 or there are fewer than two updates)."""
    if len(norms) < 2:
        return {}
    median = lower_median(list(norms.values()))
    if not median > 0:
        return {}
    limit = factor * median
    return {
        site: (
            f"norm guard: update L2 norm {norm:.4g} is {norm / median:.3g}× the round's median "
            f"update norm {median:.4g} (limit {factor:g}×, coordinator policy "
            "aggregation.norm_guard_factor)"
        )
        for site, norm in sorted(norms.items())
        if not norm <= limit  # NaN and inf count as beyond
    }
