"""The run summary and the report follow a regression task (pure)."""

from __future__ import annotations

import pytest

from components.report.render import render_html, render_markdown
from components.report.summary import build_summary, kfp_metrics, sum_histograms


def _eval(site, n, mae, rmse, r2, counts):
    return {
        "site_id": site,
        "round": 1,
        "task": "regression",
        "accuracy": None,
        "loss": rmse**2,
        "mae": mae,
        "rmse": rmse,
        "r2": r2,
        "num_examples": n,
        "confusion_matrix": None,
        "labels": [],
        "residual_histogram": {"edges": [-1.0, 0.0, 1.0], "counts": counts},
    }


def test_regression_summary_pools_site_figures_and_histograms():
    evals = [
        _eval("a", 10, 2.0, 3.0, 0.5, [5, None, None, 0]),
        _eval("b", 30, 4.0, 1.0, 0.7, [0, 10, 10, 10]),
    ]
    report = {"round": 1, "version": 1, "contributors": ["a", "b"], "epsilon": {}}
    summary = build_summary(
        [report],
        evals,
        test_accuracy={1: {"loss": 4.0, "mae": 1.5, "rmse": 2.0, "r2": 0.6}},
        baseline={"test_r2": 0.61, "test_mae": 1.4, "test_rmse": 1.9},
    )
    assert summary["task"] == "regression"
    g = summary["rounds"][0]["global"]
    assert g["mae"] == pytest.approx((2 * 10 + 4 * 30) / 40)
    assert g["rmse"] == pytest.approx(((9 * 10 + 1 * 30) / 40) ** 0.5)
    assert g["r2"] == pytest.approx((0.5 * 10 + 0.7 * 30) / 40)
    assert g["test_r2"] == 0.6
    final = summary["final"]
    assert final["test_r2"] == 0.6 and final["confusion_matrix"] == []
    assert final["residual_histogram"] == {
        "edges": [-1.0, 0.0, 1.0],
        "counts": [5, 10, 10, 10],
        "suppressed": [0, 1, 1, 0],
    }
    metrics = kfp_metrics(summary)
    assert metrics["final_test_r2"] == 0.6 and metrics["baseline_test_r2"] == 0.61
    html, md = render_html(summary), render_markdown(summary)
    assert "Residuals" in html and "Confusion matrix" not in html
    assert "federated − centralized R²" in md and "-0.0100" in md
    assert "10+ (1 suppressed)" in md


def test_classification_summaries_have_no_histogram():
    assert sum_histograms([{"confusion_matrix": [[1]]}]) is None
