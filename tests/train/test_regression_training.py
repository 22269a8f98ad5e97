"""Regression trains with the squared error, with and without DP (seeded, small)."""

from __future__ import annotations

import numpy as np
import pytest

from components.train.dpsgd import DpSgdConfig, train_dp_sgd
from components.train.models import build_model, initial_weights


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3).astype(np.float32)
    return x, y


def test_a_regression_model_has_one_linear_output():
    model = build_model("mlp", 3, 1, seed=0)
    assert model.output_shape == (None, 1)
    assert model.layers[-1].get_config()["activation"] == "linear"


@pytest.mark.parametrize("dp", [False, True])
def test_linear_regression_learns_the_weights(dp):
    x, y = _data()
    w0 = initial_weights("logreg", 3, 1, 0)
    config = DpSgdConfig(8, 30, 0.1, 0.3 if dp else 0.0, 5.0 if dp else 0.0, dp_enabled=dp)
    result = train_dp_sgd("logreg", w0, x, y, 1, config, sampling_seed=1, noise_seed=2)
    kernel = result.tensors["dense/kernel"].reshape(-1)
    np.testing.assert_allclose(kernel, [1.0, -2.0, 0.5], atol=0.3 if dp else 0.05)
    assert result.final_loss < 0.5
