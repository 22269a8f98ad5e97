"""Metrics on tiny arrays with hand-computed expectations (and scikit-learn as a cross-check)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from components.evaluate.metrics import (
    accuracy,
    auc,
    classification_metrics,
    confusion_matrix,
    cross_entropy,
    roc_auc,
    suppress_small_cells,
)

Y = np.array([0, 1, 1, 0])
P = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.5, 0.5]])


def test_accuracy_argmax_ties_pick_first_label():
    assert accuracy(Y, P) == 0.75  # predictions 0, 1, 0, 0 (the 0.5/0.5 tie -> label 0)


def test_cross_entropy_hand_computed():
    expected = -(math.log(0.8) + math.log(0.7) + math.log(0.4) + math.log(0.5)) / 4
    assert cross_entropy(Y, P) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.5473141, abs=1e-6)


def test_cross_entropy_clips_zero_probability():
    assert cross_entropy(np.array([1]), np.array([[1.0, 0.0]])) == pytest.approx(-math.log(1e-7))


def test_binary_auc_hand_computed():
    # positives score 0.7, 0.4; negatives 0.2, 0.5: 3 of 4 pairs ordered
    assert auc(Y, P) == (0.75, "roc_auc")


def test_auc_ties_count_half():
    positive = np.array([True, False, False])
    assert roc_auc(positive, np.array([0.5, 0.5, 0.1])) == 0.75


def test_auc_is_none_with_one_class():
    assert roc_auc(np.array([True, True]), np.array([0.1, 0.9])) is None
    assert auc(np.array([1, 1]), np.array([[0.2, 0.8], [0.6, 0.4]])) == (None, "roc_auc")


def test_multiclass_macro_one_vs_rest_hand_computed():
    y = np.array([0, 1, 2, 2])
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3]])
    # class 0: 1.0; class 1: 1.0; class 2: positives .7,.3 vs negatives .1,.3 -> 3.5/4
    value, method = auc(y, p)
    assert method == "macro_ovr_roc_auc"
    assert value == pytest.approx((1.0 + 1.0 + 0.875) / 3)


def test_multiclass_auc_skips_absent_classes_and_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=60)
    p = rng.dirichlet(np.ones(4), size=60)  # label 3 never occurs
    value, _ = auc(y, p)
    expected = np.mean([roc_auc_score(y == k, p[:, k]) for k in range(3)])
    assert value == pytest.approx(expected, rel=1e-12)
    yb = rng.integers(0, 2, size=50)
    pb = rng.dirichlet(np.ones(2), size=50)
    assert auc(yb, pb)[0] == pytest.approx(roc_auc_score(yb, pb[:, 1]), rel=1e-12)


def test_confusion_matrix_rows_true_columns_predicted():
    assert confusion_matrix(Y, np.array([0, 1, 0, 0]), 2).tolist() == [[2, 0], [1, 1]]


@pytest.mark.parametrize(
    ("matrix", "min_count", "expected"),
    [
        ([[10, 3], [0, 7]], 5, [[10, None], [None, 7]]),
        # one hidden diagonal cell -> the smallest visible diagonal cell is hidden too
        ([[9, 6, 6], [7, 3, 8], [5, 6, 12]], 5, [[None, 6, 6], [7, None, 8], [5, 6, 12]]),
        # one hidden off-diagonal cell -> smallest visible off-diagonal (5) hidden too
        ([[9, 6, 6], [7, 8, 2], [5, 6, 12]], 5, [[9, 6, 6], [7, 8, None], [None, 6, 12]]),
        ([[2, 0], [1, 1]], 2, [[None, None], [None, None]]),
        ([[2, 0], [1, 1]], 0, [[2, 0], [1, 1]]),
    ],
)
def test_small_cell_suppression(matrix, min_count, expected):
    assert suppress_small_cells(np.array(matrix), min_count) == expected


def test_classification_metrics_bundle():
    out = classification_metrics(Y, P, [0, 1], min_cell_count=1)
    assert out == {
        "accuracy": 0.75,
        "loss": pytest.approx(0.5473141, abs=1e-6),
        "auc": 0.75,
        "auc_method": "roc_auc",
        "num_examples": 4,
        "confusion_matrix": [[2, None], [None, 1]],  # lone hidden 0 off-diagonal: the 1 too
        "labels": [0, 1],
    }


def test_classification_metrics_refuse_bad_shapes_and_labels():
    with pytest.raises(ValueError, match="do not fit 4 rows x 3 labels"):
        classification_metrics(Y, P, [0, 1, 2], 5)
    with pytest.raises(ValueError, match="label 1 is not in the label set"):
        classification_metrics(Y, P, [0, 2], 5)
