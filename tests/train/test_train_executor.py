"""train executor against the S3-compatible test server: ledger charge, budget refusal before
training, resume without spending, DP-off policy gate, bad data abstains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from minio import Minio
from urllib3 import PoolManager, Retry

from components.common.site_task import call_with_task
from components.common.tensors import load_tensors
from components.privacy.accounting import dp_sgd_event, rdp_epsilon
from components.privacy.ledger import entry_key
from components.privacy.ledger_store import LedgerStore
from components.train.executor import DpPolicyError
from components.train.executor import run as _run_executor
from tests.support.site_env import initial_global, make_site_env
from tests.support.site_inputs import train_settings


def run(**inputs):  # as the component calls it
    return call_with_task(_run_executor, inputs)


pytestmark = pytest.mark.integration

HYPER = train_settings(local_epochs=2)


def _train(env, tmp_path: Path, run_id: str, round_index: int, name: str, **overrides):
    args = {**HYPER, **overrides}
    out = tmp_path / name
    meta = run(
        **env.common(run_id, round_index),
        **args,
        validation=env.write_validation(),
        global_model=initial_global(env),
        local_model=str(out),
        client_factory=env.factory(),
        noise_seed=11,
    )
    assert json.loads((out / "meta.json").read_text()) == meta
    return meta, out


def test_trains_charges_ledger_and_epsilon_matches_accountant(minio, tmp_path, monkeypatch):
    env = make_site_env(minio, tmp_path, monkeypatch)
    meta, out = _train(env, tmp_path, "run-a", 1, "lm1")
    assert meta["status"] == "trained", meta["reason"]
    n = meta["num_examples"]
    event = dp_sgd_event(n, 16, 2, 1.5)
    # The ledger's epsilon equals dp-accounting recomputed for the same q, sigma, steps, delta.
    assert meta["epsilon"] == pytest.approx(rdp_epsilon([event], 1e-5), abs=1e-6)
    assert meta["dp"]["sampling_rate"] == pytest.approx(16 / n)
    assert meta["dp"]["steps"] == 2 * (n // 16)
    assert meta["dp"]["noise"] == "seeded-simulation"
    assert "Poisson" in meta["dp"]["accounting"]
    assert meta["dp"]["dp_sampling"] == "poisson" and meta["dp"]["guarantee"].startswith("proven")
    assert meta["batch_sizes"]["min"] < meta["batch_sizes"]["max"]  # variable Poisson batches
    entries = LedgerStore(minio, env.bucket, env.site_id).entries()
    assert [e.key for e in entries] == [entry_key(env.site_id, "run-a", 1, 1)]
    assert entries[0].epsilon == pytest.approx(meta["epsilon"], abs=1e-12)
    assert entries[0].sampling == "poisson" and entries[0].guarantee.startswith("proven")
    tensors = load_tensors((out / "model.npz").read_bytes())
    assert set(tensors) == {"dense/kernel", "dense/bias"}

    # Second round: the lifetime total is the two trainings composed, not summed.
    meta2, _ = _train(env, tmp_path, "run-a", 2, "lm2")
    assert meta2["ledger"]["entries"] == 2
    assert meta2["ledger"]["lifetime_epsilon"] == pytest.approx(
        rdp_epsilon([event, event], 1e-5), abs=1e-6
    )


def test_shuffle_is_explicit_and_the_ledger_marks_it_not_proven(minio, tmp_path, monkeypatch):
    env = make_site_env(minio, tmp_path, monkeypatch)
    meta, _ = _train(env, tmp_path, "run-s", 1, "lm-s", dp_sampling="shuffle")
    assert meta["status"] == "trained", meta["reason"]
    assert meta["dp"]["dp_sampling"] == "shuffle"
    assert meta["dp"]["guarantee"].startswith("not proven")
    assert meta["batch_sizes"]["min"] == meta["batch_sizes"]["max"] == 16
    (entry,) = LedgerStore(minio, env.bucket, env.site_id).entries()
    assert entry.sampling == "shuffle" and entry.guarantee.startswith("not proven")
    assert meta["ledger"]["not_proven_entries"] == 1


def test_round_over_budget_is_refused_before_training(minio, tmp_path, monkeypatch):
    env = make_site_env(
        minio, tmp_path, monkeypatch, policy_changes={"dp": {"epsilon_per_round": 0.5}}
    )
    meta, out = _train(env, tmp_path, "run-b", 1, "lm")
    assert meta["status"] == "abstained"
    assert env.site_id in meta["reason"] and "dp.epsilon_per_round 0.5" in meta["reason"]
    assert not (out / "model.npz").exists()
    assert LedgerStore(minio, env.bucket, env.site_id).entries() == []  # nothing charged


def test_an_abstention_leaving_the_site_carries_no_figure_of_a_hidden_count(
    minio, tmp_path, monkeypatch
):
    """Issue #11 item 2: the abstained meta.json goes to the pipeline root; with the count
    hidden it must carry neither N nor the epsilons that give N away."""
    env = make_site_env(
        minio, tmp_path, monkeypatch, policy_changes={"dp": {"epsilon_per_round": 0.5}}
    )
    assert env.policy.export.reveal_num_examples is False
    meta, _ = _train(env, tmp_path, "run-h", 1, "lm")
    assert meta["status"] == "abstained"
    assert meta["num_examples"] is None
    assert meta["reason"] == (
        f"site {env.site_id}: round 1 would spend more than eu-health dp.epsilon_per_round 0.5"
    )
    assert not {"lifetime_epsilon", "lifetime_epsilon_pld"} & set(meta["ledger"])
    # the same site revealing its count says how much
    shown = env.with_policy({"export": {"reveal_num_examples": True}})
    meta2, _ = _train(shown, tmp_path, "run-h2", 1, "lm2")
    assert meta2["num_examples"] > 0
    assert "would spend epsilon " in meta2["reason"] and "(RDP, delta 1e-05)" in meta2["reason"]


def test_lifetime_budget_across_runs(minio, tmp_path, monkeypatch):
    env = make_site_env(minio, tmp_path, monkeypatch)
    first, _ = _train(env, tmp_path, "run-c1", 1, "lm1")
    assert first["status"] == "trained"
    one = first["epsilon"]
    two = rdp_epsilon([dp_sgd_event(first["num_examples"], 16, 2, 1.5)] * 2, 1e-5)
    limit = round((one + two) / 2, 3)  # room for one training, not for two
    tight = env.with_policy({"dp": {"lifetime_epsilon": limit, "epsilon_per_round": limit}})
    second, out = _train(tight, tmp_path, "run-c2", 1, "lm2")
    assert second["status"] == "abstained"
    assert f"dp.lifetime_epsilon {limit:g}" in second["reason"] and env.site_id in second["reason"]
    assert not (out / "model.npz").exists()
    assert len(LedgerStore(minio, env.bucket, env.site_id).entries()) == 1


def test_retry_is_charged_again(minio, tmp_path, monkeypatch):
    env = make_site_env(minio, tmp_path, monkeypatch)
    _train(env, tmp_path, "run-d", 1, "lm1")
    meta, _ = _train(env, tmp_path, "run-d", 1, "lm2")  # a retry of the same round
    assert meta["status"] == "trained"
    assert meta["ledger"]["attempt"] == 2
    keys = [e.key for e in LedgerStore(minio, env.bucket, env.site_id).entries()]
    assert keys == [entry_key(env.site_id, "run-d", 1, a) for a in (1, 2)]


def test_dp_off_refused_unless_policy_allows(minio, tmp_path, monkeypatch):
    env = make_site_env(
        minio, tmp_path, monkeypatch, policy_changes={"dp": {"allow_dp_off": False}}
    )
    with pytest.raises(DpPolicyError, match="allow_dp_off"):
        _train(env, tmp_path, "run-e", 1, "lm", dp_enabled=False)
    allowed = make_site_env(
        minio, tmp_path / "b", monkeypatch, policy_changes={"dp": {"allow_dp_off": True}}
    )
    meta, _ = _train(allowed, tmp_path, "run-e", 1, "lm2", dp_enabled=False)
    assert meta["status"] == "trained" and meta["epsilon"] is None
    assert "DP off" in meta["reason"]
    assert LedgerStore(minio, allowed.bucket, allowed.site_id).entries()[0].non_private


def test_bad_data_abstains_naming_site_and_check(minio, tmp_path, monkeypatch):
    from tests.support.site_env import federation_split

    frame = federation_split().sites["hospital-berlin"].train.drop(columns=["mean_radius"])
    env = make_site_env(minio, tmp_path, monkeypatch, train_frame=frame)
    meta, _ = _train(env, tmp_path, "run-f", 1, "lm")
    assert meta["status"] == "abstained"
    assert "hospital-berlin" in meta["reason"] and "columns_present" in meta["reason"]
    assert LedgerStore(minio, env.bucket, env.site_id).entries() == []


def test_failed_validation_abstains(minio, tmp_path, monkeypatch):
    env = make_site_env(minio, tmp_path, monkeypatch)
    out = tmp_path / "lm"
    meta = run(
        **env.common("run-g", 1),
        **HYPER,
        validation=env.write_validation(passed=False, reason="expect_column_values_to_not_be_null"),
        global_model=initial_global(env),
        local_model=str(out),
        client_factory=env.factory(),
        noise_seed=1,
    )
    assert meta["status"] == "abstained" and "validation failed" in meta["reason"]


def test_unreachable_bucket_abstains_without_training(minio, tmp_path, monkeypatch):
    env = make_site_env(minio, tmp_path, monkeypatch)
    dead = Minio("127.0.0.1:1", access_key="x", secret_key="y", secure=False)  # nothing listens
    dead._http = PoolManager(retries=Retry(total=0), timeout=1.0)
    out = tmp_path / "lm"
    meta = run(
        **env.common("run-h", 1),
        **HYPER,
        validation=env.write_validation(),
        global_model=initial_global(env),
        local_model=str(out),
        client_factory=lambda: dead,
        noise_seed=1,
    )
    assert meta["status"] == "abstained"
    assert "hospital-berlin" in meta["reason"] and env.bucket in meta["reason"]
    assert not (out / "model.npz").exists()


def test_unreachable_bucket_abstains_even_when_its_audit_record_cannot_be_written(
    minio, tmp_path, monkeypatch
):
    """The store that makes the site abstain is also where its audit chain lives: the abstention
    stands (with why it is not in the chain) instead of failing the task and the run."""
    env = make_site_env(minio, tmp_path, monkeypatch)
    dead = Minio("127.0.0.1:1", access_key="x", secret_key="y", secure=False)  # nothing listens
    dead._http = PoolManager(retries=Retry(total=0), timeout=1.0)
    meta = run(
        **env.common("run-h2", 1),
        **HYPER,
        validation=env.write_validation(),
        global_model=initial_global(env),
        local_model=str(tmp_path / "lm"),
        client_factory=lambda: dead,
        noise_seed=1,
        audit=True,
    )
    assert meta["status"] == "abstained" and env.bucket in meta["reason"]
    assert meta["audit"].startswith("not in the site's audit chain: its bucket")
