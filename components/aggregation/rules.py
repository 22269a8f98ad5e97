"""Aggregation rules over named-tensor updates: one pure entry point, `aggregate`.

Rules (parameters; defaults):

* `fedavg`: mean, weighted by `weights` (e.g. example counts) when given.
* `median`: coordinate-wise median (mean of the two middle values for even K).
* `trimmed_mean` (`beta`=0.1): per coordinate, drop the ⌊β·K⌋ smallest and largest values,
  average the rest; 0 ≤ β < 0.5.
* `krum` (`f`): the single update with the lowest Krum score; needs K > 2f+2.
* `multi_krum` (`f`, `m`=K−f): mean of the m updates with the lowest Krum scores.
* `norm_bounded_mean` (`clip_norm`): each update scaled to L2 norm ≤ C (over all its
  tensors), then the (weighted) mean; a zero update stays zero.
* `geometric_median` (`nu`=1e-6, `tol`=1e-6, `max_iter`=100): smoothed Weiszfeld (RFA),
  `geometric_median.py`.
* `centred_clipping` (`tau`=median distance to the start, `iters`=3): Karimireddy et al.
  2021 from the medoid, `centred_clipping.py`.
* `screened_geometric_median` (`min_cosine`=0, `nu`, `tol`, `max_iter` as above): the
  geometric median of the updates whose cosine to the geometric median of all of them is above
  `min_cosine` (at least a majority kept), `screened_geometric_median.py`.

Updates are float32 tensors with identical names and shapes (see `updates.check_updates`);
values must be finite (the caller verifies them first). Only `fedavg` and
`norm_bounded_mean` take weights; robust rules refuse them. Memory: the means and
norm-bounded mean use O(P) extra; median, trimmed mean and Krum O(K·block), Multi-Krum
O(P + K·block) (no K×P copy); geometric median and centred clipping O(P + K·block) (one Gram
pass, rarely two, and one weighted sum); the screened geometric median the same plus one pass
for the K inner products with the reference update.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from components.aggregation import krum as krum_mod
from components.aggregation.centred_clipping import centred_clipping_weights
from components.aggregation.geometric_median import geometric_median_weights
from components.aggregation.order_stats import NETWORK_MAX_K, median_into, trimmed_sum_into
from components.aggregation.screened_geometric_median import (
    screened_geometric_median_weights,
)
from components.aggregation.updates import (
    Layout,
    Update,
    block_width,
    check_updates,
    column_blocks,
    flat,
)
from components.common.tensors import Tensors

MEAN_BLOCK = 131072  # columns per block when accumulating means (512 KiB of float32)


class AggregationError(ValueError):
    """The round cannot produce a valid next model: a rule, its parameters or the weights
    cannot be applied to these updates, a setting is unknown, or the result is not finite."""


def check_weights(weights: Sequence[float], k: int) -> np.ndarray:
    """Weights as float64, refusing a wrong length, negative/non-finite values or zero sum."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (k,):
        raise AggregationError(f"weights: expected {k} values (one per update), got {w.shape}")
    bad = [i for i in range(k) if not np.isfinite(w[i]) or w[i] < 0]
    if bad:
        raise AggregationError(
            f"weights: update(s) {bad} have a negative or non-finite weight {w[bad].tolist()}"
        )
    if w.sum() <= 0:
        raise AggregationError(
            "weights sum to zero: no update carries any weight (all sites reported 0 examples?)"
        )
    return w


