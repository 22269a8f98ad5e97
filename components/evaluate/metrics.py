"""Classification metrics of a global model on a site's holdout (pure numpy).

* accuracy: fraction of rows whose arg-max class is the true label.
* loss: mean categorical cross-entropy, -log(p_true) with p clipped to [1e-7, 1] (Keras' eps).
* auc: binary tasks: ROC AUC of the second label's probability (Mann-Whitney U, ties count
  1/2); multiclass: macro average of one-vs-rest ROC AUCs over the labels that have both
  positive and negative rows in the holdout. None when fewer than one (binary) / two
  (multiclass) labels qualify.
* confusion matrix: rows = true label, columns = predicted, in the contract's label order;
  small-cell suppression via `suppress_small_cells`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PROB_EPSILON = 1e-7


def _check(y: np.ndarray, probs: np.ndarray, n_labels: int) -> None:
    if probs.ndim != 2 or probs.shape[0] != y.shape[0] or probs.shape[1] != n_labels:
        raise ValueError(
            f"probabilities of shape {probs.shape} do not fit {y.shape[0]} rows x {n_labels} labels"
        )
    if y.shape[0] == 0:
        raise ValueError("no rows to evaluate")


def label_indices(y: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """Positions of each y value in `labels` (ValueError for a value outside the set)."""
    lookup = {int(label): i for i, label in enumerate(labels)}
    try:
        return np.array([lookup[int(v)] for v in y], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]} is not in the label set") from None


def accuracy(y_idx: np.ndarray, probs: np.ndarray) -> float:
    """Fraction of rows with argmax(probs) == y_idx."""
    return float(np.mean(np.argmax(probs, axis=1) == y_idx))


def cross_entropy(y_idx: np.ndarray, probs: np.ndarray) -> float:
    """Mean -log(clip(p[row, y_idx[row]], 1e-7, 1)), natural log."""
    p_true = np.clip(probs[np.arange(len(y_idx)), y_idx], PROB_EPSILON, 1.0)
    return float(-np.mean(np.log(p_true)))


def _average_ranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks, ties get their average rank."""
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC of `scores` for the boolean `positive`; None if one class is absent."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def auc(y_idx: np.ndarray, probs: np.ndarray) -> tuple[float | None, str]:
    """(AUC, method): ("roc_auc" binary) or ("macro_ovr_roc_auc" multiclass); value or None."""
    n_labels = probs.shape[1]
    if n_labels == 2:
        return roc_auc(y_idx == 1, probs[:, 1]), "roc_auc"
    per_class = [roc_auc(y_idx == k, probs[:, k]) for k in range(n_labels)]
    valid = [a for a in per_class if a is not None]
    return (float(np.mean(valid)) if len(valid) >= 2 else None), "macro_ovr_roc_auc"


def confusion_matrix(y_idx: np.ndarray, pred_idx: np.ndarray, n_labels: int) -> np.ndarray:
    """Counts [true, predicted] as int64."""
    matrix = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(matrix, (y_idx, pred_idx), 1)
    return matrix


def suppress_small_cells(matrix: np.ndarray, min_count: int) -> list[list[int | None]]:
    """Cells with count < `min_count` become None (primary suppression).

    Complementary suppression: accuracy and num_examples are published too, so the sum of
    the diagonal and of the off-diagonal cells is known; if exactly one cell of either group
    were hidden it could be recomputed, so the smallest visible cell of that group is hidden
    as well. Row/column totals are not published.
    """
    n = matrix.shape[0]
    hidden = matrix < min_count
    diagonal = np.eye(n, dtype=bool)
    for group in (diagonal, ~diagonal):
        if int((hidden & group).sum()) == 1:
            visible = np.argwhere(group & ~hidden)
            if len(visible):
                smallest = min(visible, key=lambda rc: matrix[rc[0], rc[1]])
                hidden[smallest[0], smallest[1]] = True
    return [[None if hidden[i, j] else int(matrix[i, j]) for j in range(n)] for i in range(n)]


def classification_metrics(
    y: np.ndarray, probs: np.ndarray, labels: Sequence[int], min_cell_count: int
) -> dict[str, Any]:
    """accuracy, loss, auc (+ auc_method), num_examples, suppressed confusion matrix, labels."""
    y = np.asarray(y)
    probs = np.asarray(probs, dtype=np.float64)
    _check(y, probs, len(labels))
    y_idx = label_indices(y, labels)
    auc_value, auc_method = auc(y_idx, probs)
    matrix = confusion_matrix(y_idx, np.argmax(probs, axis=1), len(labels))
    return {
        "accuracy": accuracy(y_idx, probs),
        "loss": cross_entropy(y_idx, probs),
        "auc": auc_value,
        "auc_method": auc_method,
        "num_examples": int(len(y)),
        "confusion_matrix": suppress_small_cells(matrix, min_cell_count),
        "labels": [int(label) for label in labels],
    }


def residual_edges(scale: float) -> list[float]:
    """Fixed residual-histogram bin edges from the contract's target scale (not from data):
    ±0.5 and ±1 target scales around 0, six bins, the outer ones open-ended (coarse, so that
    small holdouts keep bins above the policy's minimum cell count)."""
    return [-scale, -0.5 * scale, 0.0, 0.5 * scale, scale]


def suppress_small_counts(counts: Sequence[int], min_count: int) -> list[int | None]:
    """Counts below `min_count` (but above 0) become null; when exactly one count is hidden,
    the smallest visible positive count is hidden too (the total gives a single gap away)."""
    out: list[int | None] = [c if c == 0 or c >= min_count else None for c in counts]
    if sum(v is None for v in out) == 1:
        visible = [(c, i) for i, c in enumerate(out) if c]
        if visible:
            out[min(visible)[1]] = None
    return out


def regression_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, edges: Sequence[float], min_cell_count: int
) -> dict[str, Any]:
    """MAE, RMSE, R² (None below 2 rows or without spread), loss = MSE (all in the target's
    unit), num_examples and a residual histogram (prediction − truth) over fixed `edges` with
    small counts suppressed. Accuracy, AUC and the confusion matrix are null."""
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"y {y.shape} and predictions {p.shape} must be the same non-empty size")
    if not np.isfinite(p).all():
        raise ValueError("predictions contain NaN or infinite values")
    residual = p - y
    mse = float(np.mean(residual**2))
    spread = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / spread if y.size >= 2 and spread > 0 else None
    bins = np.searchsorted(np.asarray(edges, dtype=np.float64), residual, side="right")
    counts = np.bincount(bins, minlength=len(edges) + 1).tolist()
    return {
        "accuracy": None,
        "loss": mse,
        "auc": None,
        "auc_method": None,
        "mae": float(np.mean(np.abs(residual))),
        "rmse": float(np.sqrt(mse)),
        "r2": r2,
        "num_examples": int(y.size),
        "confusion_matrix": None,
        "labels": [],
        "residual_histogram": {
            "edges": [float(e) for e in edges],
            "counts": suppress_small_counts(counts, min_cell_count),
        },
    }
