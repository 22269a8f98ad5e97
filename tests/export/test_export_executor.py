"""export against the S3-compatible test server: create-only, SSE + retention requested and
honoured, tampering rejected by the aggregation's verifier, no partial objects, resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from components.common.create_only import ObjectExistsError, put_create_only
from components.common.manifest import (
    ManifestError,
    SignedManifest,
    UpdateManifest,
    generate_keypair,
    sign_manifest,
    verify_manifest,
)
from components.common.secrets import secret_env_name
from components.common.site_task import call_with_task
from components.common.tensors import dump_tensors, load_tensors
from components.domain.canonical import canonical_json, sha256_hex
from components.domain.models import Site
from components.export.executor import run as _export_executor
from components.export.store import ExportExistsError
from components.export.update import DestinationError, ExportError
from components.privacy.ledger_store import LedgerStore
from components.train.executor import run as _train_executor
from tests.support.site_env import initial_global, make_site_env
from tests.support.site_inputs import read_object, train_settings


def train(**inputs):  # as the component calls it
    return call_with_task(_train_executor, inputs)


def export(**inputs):  # as the component calls it
    return call_with_task(_export_executor, inputs)


pytestmark = pytest.mark.integration

HYPER = train_settings()


def _trained(env, tmp_path: Path, run_id: str, round_index: int = 1):
    """(local_model folder, global_model folder) after a real DP-SGD training."""
    global_model = initial_global(env)
    local = tmp_path / f"local-{run_id}-{round_index}"
    meta = train(
        **env.common(run_id, round_index),
        **HYPER,
        validation=env.write_validation(),
        global_model=global_model,
        local_model=str(local),
        client_factory=env.factory(),
        noise_seed=5,
    )
    return str(local), global_model, meta


def _export(env, local: str, global_model: str, run_id: str, out: Path, round_index: int = 1):
    return export(
        **env.common(run_id, round_index),
        local_model=local,
        global_model=global_model,
        update=str(out),
        client_factory=env.factory(),
    )


@pytest.fixture()
def site(minio, tmp_path, monkeypatch):
    return make_site_env(minio, tmp_path, monkeypatch)


def test_export_writes_signed_delta_with_sse_and_retention(site, minio, tmp_path):
    local, global_model, meta = _trained(site, tmp_path, "run-x")
    ref = _export(site, local, global_model, "run-x", tmp_path / "upd")
    assert ref["status"] == "exported"
    assert json.loads((tmp_path / "upd" / "ref.json").read_text()) == ref
    assert ref["key"] == "updates/run-x/round-0001/hospital-berlin"
    assert ref["tensors_key"] == ref["key"] + ".npz"

    payload = read_object(minio, site.bucket, ref["tensors_key"])
    signed = SignedManifest.from_json(read_object(minio, site.bucket, ref["manifest_key"]))
    m = verify_manifest(
        signed,
        public_key_pem=site.public_pem,
        expected_site_id="hospital-berlin",
        expected_run_id="run-x",
        expected_round=1,
        content_sha256=sha256_hex(payload),
    )
    # delta = local - global, named float32 tensors
    delta = load_tensors(payload)
    local_t = load_tensors((Path(local) / "model.npz").read_bytes())
    global_t = load_tensors((Path(global_model) / "model.npz").read_bytes())
    for name in ("dense/kernel", "dense/bias"):
        assert delta[name].dtype == np.float32
        np.testing.assert_allclose(delta[name], local_t[name] - global_t[name], rtol=0, atol=1e-7)
    # DP parameters; eu-health hides the sample count (and q, steps and the exact epsilon that
    # reveal it): the manifest carries the policy's bound, the exact figure stays in the ledger
    assert 0 < meta["epsilon"] < 3.0
    assert (m.epsilon, m.epsilon_pld) == (3.0, None)
    assert m.dp["epsilon_disclosure"] == "policy_bound"
    assert m.delta == 1e-5 and m.policy_digest == site.policy_digest
    assert m.num_examples is None
    assert "sampling_rate" not in m.dp and "steps" not in m.dp
    assert m.dp["noise_multiplier"] == 1.5 and m.dp["l2_norm_clip"] == 1.0

    # SSE requested and honoured; object-lock retention set (eu-health: 30 days)
    assert ref["stored"]["server_side_encryption"] == "AES256"
    for key in (ref["tensors_key"], ref["manifest_key"]):
        stat = minio.stat_object(site.bucket, key)
        assert stat.metadata.get("x-amz-server-side-encryption") == "AES256"
        assert stat.metadata.get("x-amz-object-lock-mode") == "COMPLIANCE"
        assert stat.metadata.get("x-amz-object-lock-retain-until-date")


def test_sample_count_revealed_only_when_policy_says_so(site, minio, tmp_path):
    reveal = site.with_policy({"export": {"reveal_num_examples": True}})
    local, global_model, meta = _trained(reveal, tmp_path, "run-n")
    ref = _export(reveal, local, global_model, "run-n", tmp_path / "upd")
    manifest = ref["manifest"]["manifest"]
    assert manifest["num_examples"] == meta["num_examples"]
    assert manifest["dp"]["sampling_rate"] == pytest.approx(16 / meta["num_examples"])


def test_export_twice_is_refused_and_first_object_unchanged(site, minio, tmp_path):
    local, global_model, _ = _trained(site, tmp_path, "run-y")
    ref = _export(site, local, global_model, "run-y", tmp_path / "u1")
    before = (
        read_object(minio, site.bucket, ref["tensors_key"]),
        read_object(minio, site.bucket, ref["manifest_key"]),
    )
    versions = (
        minio.stat_object(site.bucket, ref["tensors_key"]).version_id,
        minio.stat_object(site.bucket, ref["manifest_key"]).version_id,
    )
    # A second training of the same round (a retry) tries to export to the same key.
    local2 = tmp_path / "local-again"
    meta2 = train(
        **site.common("run-y", 1),
        **HYPER,
        validation=site.write_validation(),
        global_model=global_model,
        local_model=str(local2),
        client_factory=site.factory(),
        noise_seed=6,
    )
    assert meta2["status"] == "resumed"  # train sees the export and does not retrain
    assert not (local2 / "model.npz").exists()
    assert len(LedgerStore(minio, site.bucket, site.site_id).entries()) == 1  # nothing spent
    assert meta2["epsilon"] == pytest.approx(ref["manifest"]["manifest"]["epsilon"])
    # Export of a *different* trained model for the same (run, round, site) is refused:
    with pytest.raises(ExportExistsError, match="already exists"):
        _export(site, local, global_model, "run-y", tmp_path / "u2")
    after = (
        read_object(minio, site.bucket, ref["tensors_key"]),
        read_object(minio, site.bucket, ref["manifest_key"]),
    )
    assert after == before
    assert (
        minio.stat_object(site.bucket, ref["tensors_key"]).version_id,
        minio.stat_object(site.bucket, ref["manifest_key"]).version_id,
    ) == versions
    objects = list(
        minio.list_objects(site.bucket, prefix="updates/", recursive=True, include_version=True)
    )
    assert len(objects) == 2  # no second version was written


def test_resumed_export_verifies_and_references_existing_update(site, minio, tmp_path):
    local, global_model, _ = _trained(site, tmp_path, "run-r")
    first = _export(site, local, global_model, "run-r", tmp_path / "u1")
    resumed_local, _, meta = _trained(site, tmp_path, "run-r")  # KFP retry of train
    assert meta["status"] == "resumed"
    ref = _export(site, resumed_local, global_model, "run-r", tmp_path / "u2")
    assert ref["status"] == "exported" and ref["resumed"] is True
    assert ref["manifest"] == first["manifest"]


def test_conditional_put_refused_by_server_even_without_stat(site, minio):
    # The server itself honours If-None-Match: * (not only our stat-before-put).
    put_create_only(minio, site.bucket, "probe/x", b"first")
    with pytest.raises(ObjectExistsError):
        put_create_only(minio, site.bucket, "probe/x", b"second")
    assert read_object(minio, site.bucket, "probe/x") == b"first"


def _signed_update(site, minio, tmp_path):
    local, global_model, _ = _trained(site, tmp_path, "run-t")
    ref = _export(site, local, global_model, "run-t", tmp_path / "u")
    payload = read_object(minio, site.bucket, ref["tensors_key"])
    return payload, SignedManifest.from_json(read_object(minio, site.bucket, ref["manifest_key"]))


def test_tampered_manifest_hash_or_site_rejected_by_verifier(site, minio, tmp_path):
    payload, signed = _signed_update(site, minio, tmp_path)
    kwargs = dict(
        public_key_pem=site.public_pem,
        expected_site_id="hospital-berlin",
        expected_run_id="run-t",
        expected_round=1,
    )
    verify_manifest(signed, content_sha256=sha256_hex(payload), **kwargs)  # the genuine one passes

    # 1. a field changed after signing (epsilon lowered): signature fails
    forged = dataclasses.replace(signed.manifest, epsilon=0.01)
    with pytest.raises(ManifestError, match="signature"):
        verify_manifest(
            SignedManifest(forged, signed.signature_b64),
            content_sha256=sha256_hex(payload),
            **kwargs,
        )
    # 2. tensors changed: hash mismatch
    tampered = bytearray(payload)
    tampered[-30] ^= 0xFF
    with pytest.raises(ManifestError, match="hash"):
        verify_manifest(signed, content_sha256=sha256_hex(bytes(tampered)), **kwargs)
    # 3. re-signed by another site's key / naming another site
    other = generate_keypair()[0]
    resigned = sign_manifest(dataclasses.replace(signed.manifest, site_id="hospital-paris"), other)
    with pytest.raises(ManifestError):
        verify_manifest(resigned, content_sha256=sha256_hex(payload), **kwargs)
    own_key_other_site = sign_manifest(
        dataclasses.replace(signed.manifest, site_id="hospital-paris"), site.private_pem
    )
    with pytest.raises(ManifestError, match="hospital-paris"):
        verify_manifest(own_key_other_site, content_sha256=sha256_hex(payload), **kwargs)
    # 4. a replay into another round
    with pytest.raises(ManifestError, match="replay"):
        verify_manifest(
            signed, content_sha256=sha256_hex(payload), **{**kwargs, "expected_round": 2}
        )
    assert isinstance(signed.manifest, UpdateManifest)


def test_bad_inputs_leave_no_partial_object(site, minio, tmp_path, monkeypatch):
    local, global_model, _ = _trained(site, tmp_path, "run-b")
    # A NaN in the local model: refused before anything is written.
    tensors = load_tensors((Path(local) / "model.npz").read_bytes())
    tensors["dense/bias"][0] = np.nan
    (Path(local) / "model.npz").write_bytes(dump_tensors(tensors))
    with pytest.raises(ExportError, match="NaN"):
        _export(site, local, global_model, "run-b", tmp_path / "u")
    # A signing key that does not belong to the site spec: refused before writing.
    local2, global2, _ = _trained(site, tmp_path, "run-b2")
    monkeypatch.setenv(secret_env_name(site.site_id, "SIGNING_KEY"), generate_keypair()[0])
    with pytest.raises(ExportError, match="SIGNING_KEY"):
        _export(site, local2, global2, "run-b2", tmp_path / "u2")
    assert list(minio.list_objects(site.bucket, prefix="updates/", recursive=True)) == []


def test_failure_after_first_put_removes_only_our_object(site, minio, tmp_path, monkeypatch):
    local, global_model, _ = _trained(site, tmp_path, "run-f")
    import components.export.store as store

    calls = {"n": 0}
    real_put = store.put_create_only

    def failing_second_put(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("network dropped while writing the manifest")
        return real_put(*args, **kwargs)

    monkeypatch.setattr(store, "put_create_only", failing_second_put)
    with pytest.raises(ConnectionError):
        _export(site, local, global_model, "run-f", tmp_path / "u")
    assert list(minio.list_objects(site.bucket, prefix="updates/", recursive=True)) == []
    monkeypatch.setattr(store, "put_create_only", real_put)
    ref = _export(site, local, global_model, "run-f", tmp_path / "u2")  # a retry succeeds
    assert ref["status"] == "exported"


def test_object_lock_required_but_bucket_has_none(minio, tmp_path, monkeypatch):
    env = make_site_env(minio, tmp_path, monkeypatch, object_lock=False)
    # train charges the ledger under object lock first: it abstains, nothing spent or trained
    local, global_model, meta = _trained(env, tmp_path, "run-l")
    assert meta["status"] == "abstained" and "has none" in meta["reason"], meta
    assert "object lock" in meta["reason"]
    assert LedgerStore(minio, env.bucket, env.site_id).entries() == []
    assert _export(env, local, global_model, "run-l", tmp_path / "u")["status"] != "exported"
    assert list(minio.list_objects(env.bucket, prefix="updates/", recursive=True)) == []
    relaxed = env.with_policy({"retention": {"object_lock": False}})
    # Same run id under a new policy digest: the earlier refusal wrote nothing, so this works.
    local2, global2, _ = _trained(relaxed, tmp_path, "run-l")
    assert _export(relaxed, local2, global2, "run-l", tmp_path / "u2")["status"] == "exported"


@pytest.mark.parametrize("protection", ["secagg"])
def test_a_policy_asking_for_protection_refuses_a_clear_export(site, tmp_path, protection):
    from components.export.update import ExportError

    guarded = site.with_policy({"aggregation": {"protection": protection}})
    local, global_model, _ = _trained(site, tmp_path, f"run-{protection}")
    with pytest.raises(ExportError, match=f"asks aggregation.protection {protection}"):
        _export(guarded, local, global_model, f"run-{protection}", tmp_path / "upd")
    assert not list(site.client.list_objects(site.bucket, prefix="updates/", recursive=True))


def test_destination_must_be_a_site_s3_bucket_with_tls(site, tmp_path):
    local, global_model, _ = _trained(site, tmp_path, "run-d")
    spec = json.loads(site.site_json)
    spec["object_store"]["secure"] = False
    changed = Site.parse_obj(spec)  # a compiled spec: its digest travels with it
    insecure = dataclasses.replace(site, site=changed, site_json=canonical_json(changed))
    with pytest.raises(DestinationError, match="in_transit"):
        _export(insecure, local, global_model, "run-d", tmp_path / "u")


def test_abstained_training_exports_nothing(site, minio, tmp_path):
    local = tmp_path / "abstained"
    train(
        **site.common("run-a", 1),
        **HYPER,
        validation=site.write_validation(passed=False, reason="null labels"),
        global_model=initial_global(site),
        local_model=str(local),
        client_factory=site.factory(),
        noise_seed=1,
    )
    ref = _export(site, str(local), initial_global(site), "run-a", tmp_path / "u")
    assert ref["status"] == "abstained" and "null labels" in ref["reason"]
    assert list(minio.list_objects(site.bucket, prefix="updates/", recursive=True)) == []


def test_no_raw_value_of_the_site_data_leaves_in_ref_or_manifest(site, minio, tmp_path):
    from tests.support.site_env import federation_split

    local, global_model, _ = _trained(site, tmp_path, "run-leak")
    ref = _export(site, local, global_model, "run-leak", tmp_path / "u")
    text = (tmp_path / "u" / "ref.json").read_text() + read_object(
        minio, site.bucket, ref["manifest_key"]
    ).decode()
    frame = federation_split().sites[site.site_id].train
    # Every distinct cell value with enough digits to be identifying (e.g. 17.99, 0.1184).
    values = {v for v in frame.drop(columns=["label"]).to_numpy().ravel() if len(repr(v)) >= 5}
    leaked = sorted(v for v in values if repr(v) in text)
    assert leaked == [], f"raw values found in exported JSON: {leaked[:5]}"
    assert str(len(frame)) not in json.dumps(ref["manifest"]["manifest"]["dp"])


def test_local_model_of_another_round_or_global_version_is_refused(site, minio, tmp_path):
    local, global_model, _ = _trained(site, tmp_path, "run-m")
    with pytest.raises(ExportError, match="site/run/round"):
        _export(site, local, global_model, "run-m", tmp_path / "u", round_index=2)
    other_global = site.write_global(
        load_tensors((Path(global_model) / "model.npz").read_bytes()), 3, "global-v3"
    )
    with pytest.raises(ExportError, match="global version"):
        _export(site, local, other_global, "run-m", tmp_path / "u2")
    assert list(minio.list_objects(site.bucket, prefix="updates/", recursive=True)) == []


@pytest.mark.slow
def test_the_published_figures_leave_many_candidates_for_a_hidden_count(site, tmp_path):
    """Issue #11 item 2: an N-inversion search over 9..600 with the real accountant and
    everything the export publishes (ref.json with the signed manifest, the pipeline's
    batch size, epochs, noise multiplier; delta) must not pin the site's N down."""
    from components.privacy.accounting import dp_sgd_event, rdp_epsilon
    from components.privacy.disclosure import consistent_sizes, epsilon_interval

    local, global_model, meta = _trained(site, tmp_path, "run-inv")
    ref = _export(site, local, global_model, "run-inv", tmp_path / "upd")
    m = ref["manifest"]["manifest"]
    assert m["num_examples"] is None
    dp, delta = m["dp"], m["delta"]

    def eps(n: int) -> float:
        if n < dp["batch_size"]:
            return float("inf")
        event = dp_sgd_event(n, dp["batch_size"], dp["local_epochs"], dp["noise_multiplier"])
        return rdp_epsilon([event], delta)

    interval = epsilon_interval(m["epsilon"], dp.get("epsilon_disclosure", "exact"))
    found = consistent_sizes(interval, eps, range(9, 601))
    true_n = LedgerStore(site.client, site.bucket, site.site_id).entries()[0].num_examples
    assert true_n in found
    assert len(found) > 20, f"{len(found)} candidate(s) for N: {found[:5]}"
