"""`encoding.scaling: federated_zscore` end to end: a statistics round before training (each
site releases DP-noised statistics charged to its ledger, the coordinator publishes the global
mean/std with the global model), a site whose budget cannot also pay the release abstains."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from components.datasets.features import frame_to_arrays
from components.datasets.federated_stats import stats_ranges
from components.domain.contract import DataContract
from tests.support.e2e import fedpipe, ledger_entries
from tests.support.paths import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
RUN_ID = "e2e-federated-zscore"


def test_a_federated_zscore_run_scales_with_the_published_statistics(tmp_path: Path) -> None:
    sites, policies = tmp_path / "sites", tmp_path / "policies"
    shutil.copytree(REPO / "sites", sites)
    shutil.copytree(REPO / "policies", policies)
    path = sites / "contracts" / "breast_cancer.yaml"
    contract = yaml.safe_load(path.read_text())
    contract["encoding"] = {"scaling": "federated_zscore", "statistics": {"epsilon": 1.0}}
    for column in contract["columns"]:
        column.pop("center", None), column.pop("scale", None)
    path.write_text(yaml.safe_dump(contract, sort_keys=False))
    us = yaml.safe_load((policies / "us-health.yaml").read_text())
    # two rounds at noise 1.5 compose to ε 3.034 (RDP), with the ε 1 release to 3.231: a
    # lifetime of 3.1 pays the training but not the statistics too
    us["dp"].update(epsilon_per_round=3.0, lifetime_epsilon=3.1)
    (policies / "us-health.yaml").write_text(yaml.safe_dump(us))
    runs = tmp_path / "runs"
    proc = fedpipe(
        "run", "--local", "--sites", str(sites), "--policies", str(policies),
        "--runs-dir", str(runs), "--run-id", RUN_ID, "--rounds", "2", "--no-baseline",
        "--param", "noise_multiplier=1.5",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert (
        "DP: the federated_zscore statistics round charges every site one release first (ε 1"
        in proc.stdout
    )
    boston = [line for line in lines if "clinic-boston" in line]
    assert any(
        "validate" in line and "and its feature statistics would take" in line for line in boston
    ), boston
    assert any("stats" in line and "ABSTAINED" in line for line in boston), boston
    for site in ("hospital-berlin", "hospital-paris"):
        assert any(f"stats      {site}" in line and "ε 1.000 RDP" in line for line in lines)
        entries = [e for e in ledger_entries(runs, site) if e.run_id == RUN_ID]
        assert [(e.kind, e.round) for e in entries] == [("stats", 0), ("training", 1),
                                                        ("training", 2)]  # fmt: skip
    assert [e for e in ledger_entries(runs, "clinic-boston") if e.run_id == RUN_ID] == []
    assert any("scaling" in line and "from 2 site(s)" in line for line in lines), lines

    meta = json.loads((runs / RUN_ID / "global_model" / "meta.json").read_text())
    published = meta["feature_scaling"]
    assert published["sites"] == ["hospital-berlin", "hospital-paris"]
    # within the DP noise of the pooled statistics of the two contributing sites' rows
    model = DataContract.parse_obj(contract)
    ranges = stats_ranges(model)
    pooled = np.concatenate(
        [
            frame_to_arrays(model, pd.read_csv(runs / RUN_ID / "data" / s / "train.csv"), s)[0]
            for s in published["sites"]
        ]
    )[:, list(ranges.index)]
    sigmas = np.abs(np.subtract(published["mean"], pooled.mean(axis=0))) / np.asarray(
        published["mean_noise_std"]
    )
    assert sigmas.max() < 5.0, sigmas
    summary = json.loads((runs / RUN_ID / "summary.json").read_text())
    assert [r["contributors"] for r in summary["rounds"]] == [["hospital-berlin",
                                                               "hospital-paris"]] * 2  # fmt: skip
    # the release's charge is in the site's signed audit chain, and every chain verifies
    from pipelines.commands.audit import read_local_chains
    from pipelines.config.loader import load_federation

    proc = fedpipe("audit", "verify", RUN_ID, "--local", "--runs-dir", str(runs))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    config = runs / RUN_ID / "config"
    fed = load_federation(config / "sites", config / "policies")
    chains = read_local_chains(fed, RUN_ID, fed.coordinator.signing.public_key, runs / ".state")
    records = chains["site/hospital-berlin"].records
    charges = [r.body for r in records if r.kind == "charge"]
    # the release, then rounds 1 and 2
    assert [(c["round"], c.get("kind")) for c in charges] == [(0, "stats"), (1, None), (2, None)]
