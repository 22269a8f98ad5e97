"""train under `dp.mode: distributed` against the S3-compatible test server: one Skellam round
charged as a `distributed` ledger entry with the honest-site assumption, training without
per-example noise, and the refusal of a run without DP."""

from __future__ import annotations

import pytest

from components.common.site_task import call_with_task
from components.common.tensors import load_tensors
from components.privacy.accounting import rdp_epsilon
from components.privacy.ledger import KIND_DISTRIBUTED
from components.privacy.ledger_store import LedgerStore
from components.privacy.skellam import round_plan
from components.train.executor import DpPolicyError
from components.train.executor import run as _run_executor
from tests.support.site_env import initial_global, make_site_env
from tests.support.site_inputs import train_settings

pytestmark = pytest.mark.integration

HYPER = train_settings(local_epochs=2)
DISTRIBUTED = {
    "dp": {"mode": "distributed", "min_honest_sites": 2},
    "aggregation": {"protection": "secagg"},
}


def _train(env, tmp_path, name: str, **overrides):
    out = tmp_path / name
    meta = call_with_task(
        _run_executor,
        {
            **env.common("run-d", 1),
            **{**HYPER, **overrides},
            "validation": env.write_validation(),
            "global_model": initial_global(env),
            "local_model": str(out),
            "client_factory": env.factory(),
            "noise_seed": 11,
        },
    )
    return meta, out


def test_a_distributed_round_is_charged_as_one_skellam_release(minio, tmp_path, monkeypatch):
    env = make_site_env(minio, tmp_path, monkeypatch, policy_changes=DISTRIBUTED)
    meta, out = _train(env, tmp_path, "lm")
    assert meta["status"] == "trained", meta["reason"]
    tensors = load_tensors((out / "model.npz").read_bytes())
    dim = sum(t.size for t in tensors.values())  # 30 features + 1 bias
    plan = round_plan(3.0, 1e-5, 2, dim)
    dp = meta["dp"]
    assert (dp["mode"], dp["honest_sites"], dp["skellam_mu"]) == ("distributed", 2, plan.mu)
    assert dp["noise_multiplier"] is None and "no per-example noise" in dp["sampling"]
    assert dp["trust"].startswith("at least 2 site(s) add their Skellam noise share")
    assert meta["epsilon"] == pytest.approx(rdp_epsilon([plan.round_event], 1e-5))
    assert meta["epsilon"] <= 3.0
    (entry,) = LedgerStore(minio, env.bucket, env.site_id).entries()
    assert entry.kind == KIND_DISTRIBUTED and entry.honest_sites == 2
    assert entry.skellam_mu == plan.mu and entry.l2_norm_clip == 1.0
    assert meta["ledger"]["distributed_entries"] == 1 and meta["ledger"]["min_honest_sites"] == 2
    # a second attempt in the same round would spend a second release: over the round budget
    again, _ = _train(env, tmp_path, "lm2")
    assert again["status"] == "abstained"
    assert "eu-health dp.epsilon_per_round 3" in again["reason"]


def test_distributed_mode_refuses_to_train_without_dp(minio, tmp_path, monkeypatch):
    env = make_site_env(minio, tmp_path, monkeypatch, policy_changes=DISTRIBUTED)
    with pytest.raises(DpPolicyError, match="dp.mode is distributed"):
        _train(env, tmp_path, "off", dp_enabled=False)
    assert LedgerStore(minio, env.bucket, env.site_id).entries() == []
