"""Three sites, two DP-SGD rounds on breast cancer, aggregated under CKKS: every round's
decrypted global model is within 1e-6 relative of plaintext FedAvg of the same updates, and
the SecAgg+ path (quantized, masked, unmasked) lands within its quantization step."""

from __future__ import annotations

import numpy as np
import pytest

from components.datasets.features import fit_scaler, frame_to_arrays
from components.he.ckks import (
    add_encrypted,
    coordinator_context_bytes,
    decrypt_mean,
    encrypt_weighted,
    load_context,
    new_context,
    site_context_bytes,
)
from components.secagg.encode import decode_mean, encode_weighted, weighted_quantizer
from components.secagg.unmask import make_request, unmask_sum
from components.train.dpsgd import DpSgdConfig, train_dp_sgd
from components.train.models import initial_weights
from pipelines.config.loader import contract_by_name
from tests.support.secagg import setup
from tests.support.site_env import SITE_IDS, federation_split

pytestmark = pytest.mark.slow


def _flat(tensors: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([tensors[k].ravel().astype(np.float64) for k in sorted(tensors)])


def _unflat(vector: np.ndarray, like: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out, at = {}, 0
    for k in sorted(like):
        size = like[k].size
        out[k] = vector[at : at + size].reshape(like[k].shape).astype(np.float32)
        at += size
    return out


def test_three_site_rounds_under_he_and_secagg_match_plaintext_fedavg() -> None:
    contract = contract_by_name("breast_cancer")
    fed = federation_split(seed=0)
    data = {}
    for s in SITE_IDS:
        x, y = frame_to_arrays(contract, fed.sites[s].train, s)
        data[s] = (fit_scaler(contract, x).transform(x), y)
    ctx = new_context()
    site_ctx = load_context(site_context_bytes(ctx), secret=True)
    coord_ctx = load_context(coordinator_context_bytes(ctx), secret=False)
    config = DpSgdConfig(8, 1, 0.05, noise_multiplier=1.5, l2_norm_clip=1.0)
    he_model = initial_weights("logreg", contract.num_features, contract.num_classes, 0)
    for r in (1, 2):
        deltas, weights = [], []
        for i, s in enumerate(SITE_IDS):
            x, y = data[s]
            trained = train_dp_sgd(
                "logreg", he_model, x, y, 2, config, sampling_seed=10 * r + i, noise_seed=r + i
            )
            deltas.append(_flat(trained.tensors) - _flat(he_model))
            weights.append(float(len(y)))
        plain = np.average(np.stack(deltas), axis=0, weights=weights)
        aggregate = add_encrypted(
            coord_ctx,
            [encrypt_weighted(site_ctx, d, w) for d, w in zip(deltas, weights, strict=False)],
        )
        mean, _ = decrypt_mean(site_ctx, aggregate)
        assert np.linalg.norm(mean - plain) / np.linalg.norm(plain) < 1e-6
        # the same round through SecAgg+ (3 sites, complete graph, t = 2)
        sec = setup(3, 2, 2, seed=r)
        ids = sorted(sec.sessions)
        q = weighted_quantizer(3, norm_bound=10.0, max_weight=200.0)
        masked = {
            s: sec.sessions[s].mask(encode_weighted(d, w, 10.0, q), 32)
            for s, d, w in zip(ids, deltas, weights, strict=False)
        }
        request = make_request(sec.roster, ids, sec.coordinator_key)
        answers = [sec.sessions[s].respond(request, sec.coordinator_key.public_key()) for s in ids]
        sec_mean, _ = decode_mean(unmask_sum(sec.roster, sec.ads, masked, answers, 32), 3, q)
        assert np.max(np.abs(sec_mean - plain)) < 3 / (2 * q.scale) / min(weights)
        he_model = _unflat(_flat(he_model) + mean, he_model)
