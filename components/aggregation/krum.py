"""Krum / Multi-Krum selection (Blanchard et al. 2017) from one Gram matrix.

Squared distances come from the K×K Gram matrix G of the updates, accumulated over column
blocks (‖xᵢ−xⱼ‖² = Gᵢᵢ + Gⱼⱼ − 2Gᵢⱼ): one BLAS call per block instead of K² pairwise passes.
Each block is centred on its column mean first (distances are translation invariant), so
the subtraction cancels against the spread of the updates, not their magnitude. The mean is
rounded to 10 mantissa bits, which keeps small-integer inputs exact (ties stay ties).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from components.aggregation.updates import Layout, Update, block_width, column_blocks

GEMV_MAX_K = 16
_MANTISSA_10_BITS = np.int32(-(1 << 13))  # float32 bit mask clearing the low 13 mantissa bits


class KrumConfigError(ValueError):
    """Krum parameters that do not fit the number of updates."""


def check_krum(k: int, f: int, m: int) -> None:
    """Krum needs K > 2f + 2 updates and 1 ≤ m ≤ K selected; KrumConfigError otherwise."""
    if f < 0:
        raise KrumConfigError(f"krum: f (assumed Byzantine updates) must be ≥ 0, got {f}")
    if k <= 2 * f + 2:
        raise KrumConfigError(
            f"krum: K={k} updates cannot tolerate f={f} Byzantine ones: Krum needs "
            f"K > 2f+2 = {2 * f + 2} (lower f to at most {max((k - 3) // 2, 0)} "
            f"or wait for more valid updates)"
        )
    if not 1 <= m <= k:
        raise KrumConfigError(f"krum: m (updates selected) must be in [1, {k}], got {m}")


def gram_matrix(updates: Sequence[Update], layout: Layout) -> np.ndarray:
    """K×K float64 Gram matrix of the (block-wise centred) flattened updates.

    Per block: one BLAS syrk (`np.dot(B, B.T)`), or for K ≤ GEMV_MAX_K one matrix-vector
    product per row, which OpenBLAS runs faster than syrk on so few rows.
    """
    k = len(updates)
    gram = np.zeros((k, k), dtype=np.float64)
    width = block_width(k, budget_bytes=2 << 20)
    centre_buf = np.empty(width, dtype=np.float32)
    inv_k = np.float32(1.0 / k)
    for _, _, _, block in column_blocks(updates, layout, width):
        centre = centre_buf[: block.shape[1]]
        np.add.reduce(block, axis=0, out=centre)
        centre *= inv_k
        centre.view(np.int32)[...] &= _MANTISSA_10_BITS
        block -= centre
        if k <= GEMV_MAX_K:
            for i in range(k):
                gram[i] += block @ block[i]
        else:
            gram += np.dot(block, block.T)
    return gram


def squared_distances(gram: np.ndarray) -> np.ndarray:
    """K×K squared Euclidean distances from a Gram matrix (clamped at 0, zero diagonal)."""
    diag = np.diag(gram)
    dist = diag[:, None] + diag[None, :] - 2.0 * gram
    np.maximum(dist, 0.0, out=dist)
    np.fill_diagonal(dist, 0.0)
    return dist


def krum_scores(dist: np.ndarray, f: int) -> np.ndarray:
    """Score of each update: sum of its squared distances to its K − f − 2 nearest others."""
    k = dist.shape[0]
    check_krum(k, f, 1)
    others = dist + np.diag(np.full(k, np.inf))
    nearest = np.sort(others, axis=1)[:, : k - f - 2]
    return nearest.sum(axis=1)


def select(dist: np.ndarray, f: int, m: int) -> list[int]:
    """Indices (ascending) of the m updates with the lowest Krum scores; ties go to the
    lower index."""
    check_krum(dist.shape[0], f, m)
    order = np.argsort(krum_scores(dist, f), kind="stable")
    return sorted(int(i) for i in order[:m])
