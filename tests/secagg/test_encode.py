"""Weighted FedAvg under SecAgg+: sites bound norms, weights travel inside the masked sum."""

from __future__ import annotations

import numpy as np
import pytest

from components.secagg.encode import clip_l2, decode_mean, encode_weighted, weighted_quantizer
from components.secagg.errors import SecAggError
from tests.support.secagg import setup


def test_clip_l2_by_hand() -> None:
    assert np.allclose(clip_l2(np.array([3.0, 4.0]), 10.0), [3.0, 4.0])
    assert np.allclose(clip_l2(np.array([3.0, 4.0]), 1.0), [0.6, 0.8])


def test_masked_weighted_sum_decodes_to_the_weighted_mean() -> None:
    fed = setup(3, 2, 2)
    ids = sorted(fed.sessions)
    rng = np.random.default_rng(4)
    updates = [rng.normal(scale=0.01, size=500) for _ in ids]
    weights = [122.0, 97.0, 151.0]
    bound = 1.0
    q = weighted_quantizer(3, bound, max_weight=200.0)
    masked = [
        fed.sessions[s].mask(encode_weighted(u, w, bound, q), 32)
        for s, u, w in zip(ids, updates, weights, strict=True)
    ]
    from components.secagg.unmask import make_request, unmask_sum

    request = make_request(fed.roster, ids, fed.coordinator_key)
    answers = [fed.sessions[s].respond(request, fed.coordinator_key.public_key()) for s in ids]
    total = unmask_sum(fed.roster, fed.ads, dict(zip(ids, masked, strict=True)), answers, 32)
    mean, total_weight = decode_mean(total, 3, q)
    plain = np.average(np.stack(updates), axis=0, weights=weights)
    assert total_weight == pytest.approx(sum(weights), abs=3 / (2 * q.scale))
    # 30 bits over [-200, 200]: one step is 3.7e-7; three rounding errors over weight 370
    assert np.max(np.abs(mean - plain)) < 3 / (2 * q.scale) / 300


def test_weight_outside_the_quantizer_range_is_refused() -> None:
    q = weighted_quantizer(3, 1.0, max_weight=100.0)
    with pytest.raises(SecAggError, match="weight 150"):
        encode_weighted(np.zeros(4), 150.0, 1.0, q)
