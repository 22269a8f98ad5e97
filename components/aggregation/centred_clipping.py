"""Centred clipping (Karimireddy, He & Jaggi 2021, "Learning from History for Byzantine
Robust Optimization", eq. 2).

From a centre v₀, `iters` steps (default 3) of

    v ← v + (1/K) Σᵢ (xᵢ − v)·min(1, τ / ‖xᵢ − v‖):

an update far from the centre moves it by at most τ/K, one near it by its full difference.
The fixed point minimises Σᵢ Huber_τ(‖xᵢ − v‖), so more steps forget the start.

Choices the paper leaves to the caller (stateless here, documented in RULES.md):
* v₀: the paper uses the previous round's aggregate (momentum); a rule here sees one round,
  so v₀ is the medoid of the updates (the update with the least sum of distances to the
  others), itself robust for f < K/2.
* τ (`tau`): when not given, the median distance of the updates to v₀, so it follows the
  shrinking size of the updates over training instead of a constant tuned for round 1.

Runs on the K×K Gram matrix (`span`): one Gram pass plus one weighted sum.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from components.aggregation import span
from components.aggregation.updates import Layout, Update

ITERS = 3


def clipping_weights(gram: np.ndarray, tau: float | None = None, iters: int = ITERS) -> np.ndarray:
    """Weights w (Σw = 1) with Σ wᵢxᵢ the centred-clipping centre after `iters` steps from
    the medoid, from the Gram matrix of the updates relative to one of them."""
    k = gram.shape[0]
    w = span.medoid_weights(gram)
    radius = tau
    if radius is None:
        radius = float(np.median(span.distances(gram, w)))
    for _ in range(iters):
        dist = span.distances(gram, w)
        clip = np.ones(k)
        far = dist > radius
        clip[far] = radius / dist[far]  # dist > radius ≥ 0: no division by zero
        # v + (1/K)Σ cᵢ(xᵢ − v) in weight space: w(1 − mean c) + c/K
        w = w * (1.0 - clip.mean()) + clip / k
    return w


def check_params(tau: float | None, iters: float) -> None:
    """ValueError naming the parameter when one is out of range."""
    if tau is not None and not (np.isfinite(tau) and tau > 0):
        raise ValueError(f"centred_clipping: tau must be > 0, got {tau}")
    if isinstance(iters, bool) or int(iters) != iters or iters < 1:
        raise ValueError(f"centred_clipping: iters must be an integer ≥ 1, got {iters!r}")


def centred_clipping_weights(
    updates: Sequence[Update], layout: Layout, tau: float | None = None, iters: float = ITERS
) -> np.ndarray:
    """Weights (in the order of `updates`, Σ = 1) of the centred-clipping centre."""
    check_params(tau, iters)
    gram, order = span.centred_gram(updates, layout)
    return span.in_input_order(clipping_weights(gram, tau, int(iters)), order)
