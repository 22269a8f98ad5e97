"""The diabetes example (regression) end to end: 3 sites x 5 rounds without DP, the federated
pooled-test R² within 0.03 of the centralized baseline trained on the same rows, both printed
and in summary.json; the report shows residuals, not a confusion matrix."""

from __future__ import annotations

import json

import pytest

from tests.support.e2e import fedpipe

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_diabetes_federated_r2_is_within_003_of_centralized(tmp_path):
    runs = tmp_path / "runs"
    proc = fedpipe(
        "run", "--local", "--example", "diabetes", "--no-dp", "--rounds", "5",
        "--runs-dir", str(runs), "--run-id", "diabetes-1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("federated pooled-test R²"))
    summary = json.loads((runs / "diabetes-1" / "summary.json").read_text())
    assert summary["task"] == "regression"
    federated, central = summary["final"]["test_r2"], summary["baseline"]["test_r2"]
    assert line.startswith(f"federated pooled-test R² {federated:.4f}")  # both printed
    assert f"centralized baseline R² {central:.4f}" in line
    assert abs(federated - central) <= 0.03, line
    report = (runs / "diabetes-1" / "report.html").read_text()
    assert "Residuals (final global model" in report and "Confusion matrix" not in report
