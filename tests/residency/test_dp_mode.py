"""`fedpipe compile` refuses dp.mode distributed it cannot honour, naming policy and reason."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipelines.cli import main
from tests.support.paths import POLICIES_DIR, SITES_DIR


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def test_compile_refuses_distributed_dp_without_secagg_or_above_the_quorum(tmp_path, capsys):
    sites, policies = tmp_path / "sites", tmp_path / "policies"
    shutil.copytree(SITES_DIR, sites)
    shutil.copytree(POLICIES_DIR, policies)
    for name in ("eu-health.yaml", "us-health.yaml"):
        _edit(policies / name, "dp:\n", "dp:\n  mode: distributed\n  min_honest_sites: 3\n")
    out = tmp_path / "out"
    args = ["compile", "--sites", str(sites), "--policies", str(policies), "--out", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "DP-mode problems (nothing was written)" in err
    assert (
        "policy eu-health: dp.mode distributed needs aggregation.protection secagg, not none" in err
    )
    assert "policy us-health: dp.min_honest_sites 3 is more than its aggregation.min_sites 2" in err
    assert not out.exists() or not any(out.iterdir())
