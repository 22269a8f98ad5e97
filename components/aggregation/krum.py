"""Krum / Multi-Krum selection (Blanchard et al. 2017) from one Gram matrix.

Squared distances come from the K×K Gram matrix G of the updates, accumulated over column
blocks (‖xᵢ−xⱼ‖² = Gᵢᵢ + Gⱼⱼ − 2Gᵢⱼ): one BLAS call per block instead of K² pairwise passes.
Each block is taken relative to update 0 (distances are translation invariant), so the
subtraction cancels against the spread of the updates, not a component they share.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from components.aggregation.updates import Layout, Update, block_width, flat

GEMV_MAX_K = 16


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
    """K×K float64 Gram matrix of the flattened updates minus update 0.

    Distances are translation invariant, so each block is gathered as xᵢ − x₀ (one pass,
    the subtraction fused into the copy): a component common to all updates cancels before
    the products. Per block: one BLAS syrk (`np.dot(B, B.T)`), or for K ≤ GEMV_MAX_K one
    matrix-vector product per row, which OpenBLAS runs faster than syrk on so few rows.
    """
    k = len(updates)
    gram = np.zeros((k, k), dtype=np.float64)
    width = block_width(k, budget_bytes=4 << 20)
    buf = np.empty(k * width, dtype=np.float32)
    for name in layout.names:
        rows = [flat(u[name]) for u in updates]
        size = rows[0].size
        for start in range(0, size, width):
            stop = min(size, start + width)
            block = buf[: k * (stop - start)].reshape(k, stop - start)
            ref = rows[0][start:stop]
            for i, row in enumerate(rows):
                np.subtract(row[start:stop], ref, out=block[i])
            if k <= GEMV_MAX_K:
                for i in range(1, k):
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
