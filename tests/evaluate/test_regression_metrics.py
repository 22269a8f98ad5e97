"""Regression metrics and residual histograms, hand-computed (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from components.evaluate.forward import predict_proba
from components.evaluate.metrics import (
    regression_metrics,
    residual_edges,
    suppress_small_counts,
)


def test_mae_rmse_r2_and_histogram_by_hand():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.5, 2.0, 2.0, 5.0])  # residuals 0.5, 0, -1, 1
    m = regression_metrics(y, p, [-0.5, 0.0, 0.5], min_cell_count=1)
    assert m["mae"] == pytest.approx(2.5 / 4)
    assert m["loss"] == pytest.approx(2.25 / 4)
    assert m["rmse"] == pytest.approx((2.25 / 4) ** 0.5)
    assert m["r2"] == pytest.approx(1 - 2.25 / 5.0)  # sum (y - 2.5)^2 = 5
    # bins: (<-0.5], [-0.5, 0), [0, 0.5), [0.5, ...): -1 | - | 0 | 0.5, 1
    assert m["residual_histogram"] == {"edges": [-0.5, 0.0, 0.5], "counts": [1, 0, 1, 2]}
    assert m["accuracy"] is None and m["confusion_matrix"] is None and m["num_examples"] == 4


def test_r2_needs_two_rows_with_spread():
    assert regression_metrics(np.array([3.0]), np.array([2.0]), [0.0], 1)["r2"] is None
    assert regression_metrics(np.array([3.0, 3.0]), np.array([2.0, 3.0]), [0.0], 1)["r2"] is None


def test_small_counts_are_suppressed_with_a_complementary_cell():
    assert suppress_small_counts([0, 7, 2, 9], 5) == [0, None, None, 9]
    assert suppress_small_counts([0, 7, 9], 5) == [0, 7, 9]
    assert suppress_small_counts([1, 2, 9], 5) == [None, None, 9]


def test_residual_edges_come_from_the_target_scale():
    assert residual_edges(4.0) == [-4.0, -2.0, 0.0, 2.0, 4.0]


def test_one_output_is_linear_not_a_softmax():
    x = np.array([[1.0, 2.0], [0.0, -1.0]])
    t = {"dense/kernel": np.array([[2.0], [1.0]]), "dense/bias": np.array([0.5])}
    np.testing.assert_allclose(predict_proba("logreg", t, x, 1), [[4.5], [-0.5]])
