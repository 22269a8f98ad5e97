"""Geometric median by the smoothed Weiszfeld algorithm (RFA, Pillutla, Kakade & Harchaoui
2022, "Robust Aggregation for Federated Learning", Algorithm 3).

The geometric median minimises g(v) = Σᵢ ‖xᵢ − v‖ (breakdown point 1/2: fewer than half the
updates cannot drag it arbitrarily far). Smoothed Weiszfeld iterates

    v ← Σᵢ βᵢxᵢ / Σᵢ βᵢ,   βᵢ = 1 / max(ν, ‖xᵢ − v‖),

from the mean, until v moves by at most `tol` × the median distance ‖xᵢ − v‖ (or by ≤ ν) or
after `max_iter` steps. ν (`nu`, default 1e-6) keeps a centre sitting on an update from
dividing by zero. RFA stops on the relative change of g instead; far outliers dominate g and
made that stop 0.5 away from a median of three identical updates with two 1e6 away
(`test_a_majority_at_one_point_is_the_median_whatever_the_outliers`). Iterations run on
the K×K Gram matrix (`span`), so the cost is one Gram pass plus one weighted sum, whatever
the number of iterations. Weights (example counts, RFA's αᵢ) are refused like every robust
rule here: a site could inflate its count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from components.aggregation import span
from components.aggregation.updates import Layout, Update

NU = 1e-6
TOL = 1e-6
MAX_ITER = 100


def weiszfeld_weights(
    gram: np.ndarray, nu: float = NU, tol: float = TOL, max_iter: int = MAX_ITER
) -> tuple[np.ndarray, int]:
    """(weights w with Σw = 1 such that Σ wᵢxᵢ is the smoothed geometric median, iterations
    run), from the Gram matrix of the updates relative to one of them."""
    k = gram.shape[0]
    w = np.full(k, 1.0 / k)
    dist = span.distances(gram, w)
    for step in range(1, max_iter + 1):
        beta = 1.0 / np.maximum(dist, nu)
        w_next = beta / beta.sum()
        dist_next = span.distances(gram, w_next)
        if dist_next.sum() > dist.sum():  # rounding at the optimum: keep the better point
            return w, step
        step_w = w_next - w
        moved = float(np.sqrt(max(float(step_w @ gram @ step_w), 0.0)))
        w, dist = w_next, dist_next
        if moved <= max(tol * float(np.median(dist)), nu):
            return w, step
    return w, max_iter


def check_params(nu: float, tol: float, max_iter: float) -> None:
    """ValueError naming the parameter when one is out of range."""
    if not (np.isfinite(nu) and nu > 0):
        raise ValueError(f"geometric_median: nu must be > 0, got {nu}")
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"geometric_median: tol must be ≥ 0, got {tol}")
    if isinstance(max_iter, bool) or int(max_iter) != max_iter or max_iter < 1:
        raise ValueError(f"geometric_median: max_iter must be an integer ≥ 1, got {max_iter!r}")


def geometric_median_weights(
    updates: Sequence[Update],
    layout: Layout,
    nu: float = NU,
    tol: float = TOL,
    max_iter: float = MAX_ITER,
) -> np.ndarray:
    """Weights (in the order of `updates`, Σ = 1) of the smoothed geometric median."""
    check_params(nu, tol, max_iter)
    gram, order = span.centred_gram(updates, layout)
    w, _ = weiszfeld_weights(gram, nu, tol, int(max_iter))
    return span.in_input_order(w, order)
