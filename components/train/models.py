"""Keras model registry: `logreg`, `mlp`, `cnn`, with stable tensor names and seeded init.

Every model maps float32 features [batch, num_features] to class *probabilities*
[batch, num_classes] (softmax last layer; binary tasks use 2-class softmax, so one code path
serves every classification dataset). With `num_classes` 1 (a regression contract's
`num_outputs`) the last layer is linear: one predicted value per example, in the contract's
scaled target unit. Weights travel as named float32 tensors: `<layer>/<variable>`, e.g.
`dense/kernel`, `dense/bias` (`get_weights` / `set_weights`).

Initialization is seeded per layer (`GlorotUniform(seed + i)`, zero biases), independent of
TensorFlow's global seed, so `initial_weights(name, f, c, seed)` is the same on every machine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

MLP_HIDDEN_UNITS = 32
CNN_FILTERS = 8


class ModelError(ValueError):
    """Unknown model name, impossible shapes, or tensors that do not fit the model."""


def output_activation(num_classes: int) -> str:
    """softmax for classes, linear for one regression output."""
    return "softmax" if num_classes >= 2 else "linear"


def _glorot(seed: int, i: int):
    import tensorflow as tf

    return tf.keras.initializers.GlorotUniform(seed=seed * 100 + i)


def _logreg(num_features: int, num_classes: int, seed: int):
    """Softmax (multinomial logistic) regression: one dense layer."""
    import tensorflow as tf

    return tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(num_features,)),
            tf.keras.layers.Dense(
                num_classes,
                activation=output_activation(num_classes),
                kernel_initializer=_glorot(seed, 0),
                name="dense",
            ),
        ],
        name="logreg",
    )


def _mlp(num_features: int, num_classes: int, seed: int):
    """One hidden ReLU layer of MLP_HIDDEN_UNITS units, softmax output."""
    import tensorflow as tf

    return tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(num_features,)),
            tf.keras.layers.Dense(
                MLP_HIDDEN_UNITS,
                activation="relu",
                kernel_initializer=_glorot(seed, 0),
                name="hidden",
            ),
            tf.keras.layers.Dense(
                num_classes,
                activation=output_activation(num_classes),
                kernel_initializer=_glorot(seed, 1),
                name="output",
            ),
        ],
        name="mlp",
    )


def _cnn(num_features: int, num_classes: int, seed: int):
    """Small CNN for 8x8 images given as 64 features: conv 3x3 (CNN_FILTERS) + pool + dense."""
    import tensorflow as tf

    side = int(round(num_features**0.5))
    if side * side != num_features:
        raise ModelError(f"cnn needs a square image, got num_features={num_features}")
    return tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(num_features,)),
            tf.keras.layers.Reshape((side, side, 1), name="reshape"),
            tf.keras.layers.Conv2D(
                CNN_FILTERS,
                3,
                padding="same",
                activation="relu",
                kernel_initializer=_glorot(seed, 0),
                name="conv",
            ),
            tf.keras.layers.MaxPooling2D(2, name="pool"),
            tf.keras.layers.Flatten(name="flatten"),
            tf.keras.layers.Dense(
                num_classes,
                activation=output_activation(num_classes),
                kernel_initializer=_glorot(seed, 1),
                name="output",
            ),
        ],
        name="cnn",
    )


REGISTRY: dict[str, Callable] = {"logreg": _logreg, "mlp": _mlp, "cnn": _cnn}

# Layers whose output for one example depends on the other examples of the batch: per-example
# DP-SGD clips each example's gradient, which is meaningless when examples are mixed (Opacus'
# ModuleValidator refuses the same family).
BATCH_MIXING_LAYERS = ("BatchNormalization", "SyncBatchNormalization")


def is_builder(model_name: str) -> bool:
    """`package.module:function` (your own builder) rather than a registry name."""
    return ":" in model_name


def import_builder(reference: str) -> Callable:
    """The function `package.module:function` names; ModelError saying what is missing."""
    import importlib

    module_name, _, function_name = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(
            f"model builder {reference!r}: cannot import {module_name} ({exc}); install your "
            "package into the image (README: extending the image)"
        ) from None
    builder = getattr(module, function_name, None)
    if not callable(builder):
        raise ModelError(f"model builder {reference!r}: {module_name} has no {function_name}()")
    return builder


def _layers(model) -> list:
    """Every layer, nested models included."""
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):
            out.extend(_layers(layer))
    return out


def check_user_model(reference: str, model, num_features: int, num_outputs: int) -> None:
    """ModelError unless the model maps [batch, num_features] to [batch, num_outputs] (both
    shapes named) and has no layer that mixes examples within a batch (named)."""
    mixing = [
        f"{layer.name} ({type(layer).__name__})"
        for layer in _layers(model)
        if type(layer).__name__ in BATCH_MIXING_LAYERS
    ]
    if mixing:
        raise ModelError(
            f"model builder {reference!r}: layer(s) {', '.join(mixing)} mix examples within a "
            "batch, which per-example DP-SGD cannot clip; remove them (LayerNormalization or "
            "GroupNormalization work per example)"
        )
    wanted_in, wanted_out = (None, num_features), (None, num_outputs)
    got_in = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    got_out = tuple(model.output_shape) if not isinstance(model.output_shape, list) else None
    if got_in != wanted_in or got_out != wanted_out:
        raise ModelError(
            f"model builder {reference!r}: the model maps {got_in} to {got_out}; the data "
            f"contract needs {wanted_in} to {wanted_out} (features after encoding, "
            f"{'one regression output' if num_outputs == 1 else f'{num_outputs} classes'})"
        )


def _user_model(reference: str, num_features: int, num_outputs: int, seed: int, kwargs):
    import tensorflow as tf

    builder = import_builder(reference)
    # Keras numbers unnamed layers per session (dense, dense_1, ...): a fresh session gives
    # every build of this builder the same tensor names
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(seed)  # seeded init of layers without explicit seeds
    model = builder(num_features=num_features, num_outputs=num_outputs, seed=seed, **kwargs)
    if not isinstance(model, tf.keras.Model):
        raise ModelError(
            f"model builder {reference!r} returned {type(model).__name__}, not a Model"
        )
    check_user_model(reference, model, num_features, num_outputs)
    return model


def build_model(
    model_name: str,
    num_features: int,
    num_classes: int,
    seed: int = 0,
    kwargs: Mapping[str, object] | None = None,
):
    """A fresh (uncompiled) Keras model of `model_name`, seeded init. `model_name` is a
    registry name or your builder `package.module:function` (called with `kwargs`, checked
    by `check_user_model`)."""
    if is_builder(model_name):
        return _user_model(model_name, num_features, num_classes, seed, dict(kwargs or {}))
    if model_name not in REGISTRY:
        raise ModelError(f"unknown model {model_name!r} (known: {', '.join(sorted(REGISTRY))})")
    if num_features < 1 or num_classes < 1:
        raise ModelError(
            f"{model_name}: need num_features >= 1 and num_classes >= 1 (1 = regression), "
            f"got {num_features}, {num_classes}"
        )
    return REGISTRY[model_name](num_features, num_classes, seed)


def _tensor_name(variable) -> str:
    # Keras names a layer variable `<layer>/<var>:0`.
    return variable.name.split(":")[0]


def get_weights(model) -> dict[str, np.ndarray]:
    """The model's variables as `{"<layer>/<variable>": float32 array}`."""
    return {_tensor_name(v): np.asarray(v.numpy(), dtype=np.float32) for v in model.weights}


