"""numpy forward pass of the registry models: hand-computed and against the Keras models."""

from __future__ import annotations

import math

import numpy as np
import pytest

from components.evaluate.forward import EXPECTED_TENSORS, ForwardError, predict_proba


def test_logreg_hand_computed():
    tensors = {"dense/kernel": np.array([[0.5, -0.5], [0.0, 0.0]]), "dense/bias": np.zeros(2)}
    p = predict_proba("logreg", tensors, np.array([[1.0, 0.0]]), 2)
    assert p[0, 0] == pytest.approx(1 / (1 + math.exp(-1.0)))  # logits 0.5, -0.5
    assert p.sum() == pytest.approx(1.0)


def test_mlp_hand_computed():
    tensors = {
        "hidden/kernel": np.array([[1.0, -1.0]]),
        "hidden/bias": np.zeros(2),
        "output/kernel": np.eye(2),
        "output/bias": np.zeros(2),
    }
    # hidden = relu([2, -2]) = [2, 0]; logits [2, 0]
    p = predict_proba("mlp", tensors, np.array([[2.0]]), 2)
    assert p[0, 0] == pytest.approx(1 / (1 + math.exp(-2.0)))


def test_cnn_single_pixel_hand_computed():
    kernel = np.zeros((3, 3, 1, 1))
    kernel[1, 1, 0, 0] = 1.0  # identity filter
    tensors = {
        "conv/kernel": kernel,
        "conv/bias": np.zeros(1),
        "output/kernel": np.zeros((16, 2)),
        "output/bias": np.zeros(2),
    }
    tensors["output/kernel"][5, 1] = 1.0  # pooled cell (1, 1) -> class 1
    x = np.zeros((1, 64))
    x[0, 2 * 8 + 3] = 3.0  # pixel (2, 3) lies in pool cell (1, 1)
    p = predict_proba("cnn", tensors, x, 2)
    assert p[0, 1] == pytest.approx(1 / (1 + math.exp(-3.0)))


def test_refuses_wrong_tensors():
    good = {"dense/kernel": np.zeros((3, 2)), "dense/bias": np.zeros(2)}
    x = np.zeros((1, 3))
    with pytest.raises(ForwardError, match="do not match"):
        predict_proba("logreg", {"dense/kernel": np.zeros((3, 2))}, x, 2)
    with pytest.raises(ForwardError, match="NaN or infinite"):
        predict_proba("logreg", {**good, "dense/bias": np.array([np.nan, 0.0])}, x, 2)
    with pytest.raises(ForwardError, match="outputs 2 classes, the dataset has 10"):
        predict_proba("logreg", good, x, 10)
    with pytest.raises(ForwardError, match="do not fit input"):
        predict_proba("logreg", good, np.zeros((1, 4)), 2)
    with pytest.raises(ForwardError, match="unknown model 'resnet'"):
        predict_proba("resnet", good, x, 2)


@pytest.mark.parametrize(
    ("model_name", "num_features", "num_classes"),
    [("logreg", 30, 2), ("mlp", 30, 2), ("mlp", 64, 10), ("cnn", 64, 10)],
)
def test_matches_keras_registry(model_name, num_features, num_classes):
    from components.train.models import build_model, get_weights, set_weights

    rng = np.random.default_rng(1)
    model = build_model(model_name, num_features, num_classes, seed=2)
    tensors = {
        k: (v + rng.normal(0, 0.1, v.shape)).astype(np.float32)
        for k, v in get_weights(model).items()
    }
    set_weights(model, tensors)
    assert set(tensors) == set(EXPECTED_TENSORS[model_name])
    x = rng.normal(size=(16, num_features)).astype(np.float32)
    keras = model(x).numpy()
    ours = predict_proba(model_name, tensors, x, num_classes)
    np.testing.assert_allclose(ours, keras, atol=1e-5)
