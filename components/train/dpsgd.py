"""Local DP-SGD training of a registry model (arrays in, tensors out).

Mechanism (DP on): for each step, per-example gradients of the cross-entropy loss (one
`GradientTape.jacobian` per batch), each clipped to L2 norm `l2_norm_clip` over all tensors
together, summed; Gaussian noise N(0, (l2_norm_clip * noise_multiplier)^2) is added to the sum
and the result is divided by the *expected* batch size `batch_size` (not by the number of
examples drawn, which would make the step size depend on private data), then a plain SGD step
with `learning_rate` is taken. This is TensorFlow Privacy's Gaussian sum query with one
microbatch per example, normalised as Opacus does for Poisson batches.

Sampling (`DpSgdConfig.sampling`):
* `poisson` (default): every step, each of the site's N examples joins the batch
  independently with probability q = batch_size / N (variable batch size, possibly empty);
  steps = epochs * (N // batch_size). This is the sampling the accountant
  (`components.privacy.accounting`, `PoissonSampled(q, Gaussian(sigma))`) proves its epsilon
  for. Amplification by subsampling needs the sample to be secret: without a sampling seed
  (production) the inclusion draws come from the OS CSPRNG (`os.urandom`); a seed (tests,
  simulation) makes them reproducible.
* `shuffle` (explicit option only): a fresh seeded permutation per epoch cut into fixed-size
  batches, remainder dropped, same steps. The accountant's Poisson epsilon is *not proven* for
  shuffling (shuffled batches can leak far more than the Poisson figure), and the ledger and
  `meta.json` say so (`SAMPLING_NOT_PROVEN`).
* DP off: plain Keras SGD on shuffled fixed-size batches (there is no epsilon to prove; this
  keeps parity with the TFF reference, `fedpipe simulate`).

Noise source: `tf.random.normal` without an op seed, i.e. TensorFlow's Philox counter-based
PRNG keyed by the global seed (`tf.random.set_seed`); the model is built and traced afresh
after the seed is set, so every training starts from that seed. The step is traced without
autograph (it has no Python control flow to convert; converting it and Keras' calls cost
about 0.15 s of CPU per task, a fifth of a breast-cancer training) and yields the same graph,
so the same seeds give bit-identical weights as before.
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

from components.privacy.accounting import (  # noqa: F401 (re-exported for callers)
    SAMPLING_NON_PRIVATE,
    SAMPLING_NOT_PROVEN,
    SAMPLING_POISSON,
    SAMPLING_PROVEN,
    SAMPLING_SHUFFLE,
    SAMPLINGS,
    sampling_guarantee,
)
from components.privacy.uniform import Uniform, os_uniform, seeded_uniform
from components.train.models import get_weights, model_from_tensors

NOISE_MODE_SEEDED = "seeded-simulation"
NOISE_MODE_OS_ENTROPY = "os-entropy"


class TrainingError(ValueError):
    """Training parameters or data that cannot be trained on."""


@dataclass(frozen=True)
class DpSgdConfig:
    """batch_size: examples per step (the expected size with Poisson sampling);
    local_epochs: passes over the site's data; learning_rate: SGD step size;
    noise_multiplier: noise stddev / clip norm; l2_norm_clip: per-example gradient clip (L2);
    dp_enabled: False = plain SGD, no clip/noise; sampling: `poisson` (default) or `shuffle`."""

    batch_size: int
    local_epochs: int
    learning_rate: float
    noise_multiplier: float
    l2_norm_clip: float
    dp_enabled: bool = True
    sampling: str = SAMPLING_POISSON

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
        if self.sampling not in SAMPLINGS:
            raise TrainingError(
                f"dp_sampling {self.sampling!r} must be one of {', '.join(SAMPLINGS)}"
            )

    @property
    def effective_sampling(self) -> str:
        """The sampling training really uses (DP off always shuffles)."""
        return self.sampling if self.dp_enabled else SAMPLING_SHUFFLE


@dataclass(frozen=True)
class TrainResult:
    """tensors: trained weights; steps: optimizer steps taken; noise_mode: how noise was seeded;
    batch_sizes: examples drawn per step; sampling: the sampling used."""

    tensors: dict[str, np.ndarray]
    steps: int
    num_examples: int
    noise_mode: str
    final_loss: float
    batch_sizes: tuple[int, ...] = ()
    sampling: str = SAMPLING_POISSON


def planned_steps(num_examples: int, batch_size: int, epochs: int) -> int:
    """Steps of one training: epochs * (N // batch_size), for either sampling."""
    return epochs * (num_examples // batch_size)


def epoch_batches(num_examples: int, batch_size: int, epochs: int, seed: int) -> np.ndarray:
    """Example indices, epoch after epoch: a fresh permutation each epoch, truncated to whole
    batches. Shape [epochs * (num_examples // batch_size) * batch_size]."""
    rng = np.random.default_rng(seed)
    usable = (num_examples // batch_size) * batch_size
    return np.concatenate([rng.permutation(num_examples)[:usable] for _ in range(epochs)])


def poisson_batches(
    num_examples: int, sampling_rate: float, steps: int, uniform: Uniform
) -> list[np.ndarray]:
    """`steps` Poisson batches: each example is in each batch independently with probability
    `sampling_rate` (uniform(N) < q). Batch sizes are Binomial(N, q); a batch may be empty."""
    if not 0.0 < sampling_rate <= 1.0:
        raise TrainingError(f"sampling rate {sampling_rate} must be in (0, 1]")
    return [np.flatnonzero(uniform(num_examples) < sampling_rate) for _ in range(steps)]


def shuffled_batches(
    num_examples: int, batch_size: int, epochs: int, seed: int
) -> list[np.ndarray]:
    """`epoch_batches` cut into its fixed-size batches."""
    order = epoch_batches(num_examples, batch_size, epochs, seed)
    return list(order.reshape(-1, batch_size))


def train_dp_sgd(
    model_name: str,
    initial: Mapping[str, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    config: DpSgdConfig,
    *,
    sampling_seed: int | None,
    noise_seed: int | None,
    model_kwargs: Mapping[str, object] | None = None,
) -> TrainResult:
    """Train `model_name` from `initial` on (x float32 [n, f], y int [n]); see module doc.

    `sampling_seed`: seeds the batches (None: Poisson draws from the OS CSPRNG; shuffling and
    DP off need a seed). `num_classes` 1 is regression: y float [n] (the contract's scaled
    target) and the per-example loss is the squared error."""
    import tensorflow as tf

    regression = num_classes == 1
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32 if regression else np.int64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise TrainingError(f"x must be [n, f] and y [n], got {x.shape} and {y.shape}")
    num_examples = int(x.shape[0])
    config.check(num_examples)
    sampling = config.effective_sampling
    if sampling == SAMPLING_SHUFFLE and sampling_seed is None:
        raise TrainingError("shuffled batches (dp_sampling shuffle or DP off) need a seed")

    if noise_seed is None:
        global_seed, noise_mode = secrets.randbits(62), NOISE_MODE_OS_ENTROPY
    else:
        global_seed, noise_mode = int(noise_seed), NOISE_MODE_SEEDED
    tf.random.set_seed(global_seed)
    del global_seed  # never logged, returned or written

    steps = planned_steps(num_examples, config.batch_size, config.local_epochs)
    if sampling == SAMPLING_POISSON:
        uniform = os_uniform if sampling_seed is None else seeded_uniform(sampling_seed)
        batches = poisson_batches(num_examples, config.batch_size / num_examples, steps, uniform)
    else:
        batches = shuffled_batches(
            num_examples, config.batch_size, config.local_epochs, int(sampling_seed)
        )
    model = model_from_tensors(model_name, x.shape[1], num_classes, initial, model_kwargs)
    if config.dp_enabled:
        final_loss = _dp_steps(model, x, y, batches, config, regression)
    else:
        final_loss = _plain_fit(model, x, y, batches, config, regression)
    tensors = get_weights(model)
    for name, value in tensors.items():
        if not np.isfinite(value).all():
            raise TrainingError(
                f"training diverged: tensor {name} is not finite (lower learning_rate?)"
            )
    return TrainResult(
        tensors=tensors,
        steps=len(batches),
        num_examples=num_examples,
        noise_mode=noise_mode,
        final_loss=final_loss,
        batch_sizes=tuple(len(b) for b in batches),
        sampling=sampling,
    )


def _plain_fit(
    model, x, y, batches: list[np.ndarray], config: DpSgdConfig, regression: bool = False
) -> float:
    """DP off: Keras SGD on the mean loss of each fixed-size batch (MSE for regression)."""
    import tensorflow as tf

    model.compile(
        optimizer=tf.keras.optimizers.legacy.SGD(learning_rate=config.learning_rate),
        loss=(
            tf.keras.losses.MeanSquaredError()
            if regression
            else tf.keras.losses.SparseCategoricalCrossentropy()
        ),
    )
    order = np.concatenate(batches)
    targets = y[order][:, None] if regression else y[order]
    history = model.fit(
        x[order], targets, batch_size=config.batch_size, epochs=1, shuffle=False, verbose=0
    )
    return float(history.history["loss"][-1])


def _dp_steps(
    model, x, y, batches: list[np.ndarray], config: DpSgdConfig, regression: bool = False
) -> float:
    """DP-SGD steps (module doc); returns the mean per-example loss over all drawn examples
    (cross-entropy, or the squared error for regression)."""
    import tensorflow as tf

    variables = model.trainable_variables
    if regression:

        def losses_of(yb, predicted):
            return tf.square(predicted[:, 0] - yb)

    else:
        losses_of = tf.keras.losses.SparseCategoricalCrossentropy(
            reduction=tf.keras.losses.Reduction.NONE
        )
    clip = float(config.l2_norm_clip)
    stddev = clip * float(config.noise_multiplier)
    scale = float(config.learning_rate) / float(config.batch_size)

    def apply(summed: list) -> None:
        for var, g in zip(variables, summed, strict=True):
            noisy = g + tf.random.normal(tf.shape(var), stddev=stddev, dtype=var.dtype)
            var.assign_sub(scale * noisy)

    @tf.function(
        autograph=False,
        input_signature=[
            tf.TensorSpec([None, x.shape[1]], tf.float32),
            tf.TensorSpec([None], tf.float32 if regression else tf.int64),
        ],
    )
    def step(xb, yb):
        with tf.GradientTape() as tape:
            losses = losses_of(yb, model(xb, training=True))
        jacobian = tape.jacobian(losses, variables, experimental_use_pfor=True)
        flat = [tf.reshape(j, [tf.shape(losses)[0], -1]) for j in jacobian]
        norms = tf.sqrt(tf.add_n([tf.reduce_sum(f * f, axis=1) for f in flat]))
        factors = clip / tf.maximum(norms, clip)  # per-example clip to L2 norm <= clip
        summed = [tf.tensordot(factors, j, axes=[[0], [0]]) for j in jacobian]
        apply(summed)
        return tf.reduce_sum(losses)

    @tf.function(autograph=False)
    def empty_step():
        apply([tf.zeros_like(v) for v in variables])

    total_loss, drawn = 0.0, 0
    for idx in batches:
        if len(idx) == 0:
            empty_step()
            continue
        total_loss += float(step(x[idx], y[idx]))
        drawn += len(idx)
    if drawn == 0:  # every batch empty (only for tiny q * steps): the loss on all examples
        return float(tf.reduce_mean(losses_of(y, model(x, training=False))))
    return total_loss / drawn
