"""Distributed DP through the SecAgg+ stage executors against the real test object stores: each
site's masked export adds its Skellam share to its clipped, scaled, rounded delta, and the
coordinator's unmasking decodes exactly the mean of those integer vectors (noise included);
an export whose train meta disagrees with the policy's mode is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from components.aggregation.secure import secure_round
from components.common.artifact_files import META_FILE
from components.common.global_model import read_global_model
from components.export.update import ExportError
from components.privacy.accounting import rdp_epsilon
from components.privacy.skellam import round_plan, seeded_uniform, site_vector
from components.secagg.settings import flatten, unflatten
from components.train.executor import _derive_seed
from tests.support.federation import global_tensors
from tests.support.secagg_stages import deltas, make_federation, secagg_policy

pytestmark = pytest.mark.integration
SEED = 5


def _distributed_policy():
    base = secagg_policy()
    return secagg_policy(base, dp={**base.dp.dict(), "mode": "distributed", "min_honest_sites": 2})


def _mark_distributed(folder: str, plan, delta: float) -> None:
    path = Path(folder, META_FILE)
    meta = json.loads(path.read_text())
    meta.update(
        epsilon=rdp_epsilon([plan.round_event], delta),
        dp={"enabled": True, "mode": "distributed", "skellam_mu": plan.mu, "honest_sites": 2},
    )
    path.write_text(json.dumps(meta))


def test_the_unmasked_sum_decodes_to_the_mean_noisy_site_vectors(
    minio, gcs, s3_server, tmp_path, monkeypatch
):
    monkeypatch.setenv("FEDPIPE_DP_NOISE_SEED", str(SEED))
    policy = _distributed_policy()
    ids = ["site-a", "site-b", "site-c"]
    fed = make_federation(
        minio, gcs, s3_server.endpoint, tmp_path, monkeypatch, dict.fromkeys(ids, policy)
    )
    fed.setup()
    base = global_tensors()
    updates = deltas(ids, seed=1)
    updates["site-a"] = {k: v * 100 for k, v in updates["site-a"].items()}  # one gets clipped
    global_folder = fed.global_model(1, base)
    dim = flatten(base).size
    plan = round_plan(policy.dp.epsilon_per_round, policy.dp.delta, 2, dim)
    local = {}
    for s in ids:
        local[s] = fed.local_model(s, 1, {k: base[k] + updates[s][k] for k in base})
        _mark_distributed(local[s], plan, policy.dp.delta)
    out = fed.mask(1, global_folder, local)
    fed.request(1, global_folder, out)
    for s in ids:
        fed.answer(s, 1, out)
    previous = read_global_model(global_folder)
    result = secure_round(
        fed.round_config(1), previous, out.updates, out.answers, fed.settings, fed.gcs_bucket,
        fed.readers(),
    )  # fmt: skip
    # the same vectors built in the clear with the same seeded noise
    total = np.zeros(dim, dtype=np.int64)
    for s in ids:
        local_tensors = {k: base[k] + updates[s][k] for k in base}
        delta = flatten(local_tensors) - flatten(previous.tensors)
        uniform = seeded_uniform(_derive_seed(SEED, "skellam", s, fed.run_id, 1))
        vec = site_vector(delta, clip=1.0, gamma=plan.gamma, share=plan.share, uniform=uniform)
        total += vec.values
        assert vec.clipped == (s == "site-a")
    expected = unflatten(total / plan.gamma / 3, base)
    for name in expected:
        assert np.array_equal(result.delta[name], expected[name]), name
    assert result.notes["dp"]["mode"] == "distributed"
    assert result.notes["dp"]["honest_sites"] == 2
    assert result.notes["dp"]["skellam_mu"] == plan.mu
    assert result.notes["secagg"]["norm_bound"] == 1.0  # the delta clip, not the float bound


def test_an_export_whose_training_disagrees_with_the_mode_is_refused(
    minio, gcs, s3_server, tmp_path, monkeypatch
):
    policy = _distributed_policy()
    ids = ["site-a", "site-b"]
    fed = make_federation(
        minio, gcs, s3_server.endpoint, tmp_path, monkeypatch, dict.fromkeys(ids, policy)
    )
    fed.setup()
    base = global_tensors()
    global_folder = fed.global_model(1, base)
    local = {s: fed.local_model(s, 1, dict(base)) for s in ids}  # trained in local mode
    with pytest.raises(ExportError, match="asks dp.mode distributed but the model was trained"):
        fed.mask(1, global_folder, local)
