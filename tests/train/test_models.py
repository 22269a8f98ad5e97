"""Model registry: stable names, seeded init, shape-checked weight assignment."""

from __future__ import annotations

import numpy as np
import pytest

from components.train.models import (
    ModelError,
    build_model,
    get_weights,
    initial_weights,
    model_from_tensors,
    set_weights,
)


@pytest.mark.parametrize(
    ("name", "features", "classes", "shapes"),
    [
        ("logreg", 30, 2, {"dense/kernel": (30, 2), "dense/bias": (2,)}),
        (
            "mlp",
            30,
            2,
            {
                "hidden/kernel": (30, 32),
                "hidden/bias": (32,),
                "output/kernel": (32, 2),
                "output/bias": (2,),
            },
        ),
        (
            "cnn",
            64,
            10,
            {
                "conv/kernel": (3, 3, 1, 8),
                "conv/bias": (8,),
                "output/kernel": (128, 10),
                "output/bias": (10,),
            },
        ),
    ],
)
def test_names_shapes_and_seeded_init(name, features, classes, shapes) -> None:
    w = initial_weights(name, features, classes, seed=4)
    assert {k: v.shape for k, v in w.items()} == shapes
    assert all(v.dtype == np.float32 for v in w.values())
    again = initial_weights(name, features, classes, seed=4)
    other = initial_weights(name, features, classes, seed=5)
    assert all(np.array_equal(w[k], again[k]) for k in w)
    assert any(not np.array_equal(w[k], other[k]) for k in w if k.endswith("kernel"))


def test_set_get_round_trip_and_probabilities() -> None:
    rng = np.random.default_rng(0)
    tensors = {
        "dense/kernel": rng.normal(size=(4, 3)).astype(np.float32),
        "dense/bias": np.ones(3, np.float32),
    }
    model = model_from_tensors("logreg", 4, 3, tensors)
    back = get_weights(model)
    assert all(np.array_equal(back[k], tensors[k]) for k in tensors)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    probs = model(x).numpy()
    logits = x @ tensors["dense/kernel"] + tensors["dense/bias"]
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-5)


def test_set_weights_refuses_wrong_names_shapes_and_nan() -> None:
    model = build_model("logreg", 4, 2)
    good = get_weights(model)
    with pytest.raises(ModelError, match="missing"):
        set_weights(model, {"dense/kernel": good["dense/kernel"]})
    with pytest.raises(ModelError, match="shape"):
        set_weights(model, {**good, "dense/kernel": np.zeros((5, 2), np.float32)})
    bad = {**good, "dense/bias": np.array([np.nan, 0.0], np.float32)}
    with pytest.raises(ModelError, match="NaN"):
        set_weights(model, bad)
    assert np.array_equal(get_weights(model)["dense/kernel"], good["dense/kernel"])  # untouched


def test_unknown_model_and_bad_shapes() -> None:
    with pytest.raises(ModelError, match="known: cnn, logreg, mlp"):
        build_model("resnet", 4, 2)
    with pytest.raises(ModelError, match="square"):
        build_model("cnn", 30, 2)
    with pytest.raises(ModelError, match=r"num_classes >= 1 \(1 = regression\)"):
        build_model("logreg", 4, 0)
