"""CKKS aggregation: the coordinator adds without the secret key; the decrypted FedAvg is
within 1e-6 relative of the plaintext FedAvg."""

from __future__ import annotations

import numpy as np
import pytest

from components.he.ckks import (
    HeError,
    add_encrypted,
    coordinator_context_bytes,
    decrypt_mean,
    encrypt_weighted,
    load_context,
    new_context,
    site_context_bytes,
)


@pytest.fixture(scope="module")
def contexts():
    ctx = new_context()
    return (
        load_context(site_context_bytes(ctx), secret=True),
        load_context(coordinator_context_bytes(ctx), secret=False),
    )


def test_three_sites_decrypted_fedavg_matches_plaintext(contexts) -> None:
    site_ctx, coordinator_ctx = contexts
    rng = np.random.default_rng(0)
    updates = [rng.normal(scale=0.05, size=10_000) for _ in range(3)]
    weights = [122.0, 97.0, 151.0]
    encrypted = [encrypt_weighted(site_ctx, u, w) for u, w in zip(updates, weights, strict=True)]
    aggregate = add_encrypted(coordinator_ctx, encrypted)
    mean, total = decrypt_mean(site_ctx, aggregate)
    plain = np.average(np.stack(updates), axis=0, weights=weights)
    assert total == pytest.approx(sum(weights), rel=1e-9)
    assert np.linalg.norm(mean - plain) / np.linalg.norm(plain) < 1e-6
    assert mean.shape == plain.shape
    # ciphertexts are not the plaintext: the coordinator's bytes hold no float of the update
    assert updates[0].astype(np.float32).tobytes()[:64] not in encrypted[0].chunks[0]


def test_the_coordinator_cannot_decrypt_and_must_not_hold_the_secret(contexts) -> None:
    site_ctx, coordinator_ctx = contexts
    agg = add_encrypted(coordinator_ctx, [encrypt_weighted(site_ctx, np.ones(10), 1.0)])
    with pytest.raises(HeError, match="secret key"):
        decrypt_mean(coordinator_ctx, agg)
    with pytest.raises(HeError, match="holds the secret key"):
        add_encrypted(site_ctx, [agg])
    with pytest.raises(HeError, match="expected the coordinator"):
        load_context(site_context_bytes(site_ctx), secret=False)


def test_mismatched_or_bad_updates_are_refused(contexts) -> None:
    site_ctx, coordinator_ctx = contexts
    a = encrypt_weighted(site_ctx, np.ones(10), 1.0)
    b = encrypt_weighted(site_ctx, np.ones(5000), 1.0)
    with pytest.raises(HeError, match="different lengths"):
        add_encrypted(coordinator_ctx, [a, b])
    with pytest.raises(HeError, match="finite"):
        encrypt_weighted(site_ctx, np.array([np.nan]), 1.0)