def set_weights(model, tensors: Mapping[str, np.ndarray]) -> None:
    """Assign named tensors to `model`; names and shapes must match exactly, values be finite."""
    expected = {_tensor_name(v): v for v in model.weights}
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ModelError(
            f"model {model.name}: tensor names do not match (missing {missing}, unexpected {extra})"
        )
    for name, variable in expected.items():
        value = np.asarray(tensors[name])
        if tuple(value.shape) != tuple(variable.shape):
            raise ModelError(
                f"model {model.name}: tensor {name} has shape {tuple(value.shape)}, "
                f"expected {tuple(variable.shape)}"
            )
        if not np.isfinite(value).all():
            raise ModelError(f"model {model.name}: tensor {name} has NaN or infinite values")
    for name, variable in expected.items():
        variable.assign(np.asarray(tensors[name], dtype=np.float32))


def initial_weights(
    model_name: str,
    num_features: int,
    num_classes: int,
    seed: int,
    kwargs: Mapping[str, object] | None = None,
) -> dict[str, np.ndarray]:
    """The seeded initial tensors of `model_name` (what `initialize` publishes as version 0)."""
    return get_weights(build_model(model_name, num_features, num_classes, seed, kwargs))


def model_from_tensors(
    model_name: str,
    num_features: int,
    num_classes: int,
    tensors: Mapping[str, np.ndarray],
    kwargs: Mapping[str, object] | None = None,
):
    """A model of `model_name` holding `tensors` (shape-checked)."""
    model = build_model(model_name, num_features, num_classes, seed=0, kwargs=kwargs)
    set_weights(model, tensors)
    return model
