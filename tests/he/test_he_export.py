"""export under `aggregation.protection: he` against the S3-compatible test server: the update
leaves encrypted (`.ckks` beside the signed manifest), the coordinator's verifier accepts it
with the public context only, it decrypts to the plain delta; a site without the secret
context fails naming the object and the setup command, writing nothing."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from components.aggregation.verify import UpdateRejected, verify_encrypted_update
from components.common.global_model import read_global_model
from components.common.site_task import call_with_task
from components.common.tensors import load_tensors
from components.domain.canonical import policy_digest
from components.export.executor import run as _export_executor
from components.he.ckks import HeError, decrypt_mean
from components.he.global_model import flatten
from components.he.keys import new_federation_keys, open_envelope
from components.he.wire import SITE_CONTEXT_KEY, unpack_bundle
from components.train.executor import run as _train_executor
from tests.support.site_env import initial_global, make_site_env
from tests.support.site_inputs import read_object, train_settings

pytestmark = pytest.mark.integration

HYPER = train_settings()


def _trained(env, tmp_path: Path, run_id: str):
    """(local_model folder, global_model folder, meta) after a real DP-SGD training."""
    global_model = initial_global(env)
    local = tmp_path / f"local-{run_id}"
    meta = call_with_task(
        _train_executor,
        dict(
            **env.common(run_id, 1),
            **HYPER,
            validation=env.write_validation(),
            global_model=global_model,
            local_model=str(local),
            client_factory=env.factory(),
            noise_seed=5,
        ),
    )
    return str(local), global_model, meta


def _export(env, local: str, global_model: str, run_id: str, out: Path):
    return call_with_task(
        _export_executor,
        dict(
            **env.common(run_id, 1),
            local_model=local,
            global_model=global_model,
            update=str(out),
            client_factory=env.factory(),
        ),
    )


@pytest.fixture()
def site(minio, tmp_path, monkeypatch):
    env = make_site_env(minio, tmp_path, monkeypatch)
    return env.with_policy({"aggregation": {"protection": "he"}})


def _install(site, data: bytes) -> None:
    site.client.put_object(site.bucket, SITE_CONTEXT_KEY, io.BytesIO(data), len(data))


def test_a_site_without_the_secret_context_fails_clearly_and_writes_nothing(site, tmp_path):
    local, global_model, _ = _trained(site, tmp_path, "run-nokey")
    with pytest.raises(HeError) as err:
        _export(site, local, global_model, "run-nokey", tmp_path / "upd")
    message = str(err.value)
    assert f"site hospital-berlin: s3://{site.bucket}/{SITE_CONTEXT_KEY} is missing" in message
    assert "fedpipe he-setup" in message
    assert not list(site.client.list_objects(site.bucket, prefix="updates/", recursive=True))
    # the coordinator's public copy is refused as a site's context, also clearly
    _install(site, new_federation_keys().coordinator)
    with pytest.raises(HeError, match="has no secret key; a site needs the sites' copy"):
        _export(site, local, global_model, "run-nokey", tmp_path / "upd2")


def test_encrypted_export_verifies_without_the_secret_key_and_decrypts_to_the_delta(site, tmp_path):
    keys = new_federation_keys()
    _install(site, keys.site)
    local, global_model, _ = _trained(site, tmp_path, "run-he")
    ref = _export(site, local, global_model, "run-he", tmp_path / "upd")
    assert ref["status"] == "exported"
    assert ref["tensors_key"] == ref["key"] + ".ckks"
    assert not list(site.client.list_objects(site.bucket, prefix=ref["key"] + ".npz"))
    bundle = read_object(site.client, site.bucket, ref["tensors_key"])
    manifest = read_object(site.client, site.bucket, ref["manifest_key"])
    gm = read_global_model(global_model)
    spec = {n: t.shape for n, t in gm.tensors.items()}
    public = open_envelope(keys.coordinator, secret=False, where="coordinator")
    common = dict(
        site_id="hospital-berlin",
        bundle_bytes=bundle,
        manifest_bytes=manifest,
        public_key_pem=site.public_pem,
        run_id="run-he",
        round_index=1,
        spec=spec,
        policy_digest=policy_digest(site.policy),
        epsilon_per_round=site.policy.dp.epsilon_per_round,
        allow_dp_off=False,
        global_version=0,
    )
    verified = verify_encrypted_update(**common, context_id=public.context_id)
    extra = verified.manifest.extra
    assert extra["protection"] == "he" and extra["he_context"] == keys.context_id
    assert extra["he_weight"] == "uniform"  # the example policy hides sample counts
    with pytest.raises(UpdateRejected, match="encrypted under CKKS context"):
        verify_encrypted_update(**common, context_id="ckks-another-setup")
    # what the sites will decrypt: w·Δ and w, Δ = local − global
    secret = open_envelope(keys.site, secret=True, where="site")
    length = sum(int(np.prod(s)) for s in spec.values())
    mean, weight = decrypt_mean(
        secret.context, unpack_bundle(bundle, context_id=keys.context_id, length=length)
    )
    assert weight == pytest.approx(1.0, abs=1e-6)
    local_tensors = load_tensors((Path(local) / "model.npz").read_bytes())
    delta = flatten({n: local_tensors[n] - gm.tensors[n] for n in gm.tensors})
    np.testing.assert_allclose(mean, delta, rtol=0, atol=1e-6)
