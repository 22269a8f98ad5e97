"""The pieces that carry CKKS through the pipeline (no servers): context envelopes, ciphertext
bundles, the encrypted global model chain and its decryption at a site."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.aggregation.he_weight import total_weight
from components.common.global_model import GlobalModel, GlobalModelError, read_global_model
from components.domain.protection import rule_conflicts
from components.he.ckks import HeError, decrypt_model, encrypt_model, encrypt_weighted
from components.he.global_model import (
    EncryptedGlobal,
    decrypt_global,
    encrypted_from,
    flatten,
    next_model,
    read_any,
    read_encrypted,
    unflatten,
    write_encrypted,
)
from components.he.keys import new_federation_keys, open_envelope
from components.he.wire import (
    ContextEnvelope,
    expected_chunks,
    pack_bundle,
    pack_context,
    unpack_bundle,
    unpack_context,
)


@pytest.fixture(scope="module")
def keys():
    fk = new_federation_keys()
    site = open_envelope(fk.site, secret=True, where="site")
    public = open_envelope(fk.coordinator, secret=False, where="coordinator")
    return fk, site, public


def _model(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "dense/kernel": rng.normal(size=(30, 2)).astype(np.float32),
        "dense/bias": rng.normal(size=(2,)).astype(np.float32),
    }


def test_envelopes_say_which_copy_holds_the_secret_key(keys):
    fk, site, public = keys
    assert site.context_id == public.context_id == fk.context_id
    assert site.context.is_private() and not public.context.is_private()
    # the coordinator only adds: no relinearization or Galois keys either (a quarter the size)
    assert not public.context.has_relin_keys() and not public.context.has_galois_keys()
    assert len(fk.coordinator) < 600_000
    with pytest.raises(HeError, match="holds the secret key; the coordinator needs the public"):
        open_envelope(fk.site, secret=False, where="gs://b/he/context.public")
    with pytest.raises(HeError, match="has no secret key; a site needs the sites' copy"):
        open_envelope(fk.coordinator, secret=True, where="s3://b/he/context.secret")
    # a header that lies about the key is caught by the context itself
    body = unpack_context(fk.coordinator).context
    forged = pack_context(ContextEnvelope(fk.context_id, True, body))
    with pytest.raises(HeError, match="has no secret key"):
        open_envelope(forged, secret=True, where="forged")
    with pytest.raises(HeError, match="not a fedpipe CKKS"):
        unpack_context(b"PK\x03\x04...")


def test_bundle_round_trip_and_refusals(keys):
    _, site, _ = keys
    x = np.arange(5000, dtype=np.float64)  # two chunks (5001 slots)
    enc = encrypt_weighted(site.context, x, 2.0)
    data = pack_bundle(enc, site.context_id)
    back = unpack_bundle(data, context_id=site.context_id, length=5000)
    assert back == enc and len(back.chunks) == expected_chunks(5000) == 2
    with pytest.raises(HeError, match="encrypted under CKKS context 'ckks-1'.*another setup"):
        unpack_bundle(pack_bundle(enc, "ckks-1"), context_id=site.context_id, length=5000)
    with pytest.raises(HeError, match="4999 values, the model has 5000|5000 values, the model"):
        unpack_bundle(data, context_id=site.context_id, length=4999)
    with pytest.raises(HeError, match="header announces"):
        unpack_bundle(data[:-1], context_id=site.context_id, length=5000)
    with pytest.raises(HeError, match="exceeds"):
        unpack_bundle(data, context_id=site.context_id, length=5000, max_chunk_bytes=1000)


def test_flatten_orders_by_name_and_unflatten_inverts_it():
    tensors = {"b": np.array([3.0, 4.0], np.float32), "a": np.array([[1.0], [2.0]], np.float32)}
    assert flatten(tensors).tolist() == [1.0, 2.0, 3.0, 4.0]
    back = unflatten(np.array([1.0, 2.0, 3.0, 4.0]), [("a", (2, 1)), ("b", (2,))])
    assert back["a"].tolist() == [[1.0], [2.0]] and back["b"].dtype == np.float32
    with pytest.raises(HeError, match="decrypted 3 values, the model has 4"):
        unflatten(np.zeros(3), [("a", (2, 1)), ("b", (2,))])


def _fedavg_round(
    previous, site, public, rng: np.random.Generator, weights: list[float], *, divide_by=None
):
    """(next EncryptedGlobal, the plain deltas) of one round of 3 sites, as the coordinator
    builds it: Enc(v_{r-1}) + (Σ Enc(wᵢΔᵢ)) / W with the public context only."""
    deltas = [_model(rng) for _ in weights]
    cts = [
        encrypt_weighted(site.context, flatten(d), w) for d, w in zip(deltas, weights, strict=True)
    ]
    version = previous.version + 1
    bundle = next_model(previous, public.context, public.context_id, cts, divide_by or sum(weights))
    meta = {
        "version": version,
        "model_name": "logreg",
        "dataset": "bc",
        "parent": f"v{version - 1}",
    }
    enc = encrypted_from(
        previous, context_id=public.context_id, version=version, bundle=bundle, meta=meta
    )
    return enc, deltas


def test_the_encrypted_global_model_stays_one_ciphertext_over_rounds(keys, tmp_path: Path):
    """3 sites × 5 rounds (seeded data): the artifact is one ciphertext whose size does not
    grow with the rounds (it carried one more 331 KB bundle per round before), and a site's
    decryption stays within 1e-6 relative of the plaintext FedAvg chain."""
    _, site, public = keys
    rng = np.random.default_rng(7)
    v0 = _model(rng)
    previous: object = GlobalModel(
        v0, {"version": 0, "model_name": "logreg", "dataset": "bc", "parent": None}
    )
    plain = dict(v0)
    weights = [122.0, 180.0, 97.0]
    sizes = []
    for r in range(1, 6):
        enc, deltas = _fedavg_round(previous, site, public, rng, weights)
        folder = tmp_path / f"v{r}"
        write_encrypted(folder, enc)
        assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "model.ckks"]
        sizes.append((folder / "model.ckks").stat().st_size)
        previous = read_any(folder)  # what the next aggregate task reads
        assert isinstance(previous, EncryptedGlobal) and previous.meta["he"]["base_version"] == 0
        mean = {
            n: np.sum(
                [w * d[n].astype(np.float64) for d, w in zip(deltas, weights, strict=True)], axis=0
            )
            / sum(weights)
            for n in v0
        }
        plain = {n: plain[n] + mean[n].astype(np.float32) for n in v0}
        decrypted = decrypt_global(read_encrypted(folder), site.context, site.context_id)
        assert decrypted.version == r
        for n in v0:
            rel = np.linalg.norm(decrypted.tensors[n] - plain[n]) / np.linalg.norm(plain[n])
            assert rel < 1e-6, (r, n, rel)
    # ± header digits and TenSEAL's compression of the serialized ciphertext (< 1 %)
    assert max(sizes) - min(sizes) < 4096, sizes
    assert max(sizes) < 300_000  # one chunk at the level below a fresh ciphertext
    with pytest.raises(GlobalModelError, match="CKKS-encrypted.*only a site decrypts it"):
        read_global_model(tmp_path / "v5")
    with pytest.raises(HeError, match="this site holds ckks-other"):
        decrypt_global(read_encrypted(tmp_path / "v5"), site.context, "ckks-other")


def test_the_public_context_encrypts_but_cannot_decrypt(keys):
    _, site, public = keys
    assert public.context.has_public_key() and not public.context.is_private()
    enc = encrypt_model(public.context, np.arange(10.0))
    values, steps = decrypt_model(site.context, enc)
    assert np.allclose(values, np.arange(10.0), atol=1e-6) and abs(steps) < 1e-6
    with pytest.raises(HeError, match="needs the sites' context with the secret key"):
        decrypt_model(public.context, enc)


def test_a_wrong_total_weight_is_refused_by_the_site(keys):
    """A coordinator that divides by anything but the sites' total weight moves the weight
    slot off one step per round: the site refuses the model instead of training on it."""
    _, site, public = keys
    rng = np.random.default_rng(3)
    v0 = GlobalModel(_model(rng), {"version": 0, "model_name": "m", "dataset": "d", "parent": None})
    enc, _ = _fedavg_round(v0, site, public, rng, [2.0, 3.0, 5.0], divide_by=5.0)
    with pytest.raises(HeError, match="weight slot reads 2, expected 1 FedAvg steps since v0"):
        decrypt_global(enc, site.context, site.context_id)


def test_a_changed_model_file_is_refused(keys, tmp_path: Path):
    _, site, public = keys
    rng = np.random.default_rng(1)
    v0 = GlobalModel(_model(rng), {"version": 0, "model_name": "m", "dataset": "d", "parent": None})
    enc, _ = _fedavg_round(v0, site, public, rng, [1.0, 1.0, 1.0])
    write_encrypted(tmp_path, enc)
    (tmp_path / "model.ckks").write_bytes(b"x" + (tmp_path / "model.ckks").read_bytes()[1:])
    with pytest.raises(GlobalModelError, match="model.ckks differs from the sha256"):
        read_encrypted(tmp_path)


def test_total_weight_recomputes_the_sites_weights():
    assert total_weight("uniform", {"a": None, "b": None, "c": None}, {}) == 3.0
    caps = {"a": (100, "a data.num_examples.max"), "b": None}
    assert total_weight("num_examples", {"a": 150, "b": 40}, caps) == 140.0  # 100 + 40
    with pytest.raises(HeError, match="site b weights by num_examples but its manifest"):
        total_weight("num_examples", {"a": 150, "b": None}, caps)


def test_he_allows_only_plain_fedavg():
    assert rule_conflicts("he", "fedavg", "fedavg", 1.0) == []
    (robust,) = rule_conflicts("he", "median")
    assert "coordinate-wise median needs every single update" in robust
    (server,) = rule_conflicts("he", "fedavg", "fedadam", 1.0)
    assert "server_optimizer 'fedadam'" in server and "use plain FedAvg" in server
    assert rule_conflicts("he", "fedavg", "fedavg", 0.5)  # a damped step is no plain FedAvg


def test_the_coordinator_s_read_identity_never_reaches_the_secret_context():
    from components.he.wire import SITE_CONTEXT_KEY
    from pipelines.access.rules import access_rules
    from tests.support.example_federation import example_federation

    rules = access_rules(example_federation())
    assert rules  # one per site bucket
    for bucket in rules.values():
        assert not any(SITE_CONTEXT_KEY.startswith(p) for p in bucket.coordinator_reads), bucket


def test_a_decrypted_copy_is_a_plain_folder(keys, tmp_path: Path):
    from components.common.global_model import write_global_model

    _, site, public = keys
    rng = np.random.default_rng(2)
    v0 = GlobalModel(_model(rng), {"version": 0, "model_name": "m", "dataset": "d", "parent": None})
    enc, _ = _fedavg_round(v0, site, public, rng, [1.0, 1.0, 1.0])
    plain = decrypt_global(enc, site.context, site.context_id)
    assert plain.meta["protection"] == "he" and "he" not in plain.meta
    assert plain.meta["decrypted_from"] == {"context_id": site.context_id, "base_version": 0}
    write_global_model(tmp_path, plain)
    assert isinstance(read_any(tmp_path), GlobalModel)  # not mistaken for an encrypted one
