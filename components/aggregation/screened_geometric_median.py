"""Geometric median after a cosine screen (the README's default robust rule).

1. v₀ = the smoothed geometric median of all K updates (`geometric_median`, RFA);
2. cᵢ = cos(xᵢ, v₀); an update with cᵢ ≤ `min_cosine` (default 0: it points away from, or
   across, the round's robust centre) is dropped, but at least ⌊K/2⌋ + 1 updates stay (those
   with the highest cosines), and nothing is dropped when v₀ = 0 (no direction to compare with);
3. the result is the smoothed geometric median of the kept updates.

Why (measured, `pipelines/MEASUREMENTS.md`): late in training the honest updates on digits
spread 1.5–2× the norm of their mean, so a sign-flipped update −xᵢ is hardly farther from the
honest ones than they are from each other (‖2m + nᵢ + nⱼ‖ against ‖nᵢ − nⱼ‖), and the plain
geometric median of 7 honest and 3 flipped updates followed only half of the honest mean
(split 6: −3.8 points at f = 3). The same updates are separated cleanly by their direction:
every honest update had a positive cosine to the geometric median, the flipped, scaled and
label-flipped ones a negative one. The screen is FLTrust's ReLU-cosine trust score (Cao et al.
2021, "FLTrust: Byzantine-robust Federated Learning via Trust Bootstrapping") with the
round's geometric median as the reference instead of a server-side root dataset, and the
geometric median instead of a trust-weighted mean. The threshold 0 is the sign boundary, not a
tuned value. What it does not stop: updates built to point along the centre (ALIE, Baruch et
al. 2019) pass the screen, as they pass the geometric median itself.

Runs on the K×K Gram matrix of the updates relative to a central one (`span.centred_gram`) plus
the K inner products with that reference update (the cosines need the origin): two passes over
the updates (three when update 0 is an outlier) and one weighted sum.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from components.aggregation import span
from components.aggregation.geometric_median import MAX_ITER, NU, TOL, weiszfeld_weights
from components.aggregation.geometric_median import check_params as check_gm_params
from components.aggregation.updates import Layout, Update, flat

MIN_COSINE = 0.0


def absolute_gram(gram: np.ndarray, ref_dots: np.ndarray, ref: int) -> np.ndarray:
    """⟨xᵢ, xⱼ⟩ for all i, j from G (Gram of dᵢ = xᵢ − x_ref) and ref_dots[i] = ⟨xᵢ, x_ref⟩:
    ⟨xᵢ, xⱼ⟩ = Gᵢⱼ + bᵢ + bⱼ + ‖x_ref‖², bᵢ = ⟨dᵢ, x_ref⟩ = ref_dots[i] − ‖x_ref‖²."""
    sq_ref = float(ref_dots[ref])
    b = ref_dots - sq_ref
    return gram + b[:, None] + b[None, :] + sq_ref


def cosines(inner: np.ndarray, w: np.ndarray) -> np.ndarray:
    """cos(xᵢ, v), v = Σ wⱼxⱼ, from the absolute Gram `inner`; 0 for a zero update, and all
    nan when v = 0."""
    iv = inner @ w
    vv = float(w @ iv)
    if vv <= 0:
        return np.full(len(w), np.nan)
    norms = np.sqrt(np.maximum(np.diag(inner), 0.0))
    out = np.zeros(len(w))
    nonzero = norms > 0
    out[nonzero] = iv[nonzero] / (norms[nonzero] * np.sqrt(vv))
    return out


def kept(cos: np.ndarray, min_cosine: float) -> np.ndarray:
    """Indices the screen keeps: cos > min_cosine, at least ⌊K/2⌋ + 1 (the highest cosines,
    ties to the lower index); all when the cosines are nan (zero centre)."""
    k = len(cos)
    if np.isnan(cos).any():
        return np.arange(k)
    keep = np.flatnonzero(cos > min_cosine)
    majority = k // 2 + 1
    if len(keep) < majority:
        keep = np.sort(np.argsort(-cos, kind="stable")[:majority])
    return keep


def screened_weights(
    gram: np.ndarray,
    ref_dots: np.ndarray,
    ref: int,
    min_cosine: float = MIN_COSINE,
    nu: float = NU,
    tol: float = TOL,
    max_iter: int = MAX_ITER,
) -> tuple[np.ndarray, np.ndarray]:
    """(weights w, Σw = 1, zero on dropped updates; the cosines to the first centre), from the
    Gram matrix relative to update `ref` and every update's inner product with it."""
    w0, _ = weiszfeld_weights(gram, nu, tol, max_iter)
    cos = cosines(absolute_gram(gram, ref_dots, ref), w0)
    keep = kept(cos, min_cosine)
    w = np.zeros(len(w0))
    if len(keep) == len(w0):
        w[:] = w0
    else:  # a sub-Gram relative to x_ref is still a valid Gram for the kept updates
        w[keep], _ = weiszfeld_weights(gram[np.ix_(keep, keep)], nu, tol, max_iter)
    return w, cos


def reference_dots(updates: Sequence[Update], layout: Layout, ref: int) -> np.ndarray:
    """⟨xᵢ, x_ref⟩ for every update over all tensors (float32 products, float64 sums; redone
    in float64 when float32 overflows)."""
    out = np.zeros(len(updates))
    for name in layout.names:
        r = flat(updates[ref][name])
        for i, u in enumerate(updates):
            x = flat(u[name])
            value = float(np.dot(x, r))
            if not np.isfinite(value):
                value = float(np.dot(x.astype(np.float64), r.astype(np.float64)))
            out[i] += value
    return out


def check_params(min_cosine: float, nu: float, tol: float, max_iter: float) -> None:
    """ValueError naming the parameter when one is out of range."""
    if not (np.isfinite(min_cosine) and -1.0 <= min_cosine < 1.0):
        raise ValueError(
            f"screened_geometric_median: min_cosine must be in [-1, 1), got {min_cosine}"
        )
    try:
        check_gm_params(nu, tol, max_iter)
    except ValueError as exc:  # "geometric_median: …" → "screened_geometric_median: …"
        raise ValueError(f"screened_{exc}") from exc


def screened_geometric_median_weights(
    updates: Sequence[Update],
    layout: Layout,
    min_cosine: float = MIN_COSINE,
    nu: float = NU,
    tol: float = TOL,
    max_iter: float = MAX_ITER,
) -> np.ndarray:
    """Weights (in the order of `updates`, Σ = 1, 0 for dropped updates) of the rule."""
    check_params(min_cosine, nu, tol, max_iter)
    gram, order = span.centred_gram(updates, layout)
    ordered = [updates[i] for i in order]
    dots = reference_dots(ordered, layout, 0)
    w, _ = screened_weights(gram, dots, 0, min_cosine, nu, tol, int(max_iter))
    return span.in_input_order(w, order)
