"""Local DP-SGD training of a registry model with TensorFlow Privacy (arrays in, tensors out).

Mechanism: `DPKerasSGDOptimizer` (TF Privacy's Gaussian sum query) with one microbatch per
example, so every
example's gradient is clipped to L2 norm `l2_norm_clip`, the clipped gradients are summed,
Gaussian noise N(0, (l2_norm_clip * noise_multiplier)^2) is added to the sum and the result
is divided by the batch size, then a plain SGD step with `learning_rate` is taken.

Sampling (honest statement): each epoch is a fresh random permutation of the site's
examples (numpy Generator seeded by `shuffle_seed`) cut into fixed-size batches of
`batch_size`; the last partial batch is dropped, so steps = epochs * (N // batch_size).
The accountant (`components.privacy.accounting`) assumes Poisson subsampling with
q = batch_size / N. Shuffled fixed-size batches are *not* Poisson subsampling; the reported
epsilon is the customary Poisson figure (as TensorFlow Privacy reports it), not a proof for
shuffling.

Noise source: TensorFlow Privacy's `GaussianSumQuery` draws the noise with
`tf.random_normal_initializer` (its TF2 path; that is `tf.random.normal`), i.e. TensorFlow's Philox counter-based PRNG keyed by the global
seed (`tf.random.set_seed`) and per-op seeds; the model is built and traced afresh after the
seed is set, so every training starts from that seed.
* `noise_seed=int` (test/simulation mode): reproducible noise. Anyone who knows the seed can
  subtract the noise: never use it for real data.
* `noise_seed=None` (production mode, the default): the global seed is 62 bits from the OS
  CSPRNG (`secrets.randbits`), used once and never written anywhere. The noise values still
  come from Philox and floating-point Gaussian sampling, not from a CSPRNG-driven discrete
  Gaussian sampler; known floating-point attacks on DP samplers are not addressed here.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from components.train.models import get_weights, model_from_tensors

NOISE_MODE_SEEDED = "seeded-simulation"
NOISE_MODE_OS_ENTROPY = "os-entropy"


class TrainingError(ValueError):
    """Training parameters or data that cannot be trained on."""


@dataclass(frozen=True)
class DpSgdConfig:
    """batch_size: examples per step; local_epochs: passes over the site's data;
    learning_rate: SGD step size; noise_multiplier: noise stddev / clip norm;
    l2_norm_clip: per-example gradient clip (L2); dp_enabled: False = plain SGD, no clip/noise."""

    batch_size: int
    local_epochs: int
    learning_rate: float
    noise_multiplier: float
    l2_norm_clip: float
    dp_enabled: bool = True

    def check(self, num_examples: int) -> None:
        if self.batch_size < 1 or self.batch_size > num_examples:
            raise TrainingError(
                f"batch_size {self.batch_size} must be in [1, number of examples {num_examples}]"
            )
        if self.local_epochs < 1:
            raise TrainingError(f"local_epochs {self.local_epochs} must be >= 1")
        if not self.learning_rate > 0:
            raise TrainingError(f"learning_rate {self.learning_rate} must be > 0")
        if self.dp_enabled and not self.noise_multiplier > 0:
            raise TrainingError(f"noise_multiplier {self.noise_multiplier} must be > 0 with DP")
        if self.dp_enabled and not self.l2_norm_clip > 0:
            raise TrainingError(f"l2_norm_clip {self.l2_norm_clip} must be > 0 with DP")


@dataclass(frozen=True)
class TrainResult:
    """tensors: trained weights; steps: optimizer steps taken; noise_mode: how noise was seeded."""

    tensors: dict[str, np.ndarray]
    steps: int
    num_examples: int
    noise_mode: str
    final_loss: float


def epoch_batches(num_examples: int, batch_size: int, epochs: int, seed: int) -> np.ndarray:
    """Example indices, epoch after epoch: a fresh permutation each epoch, truncated to whole
    batches. Shape [epochs * (num_examples // batch_size) * batch_size]."""
    rng = np.random.default_rng(seed)
    usable = (num_examples // batch_size) * batch_size
    return np.concatenate([rng.permutation(num_examples)[:usable] for _ in range(epochs)])


def train_dp_sgd(
    model_name: str,
    initial: Mapping[str, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    config: DpSgdConfig,
    *,
    shuffle_seed: int,
    noise_seed: int | None,
) -> TrainResult:
    """Train `model_name` from `initial` on (x float32 [n, f], y int [n]); see module doc."""
    import tensorflow as tf
    from tensorflow_privacy import DPKerasSGDOptimizer

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise TrainingError(f"x must be [n, f] and y [n], got {x.shape} and {y.shape}")
    num_examples = int(x.shape[0])
    config.check(num_examples)

    if noise_seed is None:
        global_seed, noise_mode = secrets.randbits(62), NOISE_MODE_OS_ENTROPY
    else:
        global_seed, noise_mode = int(noise_seed), NOISE_MODE_SEEDED
    tf.random.set_seed(global_seed)
    del global_seed  # never logged, returned or written

    model = model_from_tensors(model_name, x.shape[1], num_classes, initial)
    if config.dp_enabled:
        optimizer = DPKerasSGDOptimizer(
            l2_norm_clip=config.l2_norm_clip,
            noise_multiplier=config.noise_multiplier,
            num_microbatches=None,  # one microbatch per example: per-example clipping
            learning_rate=config.learning_rate,
        )
        # Per-example losses: the DP optimizer clips each example's gradient.
        loss = tf.keras.losses.SparseCategoricalCrossentropy(
            reduction=tf.keras.losses.Reduction.NONE
        )
    else:
        optimizer = tf.keras.optimizers.legacy.SGD(learning_rate=config.learning_rate)
        loss = tf.keras.losses.SparseCategoricalCrossentropy()
    model.compile(optimizer=optimizer, loss=loss)

    order = epoch_batches(num_examples, config.batch_size, config.local_epochs, shuffle_seed)
    history = model.fit(
        x[order], y[order], batch_size=config.batch_size, epochs=1, shuffle=False, verbose=0
    )
    steps = len(order) // config.batch_size
    tensors = get_weights(model)
    for name, value in tensors.items():
        if not np.isfinite(value).all():
            raise TrainingError(
                f"training diverged: tensor {name} is not finite (lower learning_rate?)"
            )
    return TrainResult(
        tensors=tensors,
        steps=steps,
        num_examples=num_examples,
        noise_mode=noise_mode,
        final_loss=float(history.history["loss"][-1]),
    )
