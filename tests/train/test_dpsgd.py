"""DP-SGD training: per-example clipping is real, seeded noise reproducible, batches exact."""

from __future__ import annotations

import numpy as np
import pytest

from components.train.dpsgd import (
    NOISE_MODE_OS_ENTROPY,
    NOISE_MODE_SEEDED,
    DpSgdConfig,
    TrainingError,
    epoch_batches,
    train_dp_sgd,
)
from components.train.models import initial_weights


def _data(n: int = 64, f: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f)).astype(np.float32) * 5.0
    y = (x[:, 0] > 0).astype(np.int64)
    return x, y


def _norm(a: dict, b: dict) -> float:
    return float(np.sqrt(sum(float(((a[k] - b[k]) ** 2).sum()) for k in a)))


def test_epoch_batches_are_permutations_truncated_to_whole_batches() -> None:
    order = epoch_batches(10, 3, 2, seed=1)
    assert order.shape == (18,)
    for epoch in order.reshape(2, 9):
        assert len(set(epoch.tolist())) == 9
    assert np.array_equal(order, epoch_batches(10, 3, 2, seed=1))


def test_clipping_bounds_every_step() -> None:
    # Nearly no noise: each step moves the weights by at most lr * clip (mean of clipped grads).
    x, y = _data()
    w0 = initial_weights("logreg", 6, 2, 0)
    clip, lr, batch, epochs = 0.01, 1.0, 8, 2
    result = train_dp_sgd(
        "logreg",
        w0,
        x,
        y,
        2,
        DpSgdConfig(batch, epochs, lr, noise_multiplier=1e-6, l2_norm_clip=clip),
        shuffle_seed=0,
        noise_seed=0,
    )
    assert result.steps == epochs * (64 // batch)
    moved = _norm(result.tensors, w0)
    assert 0 < moved <= result.steps * lr * clip * 1.001
    # Without DP the same run moves far more (the gradients here are large).
    plain = train_dp_sgd(
        "logreg",
        w0,
        x,
        y,
        2,
        DpSgdConfig(batch, epochs, lr, 0.0, 0.0, dp_enabled=False),
        shuffle_seed=0,
        noise_seed=0,
    )
    assert _norm(plain.tensors, w0) > 5 * moved


def test_seeded_noise_is_reproducible_and_os_entropy_is_not() -> None:
    x, y = _data()
    w0 = initial_weights("logreg", 6, 2, 0)
    cfg = DpSgdConfig(8, 1, 0.1, noise_multiplier=2.0, l2_norm_clip=1.0)
    a = train_dp_sgd("logreg", w0, x, y, 2, cfg, shuffle_seed=1, noise_seed=7)
    b = train_dp_sgd("logreg", w0, x, y, 2, cfg, shuffle_seed=1, noise_seed=7)
    c = train_dp_sgd("logreg", w0, x, y, 2, cfg, shuffle_seed=1, noise_seed=8)
    d = train_dp_sgd("logreg", w0, x, y, 2, cfg, shuffle_seed=1, noise_seed=None)
    e = train_dp_sgd("logreg", w0, x, y, 2, cfg, shuffle_seed=1, noise_seed=None)
    assert a.noise_mode == NOISE_MODE_SEEDED and d.noise_mode == NOISE_MODE_OS_ENTROPY
    assert all(np.array_equal(a.tensors[k], b.tensors[k]) for k in w0)
    assert _norm(a.tensors, c.tensors) > 0
    assert _norm(d.tensors, e.tensors) > 0


def test_bad_config_is_refused() -> None:
    x, y = _data(n=10)
    w0 = initial_weights("logreg", 6, 2, 0)
    with pytest.raises(TrainingError, match="batch_size"):
        train_dp_sgd(
            "logreg", w0, x, y, 2, DpSgdConfig(11, 1, 0.1, 1.0, 1.0), shuffle_seed=0, noise_seed=0
        )
    with pytest.raises(TrainingError, match="noise_multiplier"):
        train_dp_sgd(
            "logreg", w0, x, y, 2, DpSgdConfig(5, 1, 0.1, 0.0, 1.0), shuffle_seed=0, noise_seed=0
        )