def linear_combination(
    updates: Sequence[Update], layout: Layout, coeffs: np.ndarray | None
) -> Tensors:
    """Σₖ cₖ·xₖ per tensor (`coeffs` None: the plain mean, Σₖ xₖ / K), accumulated block by
    block in float32: one read of every update, O(P) output plus one block of scratch."""
    k = len(updates)
    used = list(range(k))
    if coeffs is not None:
        coeffs = np.asarray(coeffs, dtype=np.float32)
        used = [i for i in range(k) if coeffs[i] != 0]
    out: Tensors = {}
    scratch = np.empty(MEAN_BLOCK, dtype=np.float32)
    for name, shape in zip(layout.names, layout.shapes, strict=True):
        rows = [flat(updates[i][name]) for i in used]
        scale = None if coeffs is None else [coeffs[i] for i in used]
        size = flat(updates[0][name]).size
        result = np.empty(size, dtype=np.float32)
        for start in range(0, size, MEAN_BLOCK):
            stop = min(size, start + MEAN_BLOCK)
            acc = result[start:stop]
            if not rows:
                acc[...] = 0
            elif scale is None:
                if len(rows) == 1:
                    np.copyto(acc, rows[0][start:stop])
                else:
                    np.add(rows[0][start:stop], rows[1][start:stop], out=acc)
                for row in rows[2:]:
                    np.add(acc, row[start:stop], out=acc)
                if k > 1:
                    np.divide(acc, np.float32(k), out=acc)
            else:
                tmp = scratch[: stop - start]
                np.multiply(rows[0][start:stop], scale[0], out=acc)
                for row, c in zip(rows[1:], scale[1:], strict=True):
                    np.multiply(row[start:stop], c, out=tmp)
                    np.add(acc, tmp, out=acc)
        out[name] = result.reshape(shape)
    return out


def update_norms(updates: Sequence[Update], layout: Layout) -> np.ndarray:
    """L2 norm of each whole update (all tensors), float64; overflow-safe."""
    norms = np.empty(len(updates), dtype=np.float64)
    for i, u in enumerate(updates):
        sq = sum(float(np.dot(flat(u[n]), flat(u[n]))) for n in layout.names)
        if not np.isfinite(sq):  # float32 dot overflowed: rescale by the largest magnitude
            big = max(float(np.max(np.abs(u[n]))) for n in layout.names)
            sq = big * big * sum(float(np.sum((flat(u[n]) / big) ** 2)) for n in layout.names)
        norms[i] = np.sqrt(sq)
    return norms


def _blockwise(
    updates: Sequence[Update], layout: Layout, fill: Callable[[np.ndarray, np.ndarray], None]
) -> Tensors:
    """Apply `fill(block, out_slice)` to every column block; returns the named results."""
    pairs = list(zip(layout.names, layout.shapes, strict=True))
    out = {n: np.empty(int(np.prod(s)), dtype=np.float32) for n, s in pairs}
    k = len(updates)
    # network: ~1 MiB blocks stay in L2 across its many row passes; sort: 4 MiB amortises
    # the per-row gather overhead (measured best on this machine)
    width = block_width(k, budget_bytes=(1 << 20) if k <= NETWORK_MAX_K else (4 << 20))
    for name, start, stop, block in column_blocks(updates, layout, width):
        fill(block, out[name][start:stop])
    return {n: out[n].reshape(s) for n, s in pairs}


def fedavg(updates: Sequence[Update], layout: Layout, weights: np.ndarray | None) -> Tensors:
    """(Weighted) mean."""
    if weights is None:
        return linear_combination(updates, layout, None)
    return linear_combination(updates, layout, weights / weights.sum())


def median(updates: Sequence[Update], layout: Layout) -> Tensors:
    """Coordinate-wise median."""
    return _blockwise(updates, layout, median_into)


