"""Points in the affine span of the updates, handled by their K weights (pure numpy).

Geometric median and centred clipping only ever move a centre v = Σᵢ wᵢ·xᵢ with Σᵢ wᵢ = 1,
and only need its distances to the updates. With dᵢ = xᵢ − x_r (r the reference update) and
G the Gram matrix of the dᵢ, ‖xⱼ − v‖² = Gⱼⱼ − 2(Gw)ⱼ + wᵀGw: every iteration runs on K×K
numbers, so a rule reads the updates twice whatever its iteration count (one Gram pass,
`krum.gram_matrix`, and one weighted sum, `rules.linear_combination`).

Precision: G's entries carry the float32 rounding of ‖dᵢ‖², so a distance much smaller than
the updates' distance to the reference loses digits. `centred_gram` therefore takes the
reference to be a central update: it computes G relative to update 0, and when update 0 lies
far outside the others (an outlier, e.g. an attacker listed first) recomputes it relative to
the medoid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from components.aggregation import krum as krum_mod
from components.aggregation.updates import Layout, Update

RECENTRE_RATIO = 4.0  # recompute G when update 0 is > 4× the medoid's median distance away


def centred_gram(updates: Sequence[Update], layout: Layout) -> tuple[np.ndarray, list[int]]:
    """(G, order): the Gram matrix (float64, K×K) of the updates taken in `order` (a
    permutation of range(K)) relative to the first of them, chosen central (see module doc).

    One pass over the updates; a second only when update 0 is an outlier."""
    k = len(updates)
    order = list(range(k))
    gram = krum_mod.gram_matrix(updates, layout)
    if k < 3:
        return gram, order
    dist = krum_mod.squared_distances(gram)
    medoid = int(np.argmin(np.sqrt(dist).sum(axis=1)))
    typical = float(np.median(np.sqrt(dist[medoid])))
    if medoid != 0 and np.sqrt(dist[0, medoid]) > RECENTRE_RATIO * max(typical, 0.0):
        order = [medoid] + [i for i in order if i != medoid]
        gram = krum_mod.gram_matrix([updates[i] for i in order], layout)
    return gram, order


def distances(gram: np.ndarray, w: np.ndarray) -> np.ndarray:
    """‖xⱼ − v‖ for every j, v = Σ wᵢxᵢ with Σ wᵢ = 1 (G relative to one of the xᵢ);
    float64, clamped at 0 against rounding."""
    gw = gram @ w
    sq = np.diag(gram) - 2.0 * gw + float(w @ gw)
    return np.sqrt(np.maximum(sq, 0.0))


def in_input_order(w: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """Weights indexed by the caller's update order (w is in `order`)."""
    out = np.empty_like(w)
    out[list(order)] = w
    return out


def medoid_weights(gram: np.ndarray) -> np.ndarray:
    """One-hot weights of the update with the least sum of distances to the others (ties:
    the lower index)."""
    dist = np.sqrt(krum_mod.squared_distances(gram))
    w = np.zeros(gram.shape[0])
    w[int(np.argmin(dist.sum(axis=1)))] = 1.0
    return w
