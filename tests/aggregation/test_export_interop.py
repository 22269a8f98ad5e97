"""The export stage's real output feeds the aggregate executor: ref.json form, signed manifest,
policy digest and global-version stamp all agree (S3-compatible server + GCS emulator)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from components.aggregation.executor import run as aggregate
from components.common.config_digest import config_digest
from components.common.global_model import GlobalModel, read_global_model, write_global_model
from components.common.secrets import secret_env_name
from components.common.site_task import call_with_task
from components.domain.canonical import canonical_json, policy_digest
from components.export.executor import run as _export_executor
from tests.support.federation import (
    admit,
    constant_update,
    global_tensors,
    make_coordinator,
    new_site,
    policies_json,
    sites_json,
    unique,
)


def export(**inputs):  # as the component calls it
    return call_with_task(_export_executor, inputs)


pytestmark = pytest.mark.integration

RUN = "run-interop"


def test_export_output_is_aggregated(monkeypatch, s3_server, minio, gcs, tmp_path):
    monkeypatch.setenv("FEDPIPE_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("FEDPIPE_S3_SECRET_KEY", s3_server.secret_key)
    # site specs say TLS (the policy requires it); the local override is plain HTTP
    kits = [new_site(n, endpoint="minio.invalid:9000", secure=True) for n in ("a", "b", "c")]
    monkeypatch.setenv(
        "FEDPIPE_ENDPOINT_OVERRIDES", json.dumps({k.id: s3_server.endpoint for k in kits})
    )
    meta0 = {"version": 0, "model_name": "mlp", "dataset": "digits", "parent": None}
    write_global_model(tmp_path / "v0", GlobalModel(global_tensors(), meta0, None))
    refs = {}
    for kit, step in zip(kits, (0.1, 0.3, 0.2), strict=True):
        monkeypatch.setenv(secret_env_name(kit.id, "SIGNING_KEY"), kit.private_pem)
        minio.make_bucket(kit.site.object_store.bucket)
        admit(minio, kit, "run-interop")  # as the site's validate would
        local = {k: v + np.float32(step) for k, v in global_tensors().items()}
        status = "abstained" if kit.id == "c" else "trained"
        train_meta = {
            "status": status,
            "reason": "budget exhausted" if status == "abstained" else None,
            "num_examples": 40,
            "dp": {"noise_multiplier": 1.0, "l2_norm_clip": 1.0},
            "epsilon": 1.25,
            "epsilon_pld": 1.1,
            "delta": 1e-5,
            "model_name": "mlp",
            "dataset": "digits",
            "site_id": kit.id,
            "run_id": RUN,
            "round": 1,
            "global_version": 0,
        }
        write_global_model(
            tmp_path / f"local-{kit.id}", GlobalModel(local, {**meta0, **train_meta}, None)
        )
        refs[kit.id] = str(tmp_path / f"update-{kit.id}")
        export(
            site_id=kit.id,
            policy_digest=policy_digest(kit.policy),
            data_snapshot="s1",
            site_json=canonical_json(kit.site),
            policy_json=canonical_json(kit.policy),
            run_id=RUN,
            kfp_job_id="job",
            round_index=1,
            local_model=str(tmp_path / f"local-{kit.id}"),
            global_model=str(tmp_path / "v0"),
            update=refs[kit.id],
        )
    bucket = gcs.create_bucket(unique("coord"))
    texts = {
        "coordinator_json": canonical_json(make_coordinator(bucket.name)),
        "sites_json": sites_json(kits),
        "policies_json": policies_json(kits),
    }
    report = aggregate(
        **texts,
        config_digest=config_digest(**texts),
        run_id=RUN,
        kfp_job_id="job",
        round_index=1,
        rule="fedavg",
        rule_params_json="{}",
        server_optimizer="fedavg",
        server_learning_rate=1.0,
        optimizer_params_json="{}",
        min_sites=2,
        previous_model=str(tmp_path / "v0"),
        updates=refs,
        global_model=str(tmp_path / "out" / "global_model"),
        round_report=str(tmp_path / "out" / "round_report"),
    )
    assert report["rejected"] == {}
    assert report["contributors"] == ["a", "b"]
    assert report["abstained"] == {"c": "budget exhausted"}
    # the policy hides the sample count: its bound dp.epsilon_per_round 3.0 travels, not 1.25
    assert report["epsilon"]["a"]["epsilon"] == 3.0
    assert report["epsilon"]["a"]["epsilon_pld"] is None
    assert report["epsilon"]["a"]["dp"]["epsilon_disclosure"] == "policy_bound"
    # mean delta 0.2 (num_examples hidden by the policy: uniform)
    new = read_global_model(tmp_path / "out" / "global_model").tensors
    want = {k: v + constant_update(0.2)[k] for k, v in global_tensors().items()}
    for name in want:
        np.testing.assert_allclose(new[name], want[name], atol=1e-6)
