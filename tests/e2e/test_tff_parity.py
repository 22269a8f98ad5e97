"""Parity with TensorFlow Federated (issue 6): the pipeline's local run and `fedpipe simulate`.

One `fedpipe run --local --no-dp --rounds 3` on breast cancer over the example sites, then
`fedpipe simulate --like <runs>/<run>` (TFF's simulation runtime with the run's settings, data
split, initial weights and batch order). Both final global models are loaded and compared:
the largest absolute difference over all tensors must be within 1e-4.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from components.common.tensors import load_tensors
from components.train.models import initial_weights
from pipelines.commands.simulate import max_abs_difference
from pipelines.config.loader import contract_by_name
from tests.support.e2e import SITES, fedpipe

RUN_ID = "e2e-tff-parity"
TOLERANCE = 1e-4

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


def test_pipeline_and_tff_global_weights_agree(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = fedpipe(
        "run",
        "--local",
        "--no-dp",
        "--rounds",
        "3",
        "--runs-dir",
        str(runs),
        "--run-id",
        RUN_ID,
        "--no-baseline",
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    run_dir = runs / RUN_ID
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["dataset"] == "breast_cancer" and summary["dp_enabled"] is False
    assert [r["contributors"] for r in summary["rounds"]] == [SITES] * 3

    out = tmp_path / "simulate"
    sim = fedpipe("simulate", "--like", str(run_dir), "--out", str(out))
    assert sim.returncode == 0, sim.stdout[-3000:] + sim.stderr[-3000:]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["spec"]["run_id"] == RUN_ID and len(meta["rounds"]) == 3
    assert meta["spec"]["site_ids"] == SITES

    pipeline = load_tensors((run_dir / "global_model" / "model.npz").read_bytes())
    tff = load_tensors((out / "model.npz").read_bytes())
    diff = max_abs_difference(tff, pipeline)
    print(f"max |TFF - pipeline| after 3 rounds = {diff:.3g}")
    assert diff <= TOLERANCE, diff
    shown = re.search(r"max \|TFF - .*\| = (\S+):", sim.stdout)
    assert shown is not None and float(shown.group(1)) == pytest.approx(diff, rel=0.01, abs=1e-12)

    # both actually trained: the weights moved far from the shared seeded initial weights
    contract = contract_by_name("breast_cancer")
    init = initial_weights("logreg", contract.num_features, contract.num_classes, 0)
    moved = max_abs_difference({k: np.asarray(v) for k, v in init.items()}, pipeline)
    assert moved > 100 * TOLERANCE, moved
