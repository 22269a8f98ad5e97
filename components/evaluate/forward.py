"""Forward pass of the model registry (`components/train/models.py`) in numpy, no TensorFlow.

Tensor names follow the registry (`<layer>/<variable>`):

* logreg: softmax(x @ dense/kernel + dense/bias)
* mlp:    softmax(relu(x @ hidden/kernel + hidden/bias) @ output/kernel + output/bias)
* cnn:    x -> [n, s, s, 1] -> conv 3x3 "same" (conv/kernel [3, 3, 1, F], conv/bias) -> relu
          -> max-pool 2x2 stride 2 -> flatten (row-major h, w, c) -> softmax(dense output/*)

Input: scaled float features [n, num_features]; output: probabilities [n, num_classes], or
with one output (regression) the linear prediction [n, 1] instead of a softmax.
`tests/evaluate` checks these against the Keras models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

EXPECTED_TENSORS: dict[str, tuple[str, ...]] = {
    "logreg": ("dense/bias", "dense/kernel"),
    "mlp": ("hidden/bias", "hidden/kernel", "output/bias", "output/kernel"),
    "cnn": ("conv/bias", "conv/kernel", "output/bias", "output/kernel"),
}


class ForwardError(ValueError):
    """Tensors that do not form the named model, or inputs of the wrong shape."""


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def output(logits: np.ndarray) -> np.ndarray:
    """Softmax over classes; one output column (regression) stays linear."""
    return softmax(logits) if logits.shape[1] > 1 else logits


def _dense(x: np.ndarray, t: Mapping[str, np.ndarray], layer: str) -> np.ndarray:
    kernel, bias = t[f"{layer}/kernel"], t[f"{layer}/bias"]
    if kernel.ndim != 2 or x.shape[1] != kernel.shape[0] or bias.shape != (kernel.shape[1],):
        raise ForwardError(
            f"layer {layer}: kernel {kernel.shape} / bias {bias.shape} do not fit input "
            f"{x.shape[1:]}"
        )
    return x @ kernel + bias


def _logreg(x: np.ndarray, t: Mapping[str, np.ndarray]) -> np.ndarray:
    return output(_dense(x, t, "dense"))


def _mlp(x: np.ndarray, t: Mapping[str, np.ndarray]) -> np.ndarray:
    return output(_dense(np.maximum(_dense(x, t, "hidden"), 0.0), t, "output"))


def _cnn(x: np.ndarray, t: Mapping[str, np.ndarray]) -> np.ndarray:
    n, num_features = x.shape
    side = int(round(num_features**0.5))
    kernel, bias = t["conv/kernel"], t["conv/bias"]
    if side * side != num_features or kernel.ndim != 4 or kernel.shape[2] != 1:
        raise ForwardError(f"cnn: input {x.shape} / conv kernel {kernel.shape} do not fit")
    kh, kw, _, filters = kernel.shape
    if bias.shape != (filters,):
        raise ForwardError(f"cnn: conv bias {bias.shape} does not fit kernel {kernel.shape}")
    image = x.reshape(n, side, side)
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    padded = np.pad(image, ((0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw)))
    conv = np.zeros((n, side, side, filters))
    for di in range(kh):
        for dj in range(kw):
            conv += padded[:, di : di + side, dj : dj + side, None] * kernel[di, dj, 0]
    conv = np.maximum(conv + bias, 0.0)
    half = side // 2
    pooled = (
        conv[:, : 2 * half, : 2 * half, :].reshape(n, half, 2, half, 2, filters).max(axis=(2, 4))
    )
    return output(_dense(pooled.reshape(n, -1), t, "output"))


_FORWARD: dict[str, Callable[[np.ndarray, Mapping[str, np.ndarray]], np.ndarray]] = {
    "logreg": _logreg,
    "mlp": _mlp,
    "cnn": _cnn,
}


def predict_proba(
    model_name: str, tensors: Mapping[str, np.ndarray], x: np.ndarray, num_classes: int
) -> np.ndarray:
    """Class probabilities [n, num_classes] of `model_name` with `tensors` on features `x`."""
    if model_name not in _FORWARD:
        raise ForwardError(f"unknown model {model_name!r} (known: {', '.join(sorted(_FORWARD))})")
    expected = set(EXPECTED_TENSORS[model_name])
    if set(tensors) != expected:
        raise ForwardError(
            f"model {model_name}: tensors {sorted(tensors)} do not match {sorted(expected)}"
        )
    t = {name: np.asarray(v, dtype=np.float64) for name, v in tensors.items()}
    for name, value in t.items():
        if not np.isfinite(value).all():
            raise ForwardError(f"model {model_name}: tensor {name} has NaN or infinite values")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ForwardError(f"model {model_name}: features must be [n, num_features], got {x.shape}")
    probs = _FORWARD[model_name](x, t)
    if probs.shape[1] != num_classes:
        raise ForwardError(
            f"model {model_name}: outputs {probs.shape[1]} classes, the dataset has {num_classes}"
        )
    return probs
