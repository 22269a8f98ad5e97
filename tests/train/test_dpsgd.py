"""DP-SGD training: per-example clipping is real, seeded noise reproducible, Poisson batches
Binomial(N, q), shuffled batches exact."""

from __future__ import annotations

import numpy as np
import pytest

from components.train.dpsgd import (
    NOISE_MODE_OS_ENTROPY,
    NOISE_MODE_SEEDED,
    SAMPLING_NOT_PROVEN,
    SAMPLING_POISSON,
    SAMPLING_PROVEN,
    SAMPLING_SHUFFLE,
    DpSgdConfig,
    TrainingError,
    epoch_batches,
    os_uniform,
    poisson_batches,
    sampling_guarantee,
    seeded_uniform,
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
    # Nearly no noise: a step moves the weights by at most lr * clip * B_t / batch_size.
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
        sampling_seed=0,
        noise_seed=0,
    )
    assert result.steps == epochs * (64 // batch)
    moved = _norm(result.tensors, w0)
    # each step: the sum of at most B_t clipped gradients over the expected batch size
    assert 0 < moved <= sum(result.batch_sizes) / batch * lr * clip * 1.001
    # Without DP the same run moves far more (the gradients here are large).
    plain = train_dp_sgd(
        "logreg",
        w0,
        x,
        y,
        2,
        DpSgdConfig(batch, epochs, lr, 0.0, 0.0, dp_enabled=False),
        sampling_seed=0,
        noise_seed=0,
    )
    assert _norm(plain.tensors, w0) > 5 * moved


def test_seeded_noise_is_reproducible_and_os_entropy_is_not() -> None:
    x, y = _data()
    w0 = initial_weights("logreg", 6, 2, 0)
    cfg = DpSgdConfig(8, 1, 0.1, noise_multiplier=2.0, l2_norm_clip=1.0)
    a = train_dp_sgd("logreg", w0, x, y, 2, cfg, sampling_seed=1, noise_seed=7)
    b = train_dp_sgd("logreg", w0, x, y, 2, cfg, sampling_seed=1, noise_seed=7)
    c = train_dp_sgd("logreg", w0, x, y, 2, cfg, sampling_seed=1, noise_seed=8)
    d = train_dp_sgd("logreg", w0, x, y, 2, cfg, sampling_seed=1, noise_seed=None)
    e = train_dp_sgd("logreg", w0, x, y, 2, cfg, sampling_seed=1, noise_seed=None)
    assert a.noise_mode == NOISE_MODE_SEEDED and d.noise_mode == NOISE_MODE_OS_ENTROPY
    assert all(np.array_equal(a.tensors[k], b.tensors[k]) for k in w0)
    assert _norm(a.tensors, c.tensors) > 0
    assert _norm(d.tensors, e.tensors) > 0


def test_bad_config_is_refused() -> None:
    x, y = _data(n=10)
    w0 = initial_weights("logreg", 6, 2, 0)
    with pytest.raises(TrainingError, match="batch_size"):
        train_dp_sgd(
            "logreg", w0, x, y, 2, DpSgdConfig(11, 1, 0.1, 1.0, 1.0), sampling_seed=0, noise_seed=0
        )
    with pytest.raises(TrainingError, match="noise_multiplier"):
        train_dp_sgd(
            "logreg", w0, x, y, 2, DpSgdConfig(5, 1, 0.1, 0.0, 1.0), sampling_seed=0, noise_seed=0
        )


def test_poisson_batch_sizes_follow_binomial() -> None:
    # N = 122, q = 8/122 (the example federation's smallest site at batch 8): 4000 steps.
    from scipy import stats

    n, q, steps = 122, 8 / 122, 4000
    batches = poisson_batches(n, q, steps, seeded_uniform(11))
    sizes = np.array([len(b) for b in batches])
    assert len(batches) == steps
    assert abs(sizes.mean() - n * q) < 4 * np.sqrt(n * q * (1 - q) / steps)
    assert abs(sizes.var() / (n * q * (1 - q)) - 1) < 0.1
    # chi-square goodness of fit against Binomial(N, q), tails pooled to expected count >= 5
    pmf = stats.binom.pmf(np.arange(n + 1), n, q) * steps
    lo, hi = int(np.argmax(pmf >= 5)), int(n - np.argmax(pmf[::-1] >= 5))
    observed = np.bincount(np.clip(sizes, lo, hi) - lo, minlength=hi - lo + 1)
    expected = pmf[lo : hi + 1].copy()
    expected[0] += pmf[:lo].sum()
    expected[-1] += pmf[hi + 1 :].sum()
    assert stats.chisquare(observed, expected).pvalue > 0.001
    # each example's inclusion count over the steps is Binomial(steps, q): inclusion is per record
    counts = np.bincount(np.concatenate(batches), minlength=n)
    assert abs(counts.mean() - steps * q) < 1.0
    # distinct indices in a batch, reproducible from the seed
    assert all(len(set(b.tolist())) == len(b) for b in batches)
    again = poisson_batches(n, q, steps, seeded_uniform(11))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


def test_os_uniform_is_in_unit_interval_and_fresh() -> None:
    a, b = os_uniform(1000), os_uniform(1000)
    assert a.shape == (1000,) and a.min() >= 0.0 and a.max() < 1.0
    assert not np.array_equal(a, b)
    assert 0.4 < a.mean() < 0.6


def test_training_uses_poisson_by_default_with_the_accounted_steps() -> None:
    x, y = _data(n=64)
    w0 = initial_weights("logreg", 6, 2, 0)
    cfg = DpSgdConfig(8, 3, 0.1, noise_multiplier=1.0, l2_norm_clip=1.0)
    assert cfg.sampling == SAMPLING_POISSON
    result = train_dp_sgd("logreg", w0, x, y, 2, cfg, sampling_seed=5, noise_seed=0)
    assert result.sampling == SAMPLING_POISSON
    assert result.steps == 3 * (64 // 8) == len(result.batch_sizes)
    expected = [len(b) for b in poisson_batches(64, 8 / 64, result.steps, seeded_uniform(5))]
    assert list(result.batch_sizes) == expected
    assert len(set(result.batch_sizes)) > 1  # variable batch size
    # production: no sampling seed -> OS entropy draws, still the accounted number of steps
    prod = train_dp_sgd("logreg", w0, x, y, 2, cfg, sampling_seed=None, noise_seed=None)
    assert prod.steps == result.steps


def test_empty_poisson_batches_still_take_a_noisy_step() -> None:
    # q = 1/64 over 2 steps: with seed 3 at least one batch is empty; the weights still move
    x, y = _data(n=64)
    w0 = initial_weights("logreg", 6, 2, 0)
    cfg = DpSgdConfig(1, 1, 0.1, noise_multiplier=1.0, l2_norm_clip=1.0)
    seed = next(
        s
        for s in range(100)
        if 0 in [len(b) for b in poisson_batches(64, 1 / 64, 64, seeded_uniform(s))]
    )
    result = train_dp_sgd("logreg", w0, x, y, 2, cfg, sampling_seed=seed, noise_seed=0)
    assert 0 in result.batch_sizes
    assert np.isfinite(result.final_loss)


def test_shuffle_is_an_explicit_option_marked_not_proven() -> None:
    x, y = _data(n=64)
    w0 = initial_weights("logreg", 6, 2, 0)
    cfg = DpSgdConfig(8, 2, 0.1, 1.0, 1.0, sampling=SAMPLING_SHUFFLE)
    result = train_dp_sgd("logreg", w0, x, y, 2, cfg, sampling_seed=1, noise_seed=0)
    assert result.sampling == SAMPLING_SHUFFLE and set(result.batch_sizes) == {8}
    assert sampling_guarantee(SAMPLING_SHUFFLE, True) == SAMPLING_NOT_PROVEN
    assert sampling_guarantee(SAMPLING_POISSON, True) == SAMPLING_PROVEN
    assert "not proven" in SAMPLING_NOT_PROVEN
    with pytest.raises(TrainingError, match="need a seed"):
        train_dp_sgd("logreg", w0, x, y, 2, cfg, sampling_seed=None, noise_seed=0)
    with pytest.raises(TrainingError, match="dp_sampling 'uniform'"):
        DpSgdConfig(8, 2, 0.1, 1.0, 1.0, sampling="uniform").check(64)


def test_seeded_dp_training_keeps_its_exact_weights() -> None:
    # Digest of the weights this exact training gave before the DP step was traced without
    # autograph (main at 3d11af8): changes to how the step is built must not move them.
    import hashlib

    rng = np.random.default_rng(0)
    x = rng.normal(size=(122, 30)).astype(np.float32)
    y = rng.integers(0, 2, 122)
    cfg = DpSgdConfig(8, 2, 0.05, noise_multiplier=1.5, l2_norm_clip=1.0)
    result = train_dp_sgd(
        "logreg", initial_weights("logreg", 30, 2, 0), x, y, 2, cfg, sampling_seed=1, noise_seed=2
    )
    digest = hashlib.sha256()
    for name in sorted(result.tensors):
        digest.update(result.tensors[name].tobytes())
    assert digest.hexdigest() == "cfac4e426fc6b8adfca42b423118ac00cb080a12f14b0b28d9064fcc6f26d0c5"
    assert result.final_loss == 1.0389268491493822
