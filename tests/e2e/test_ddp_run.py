"""`dp.mode: distributed` end to end (kfp.local): the example federation with every policy asking
secure aggregation and distributed DP (h = 2) trains two rounds; each site's ledger holds one
`distributed` entry per round stating the honest-site assumption, each within the policy's
epsilon per round; the published model is finite and the report names the mode and the
assumption."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from components.common.tensors import load_tensors
from components.privacy.ledger import KIND_DISTRIBUTED
from tests.support.e2e import SITES, fedpipe, ledger_entries
from tests.support.paths import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]
RUN_ID = "e2e-ddp"


def test_a_distributed_dp_run_charges_skellam_rounds_and_reports_the_assumption(
    tmp_path: Path,
) -> None:
    sites, policies = tmp_path / "sites", tmp_path / "policies"
    shutil.copytree(REPO / "sites", sites)
    shutil.copytree(REPO / "policies", policies)
    for path in policies.glob("*.yaml"):
        text = path.read_text()
        text = text.replace("aggregation:\n", "aggregation:\n  protection: secagg\n")
        text = text.replace("dp:\n", "dp:\n  mode: distributed\n  min_honest_sites: 2\n")
        path.write_text(text)
    runs = tmp_path / "runs"
    proc = fedpipe(
        "run", "--local", "--sites", str(sites), "--policies", str(policies),
        "--runs-dir", str(runs), "--run-id", RUN_ID, "--rounds", "2",
        "--no-baseline", "--seed", "0",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert (
        "DP: distributed (Skellam shares, at least 2 honest site(s) assumed): every site spends "
        "ε 3.00 per round, 4.44 over 2 rounds (RDP)" in proc.stdout
    )
    model = load_tensors((runs / RUN_ID / "global_model" / "model.npz").read_bytes())
    assert all(np.isfinite(t).all() for t in model.values())
    for site in SITES:
        entries = [e for e in ledger_entries(runs, site) if e.run_id == RUN_ID]
        assert [e.round for e in entries] == [1, 2], site
        for e in entries:
            assert e.kind == KIND_DISTRIBUTED and e.honest_sites == 2
            assert e.trust.startswith("at least 2 site(s) add their Skellam noise share")
            assert e.epsilon is not None and e.epsilon <= 3.0
    summary = json.loads((runs / RUN_ID / "summary.json").read_text())
    assert summary["dp_mode"]["mode"] == "distributed"
    assert summary["dp_mode"]["honest_sites"] == 2
    report = (runs / RUN_ID / "report.md").read_text()
    assert "DP mode" in report and "assumes at least 2 honest site(s)" in report