def trimmed_mean(updates: Sequence[Update], layout: Layout, beta: float = 0.1) -> Tensors:
    """Coordinate-wise mean after dropping ⌊β·K⌋ values on each side."""
    k = len(updates)
    if not 0 <= beta < 0.5:
        raise AggregationError(f"trimmed_mean: beta must be in [0, 0.5), got {beta}")
    trim = min(int(np.floor(beta * k + 1e-9)), (k - 1) // 2)  # 0.29·100 is 28.999…
    if trim == 0:
        return linear_combination(updates, layout, None)
    keep = np.float32(k - 2 * trim)

    def fill(block: np.ndarray, out: np.ndarray) -> None:
        trimmed_sum_into(block, trim, out)
        out /= keep

    return _blockwise(updates, layout, fill)


def multi_krum_selection(updates: Sequence[Update], f: int, m: int | None = None) -> list[int]:
    """Indices of the updates Multi-Krum keeps (m defaults to K − f); for round reports."""
    layout = check_updates(updates)
    k = len(updates)
    m = k - f if m is None else m
    krum_mod.check_krum(k, f, m)
    dist = krum_mod.squared_distances(krum_mod.gram_matrix(updates, layout))
    return krum_mod.select(dist, f, m)


def multi_krum(updates: Sequence[Update], layout: Layout, f: int, m: int | None = None) -> Tensors:
    """Mean of the m (default K − f) updates with the lowest Krum scores.

    When m > K/2 (and K > krum.GEMV_MAX_K: for fewer updates, measured no faster) the Gram
    pass also takes column sums of xᵢ − x₀, and the mean is finished from them by reading
    only x₀ and the K − m rejected updates, provided `krum.mean_from_sums_is_accurate` holds;
    otherwise the m selected updates are summed.
    """
    k = len(updates)
    m = k - f if m is None else m
    krum_mod.check_krum(k, f, m)
    sums = None
    if 2 * m > k > krum_mod.GEMV_MAX_K:
        sums = {n: np.empty(int(np.prod(s)), dtype=np.float32) for n, s in _pairs(layout)}
    dist = krum_mod.squared_distances(krum_mod.gram_matrix(updates, layout, sums))
    selected = krum_mod.select(dist, f, m)
    if sums is not None and krum_mod.mean_from_sums_is_accurate(dist, selected):
        return mean_from_column_sums(updates, layout, sums, selected)
    return linear_combination([updates[i] for i in selected], layout, None)


def mean_from_column_sums(
    updates: Sequence[Update],
    layout: Layout,
    sums: dict[str, np.ndarray],
    selected: Sequence[int],
) -> Tensors:
    """x₀ + (Σᵢ dᵢ − Σ_{r∉S} d_r)/|S| per tensor, dᵢ = xᵢ − x₀, given `sums` = Σᵢ dᵢ over all
    updates (flat float32, as `krum.gram_matrix` fills them; overwritten with the result).

    Reads x₀ and the rejected updates only; extra memory one block of scratch.
    """
    chosen = set(selected)
    rejected = [i for i in range(1, len(updates)) if i not in chosen]  # d₀ = 0
    count = np.float32(len(chosen))
    scratch = np.empty(MEAN_BLOCK, dtype=np.float32)
    out: Tensors = {}
    for name, shape in _pairs(layout):
        ref_all = flat(updates[0][name])
        rows = [flat(updates[r][name]) for r in rejected]
        result = sums[name]
        for start in range(0, ref_all.size, MEAN_BLOCK):
            stop = min(ref_all.size, start + MEAN_BLOCK)
            acc, ref, tmp = result[start:stop], ref_all[start:stop], scratch[: stop - start]
            for row in rows:
                np.subtract(row[start:stop], ref, out=tmp)
                np.subtract(acc, tmp, out=acc)
            np.divide(acc, count, out=acc)
            np.add(acc, ref, out=acc)
        out[name] = result.reshape(shape)
    return out


def _pairs(layout: Layout) -> list[tuple[str, tuple[int, ...]]]:
    return list(zip(layout.names, layout.shapes, strict=True))


def norm_bounded_mean(
    updates: Sequence[Update], layout: Layout, weights: np.ndarray | None, clip_norm: float
) -> Tensors:
    """(Weighted) mean of the updates, each first scaled to L2 norm ≤ `clip_norm`."""
    if not (np.isfinite(clip_norm) and clip_norm > 0):
        raise AggregationError(f"norm_bounded_mean: clip_norm must be > 0, got {clip_norm}")
    norms = update_norms(updates, layout)
    scale = np.ones_like(norms)
    big = norms > clip_norm
    scale[big] = clip_norm / norms[big]  # zero-norm updates keep scale 1: no 0/0
    share = (
        np.full(len(updates), 1.0 / len(updates)) if weights is None else weights / weights.sum()
    )
    return linear_combination(updates, layout, scale * share)


# rule name -> (accepted parameters, required parameters, takes weights)
RULES: dict[str, tuple[frozenset[str], frozenset[str], bool]] = {
    "fedavg": (frozenset(), frozenset(), True),
    "median": (frozenset(), frozenset(), False),
    "trimmed_mean": (frozenset({"beta"}), frozenset(), False),
    "krum": (frozenset({"f"}), frozenset({"f"}), False),
    "multi_krum": (frozenset({"f", "m"}), frozenset({"f"}), False),
    "norm_bounded_mean": (frozenset({"clip_norm"}), frozenset({"clip_norm"}), True),
    "geometric_median": (frozenset({"nu", "tol", "max_iter"}), frozenset(), False),
    "centred_clipping": (frozenset({"tau", "iters"}), frozenset(), False),
    "screened_geometric_median": (
        frozenset({"min_cosine", "nu", "tol", "max_iter"}),
        frozenset(),
        False,
    ),
}


def aggregate(
    updates: Sequence[Update],
    rule: str,
    weights: Sequence[float] | None = None,
    **params: float,
) -> Tensors:
    """Combine `updates` (list of {name: float32 array}) with `rule`; see the module doc.

    Raises UpdateShapeError for mismatched names/shapes/dtypes, AggregationError for an
    unknown rule, unknown or missing parameters, bad weights, and KrumConfigError when K is
    too small for Krum's f.
    """
    if rule not in RULES:
        raise AggregationError(f"unknown aggregation rule {rule!r}; choose from {sorted(RULES)}")
    accepted, required, takes_weights = RULES[rule]
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise AggregationError(
            f"{rule}: unknown parameter(s) {unknown}; accepted: {sorted(accepted) or 'none'}"
        )
    missing = sorted(required - set(params))
    if missing:
        raise AggregationError(f"{rule}: missing required parameter(s) {missing}")
    if weights is not None and not takes_weights:
        raise AggregationError(
            f"{rule}: a robust rule treats every update alike and takes no weights "
            f"(weights are for fedavg and norm_bounded_mean)"
        )
    layout = check_updates(updates)
    w = None if weights is None else check_weights(weights, len(updates))
    if rule == "fedavg":
        return fedavg(updates, layout, w)
    if rule == "median":
        return median(updates, layout)
    if rule == "trimmed_mean":
        return trimmed_mean(updates, layout, float(params.get("beta", 0.1)))
    if rule == "krum":
        return multi_krum(updates, layout, _as_int(rule, "f", params["f"]), 1)
    if rule == "multi_krum":
        m = params.get("m")
        m_int = None if m is None else _as_int(rule, "m", m)
        return multi_krum(updates, layout, _as_int(rule, "f", params["f"]), m_int)
    if rule == "norm_bounded_mean":
        return norm_bounded_mean(updates, layout, w, float(params["clip_norm"]))
    try:
        if rule == "geometric_median":
            coeffs = geometric_median_weights(updates, layout, **params)
        elif rule == "screened_geometric_median":
            coeffs = screened_geometric_median_weights(updates, layout, **params)
        else:
            coeffs = centred_clipping_weights(updates, layout, **params)
    except ValueError as exc:
        raise AggregationError(str(exc)) from exc
    return linear_combination(updates, layout, coeffs)


def _as_int(rule: str, name: str, value: float) -> int:
    if isinstance(value, bool) or int(value) != value:
        raise AggregationError(f"{rule}: parameter {name} must be an integer, got {value!r}")
    return int(value)
