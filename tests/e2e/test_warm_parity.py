"""Warm task workers change how tasks start, not what they compute.

Same seed, same federation, one round: with DP off the global models of a warm run and a
process run are bit-identical; with DP on (noise from the OS, so models differ) the sites'
ledgers are charged the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.local_run.runner import RunOptions, RunResult, run_local
from tests.support.paths import REPO

# two one-round runs per test; a process-mode run alone took 10+ minutes on a loaded 2-core box
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(3600),
]


def _run(runs: Path, isolation: str, dp: bool) -> RunResult:
    return run_local(
        RunOptions(
            rounds=1,
            dp=dp,
            seed=7,
            run_id="same-run",  # the run id goes into object keys and metadata
            sites_dir=REPO / "sites",
            policies_dir=REPO / "policies",
            runs_dir=runs / isolation,
            baseline=False,
            isolation=isolation,
        ),
        emit=lambda line: None,
    )


def test_dp_off_global_models_are_bit_identical(tmp_path: Path) -> None:
    from components.common.global_model import read_global_model

    models = {}
    for isolation in ("warm", "process"):
        result = _run(tmp_path, isolation, dp=False)
        models[isolation] = read_global_model(result.run_dir / "global_model").tensors
    assert list(models["warm"]) == list(models["process"])
    for name, tensor in models["warm"].items():
        other = models["process"][name]
        assert tensor.dtype == other.dtype and tensor.shape == other.shape, name
        assert np.array_equal(tensor, other), f"{name} differs between warm and process"


def test_dp_on_ledgers_are_charged_the_same(tmp_path: Path) -> None:
    ledgers = {}
    for isolation in ("warm", "process"):
        ledgers[isolation] = _run(tmp_path, isolation, dp=True).summary["ledgers"]
    assert set(ledgers["warm"]) == set(ledgers["process"]) and ledgers["warm"]
    for site, warm in ledgers["warm"].items():
        process = ledgers["process"][site]
        assert warm["run_entries"] == process["run_entries"] == 1, site
        assert warm["epsilon"] == process["epsilon"] > 0, site
        assert warm["epsilon_pld"] == process["epsilon_pld"], site
