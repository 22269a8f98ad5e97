"""DP-off parity: the federated global model within 1.5 points of the centralized baseline.

The default `fedpipe run --local` settings (the dataset's recipe, `pipelines.local_run.recipes`:
batch 8, 5 local epochs, lr 0.05; digits with server learning rate 2.0) over the three example
sites, IID, 5 rounds; the baseline gets the same 25 epochs, batch size and learning rate on the
pooled training data. Without DP the run is deterministic for a seed. Dirichlet splits and the
DP claim: `python -m pipelines.benchmarks.parity`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.local_run.recipes import RECIPES
from pipelines.local_run.runner import RunOptions, run_local
from tests.support.paths import REPO


@pytest.mark.e2e
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "floor"), [("breast_cancer", 0.93), ("digits", 0.88)])
def test_federated_matches_centralized_without_dp(
    tmp_path: Path, dataset: str, floor: float
) -> None:
    lines: list[str] = []
    result = run_local(
        RunOptions(
            rounds=5,
            dataset=dataset,
            split="iid",
            dp=False,
            run_id=f"parity-{dataset.replace('_', '-')}-iid",
            sites_dir=REPO / "sites",
            policies_dir=REPO / "policies",
            runs_dir=tmp_path,
        ),
        emit=lines.append,
    )
    summary = result.summary
    federated = summary["final"]["test_accuracy"]
    centralized = summary["baseline"]["test_accuracy"]
    recipe = RECIPES[dataset]
    assert summary["dp_enabled"] is False
    assert summary["baseline"]["epochs"] == 5 * recipe["local_epochs"]
    assert summary["baseline"]["batch_size"] == recipe["batch_size"]
    assert summary["baseline"]["learning_rate"] == recipe["learning_rate"]
    assert all(r["contributors"] == sorted(summary["sites"]) for r in summary["rounds"])
    assert centralized >= floor  # the baseline itself learned
    assert 100 * (centralized - federated) <= 1.5, (federated, centralized)
