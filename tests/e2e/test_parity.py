"""DP-off parity: the federated global model within 1.5 points of the centralized baseline.

Breast cancer, IID over the three example sites, 5 rounds × 5 local epochs (the baseline gets
the same 25 epochs, batch size and learning rate on the pooled training data). Without DP the
run is deterministic for a seed. Other datasets/splits: `python -m pipelines.benchmarks.parity`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.local_run.runner import RunOptions, run_local

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
@pytest.mark.integration
@pytest.mark.slow
def test_federated_matches_centralized_without_dp(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_local(
        RunOptions(
            rounds=5,
            dataset="breast_cancer",
            split="iid",
            dp=False,
            run_id="parity-bc-iid",
            sites_dir=REPO / "sites",
            policies_dir=REPO / "policies",
            runs_dir=tmp_path,
            overrides={"local_epochs": 5},
        ),
        emit=lines.append,
    )
    summary = result.summary
    federated = summary["final"]["test_accuracy"]
    centralized = summary["baseline"]["test_accuracy"]
    assert summary["dp_enabled"] is False and summary["baseline"]["epochs"] == 25
    assert all(r["contributors"] == sorted(summary["sites"]) for r in summary["rounds"])
    assert centralized >= 0.93  # the baseline itself learned
    assert 100 * (centralized - federated) <= 1.5, (federated, centralized)
