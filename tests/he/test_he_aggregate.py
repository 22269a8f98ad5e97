"""The aggregate task under `aggregation.protection: he`, against the S3 test server and the GCS
emulator: it adds the sites' ciphertexts with the public context only into the encrypted
global model (one ciphertext, published as the version's model object), and its output decrypts (at a site) to FedAvg of the updates; a ciphertext under
another setup's context is rejected by name; sites weighting differently, or a coordinator
without the public context, fail the round with nothing published."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from components.aggregation.executor import AggregationError, run
from components.aggregation.publish import read_latest
from components.common.config_digest import config_digest
from components.common.global_model import GlobalModel, write_global_model
from components.common.manifest import update_object_key
from components.domain.canonical import canonical_json
from components.domain.models import Policy
from components.he.ckks import encrypt_weighted
from components.he.global_model import decrypt_global, flatten, read_encrypted
from components.he.keys import new_federation_keys, open_envelope
from components.he.wire import COORDINATOR_CONTEXT_KEY, pack_bundle
from tests.support.federation import (
    admit,
    global_tensors,
    make_coordinator,
    make_policy,
    new_site,
    policies_json,
    signed_update,
    sites_json,
    unique,
    write_ref,
)

pytestmark = pytest.mark.integration

RUN = "run-he-agg"


@pytest.fixture(scope="module")
def keys():
    fk = new_federation_keys()
    return (
        fk,
        open_envelope(fk.site, secret=True, where="site"),
        open_envelope(fk.coordinator, secret=False, where="coordinator"),
    )


class Env:
    def __init__(self, endpoint, minio, bucket, tmp: Path, keys) -> None:
        self.minio, self.bucket, self.tmp = minio, bucket, tmp
        self.fk, self.site_ctx, _ = keys
        self.coordinator = make_coordinator(bucket.name)
        policy = make_policy().dict()
        policy["aggregation"]["protection"] = "he"
        self.kits = [
            new_site(s, endpoint=endpoint, policy=Policy.parse_obj(policy))
            for s in ("he-a", "he-b", "he-c")
        ]
        self.v0 = global_tensors()

    def install_public_context(self) -> None:
        self.bucket.blob(COORDINATOR_CONTEXT_KEY).upload_from_string(self.fk.coordinator)

    def previous(self) -> str:
        folder = self.tmp / unique("v0")
        meta = {"version": 0, "model_name": "mlp", "dataset": "digits", "parent": None}
        write_global_model(folder, GlobalModel(self.v0, meta, None))
        return str(folder)

    def export(self, kit, delta, weight=1.0, *, how="uniform", context_id=None) -> str:
        context_id = context_id or self.fk.context_id
        bundle = pack_bundle(
            encrypt_weighted(self.site_ctx.context, flatten(delta), weight), context_id
        )
        extra = {
            "global_version": 0,
            "protection": "he",
            "he_context": context_id,
            "he_weight": how,
        }
        count = int(weight) if how == "num_examples" else None  # revealed with the weight
        _, manifest = signed_update(
            kit, delta, run_id=RUN, round_index=1, raw_npz=bundle, extra=extra, num_examples=count
        )
        bucket = kit.site.object_store.bucket
        if not self.minio.bucket_exists(bucket):
            self.minio.make_bucket(bucket)
        admit(self.minio, kit, RUN)
        key = update_object_key(RUN, 1, kit.id)
        for suffix, data in ((".ckks", bundle), (".manifest.json", manifest)):
            self.minio.put_object(bucket, key + suffix, io.BytesIO(data), len(data))
        ref = {
            "status": "exported",
            "site_id": kit.id,
            "bucket": bucket,
            "key": key,
            "tensors_key": key + ".ckks",
            "manifest_key": key + ".manifest.json",
            "manifest": json.loads(manifest),
            "reason": None,
        }
        return write_ref(self.tmp / unique(f"update-{kit.id}"), ref)

    def aggregate(self, updates: dict[str, str], **overrides):
        out = self.tmp / unique("out")
        texts = {
            "coordinator_json": canonical_json(self.coordinator),
            "sites_json": sites_json(self.kits),
            "policies_json": policies_json(self.kits),
        }
        args = {
            **texts,
            "config_digest": config_digest(**texts),
            "run_id": RUN,
            "kfp_job_id": "job-1",
            "round_index": 1,
            "rule": "fedavg",
            "rule_params_json": "{}",
            "server_optimizer": "fedavg",
            "server_learning_rate": 1.0,
            "optimizer_params_json": "{}",
            "min_sites": 2,
            "previous_model": self.previous(),
            "updates": updates,
            "global_model": str(out / "global_model"),
            "round_report": str(out / "round_report"),
            **overrides,
        }
        return run(**args), out


@pytest.fixture()
def env(monkeypatch, s3_server, minio, gcs, tmp_path, keys):
    monkeypatch.setenv("FEDPIPE_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("FEDPIPE_S3_SECRET_KEY", s3_server.secret_key)
    monkeypatch.delenv("FEDPIPE_ENDPOINT_OVERRIDES", raising=False)
    return Env(s3_server.endpoint, minio, gcs.create_bucket(unique("coord")), tmp_path, keys)


def _delta(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.normal(size=t.shape).astype(np.float32) for n, t in global_tensors().items()}


def test_the_coordinator_adds_ciphertexts_into_the_encrypted_global_model(env):
    env.install_public_context()
    deltas = {k.id: _delta(i) for i, k in enumerate(env.kits)}
    weights = {"he-a": 122.0, "he-b": 180.0, "he-c": 97.0}
    updates = {
        k.id: env.export(k, deltas[k.id], weights[k.id], how="num_examples") for k in env.kits
    }
    report, out = env.aggregate(updates)
    assert report["contributors"] == ["he-a", "he-b", "he-c"]
    assert report["notes"]["weights"] == "num_examples" and report["protection"] == "he"
    assert report["anomaly"]["off"].startswith("aggregation.protection he")
    latest = read_latest(env.bucket, RUN)
    assert latest is not None and latest.body["model_file"] == "model.ckks"
    names = sorted(b.name for b in env.bucket.list_blobs(prefix=f"models/{RUN}/v1/"))
    assert names == [f"models/{RUN}/v1/meta.json", f"models/{RUN}/v1/model.ckks"]
    assert sorted(p.name for p in (out / "global_model").iterdir()) == ["meta.json", "model.ckks"]
    model = read_encrypted(out / "global_model")
    plain = decrypt_global(model, env.site_ctx.context, env.site_ctx.context_id)
    total = sum(weights.values())
    for name, base in env.v0.items():
        mean = sum(weights[s] * deltas[s][name].astype(np.float64) for s in weights) / total
        want = base + mean.astype(np.float32)
        rel = np.linalg.norm(plain.tensors[name] - want) / np.linalg.norm(want)
        assert rel < 1e-6, (name, rel)


def test_a_ciphertext_under_another_context_is_rejected_by_name(env):
    env.install_public_context()
    a, b, c = env.kits
    updates = {
        a.id: env.export(a, _delta(1)),
        b.id: env.export(b, _delta(2)),
        c.id: env.export(c, _delta(3), context_id="ckks-0000000000000000"),
    }
    report, _ = env.aggregate(updates)
    assert report["contributors"] == ["he-a", "he-b"]
    assert "encrypted under CKKS context 'ckks-0000000000000000'" in report["rejected"]["he-c"]


def test_sites_weighting_differently_fail_the_round_with_nothing_published(env):
    env.install_public_context()
    a, b, _ = env.kits
    updates = {
        a.id: env.export(a, _delta(1), 120.0, how="num_examples"),
        b.id: env.export(b, _delta(2), 1.0, how="uniform"),
    }
    with pytest.raises(AggregationError, match="weight their encrypted updates differently"):
        env.aggregate(updates)
    assert read_latest(env.bucket, RUN) is None


def test_a_coordinator_without_the_public_context_fails_naming_the_setup(env):
    a, b, _ = env.kits
    updates = {a.id: env.export(a, _delta(1)), b.id: env.export(b, _delta(2))}
    with pytest.raises(AggregationError, match=r"he/context.public is missing.*fedpipe he-setup"):
        env.aggregate(updates)
    # and one that was given the sites' copy refuses to use it
    env.bucket.blob(COORDINATOR_CONTEXT_KEY).upload_from_string(env.fk.site)
    with pytest.raises(AggregationError, match="holds the secret key; the coordinator needs"):
        env.aggregate(updates)
    assert read_latest(env.bucket, RUN) is None
