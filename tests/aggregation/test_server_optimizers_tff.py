"""Our server optimizers step for step against TensorFlow Federated's `tff.learning.optimizers`.

TFF optimizers minimise with a gradient; a server step along the aggregated change Δ is a
step on the pseudo-gradient −Δ. The TFF worker process is reaped by tests/conftest.py.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from components.aggregation.server_optimizers import FedAdam, FedAvgM, FedAvgStep, FedYogi

DELTAS = [
    {"w": np.array([[0.5, -1.0], [2.0, 0.0]], np.float32), "b": np.array([0.1], np.float32)},
    {"w": np.array([[0.25, 1.5], [-2.0, 0.0]], np.float32), "b": np.array([-0.3], np.float32)},
    {"w": np.array([[0.5, 0.5], [1.0, 3.0]], np.float32), "b": np.array([0.0], np.float32)},
]
START = {"w": np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), "b": np.array([0.5], np.float32)}


def run_tff(opt) -> list[dict[str, np.ndarray]]:
    weights = collections.OrderedDict((n, tf.constant(v)) for n, v in START.items())
    specs = collections.OrderedDict(
        (n, tf.TensorSpec(v.shape, tf.float32)) for n, v in START.items()
    )
    state = opt.initialize(specs)
    out = []
    for delta in DELTAS:
        grads = collections.OrderedDict((n, tf.constant(-delta[n])) for n in START)
        state, weights = opt.next(state, weights, grads)
        out.append({n: np.asarray(weights[n]) for n in START})
    return out


def run_ours(opt) -> list[dict[str, np.ndarray]]:
    params, state, out = dict(START), opt.init_state(START), []
    for delta in DELTAS:
        params, state = opt.apply(params, delta, state)
        out.append(params)
    return out


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (FedAvgStep(0.7), lambda: tff.learning.optimizers.build_sgdm(learning_rate=0.7)),
        (
            FedAvgM(0.7, momentum=0.9),
            lambda: tff.learning.optimizers.build_sgdm(learning_rate=0.7, momentum=0.9),
        ),
        (
            FedAdam(0.1, beta_1=0.9, beta_2=0.99, tau=1e-3, bias_correction=True, initial_v=0.0),
            lambda: tff.learning.optimizers.build_adam(0.1, beta_1=0.9, beta_2=0.99, epsilon=1e-3),
        ),
        (
            FedYogi(0.1, beta_1=0.9, beta_2=0.99, tau=1e-3, bias_correction=True, initial_v=1e-6),
            lambda: tff.learning.optimizers.build_yogi(0.1, beta_1=0.9, beta_2=0.99, epsilon=1e-3),
        ),
    ],
    ids=["fedavg-sgd", "fedavgm-sgdm", "fedadam-adam", "fedyogi-yogi"],
)
def test_three_steps_equal_tff(ours, theirs):
    expected = run_tff(theirs())
    got = run_ours(ours)
    for step, (e, g) in enumerate(zip(expected, got, strict=True), start=1):
        for n in START:
            np.testing.assert_allclose(g[n], e[n], rtol=1e-6, atol=1e-7, err_msg=f"step {step} {n}")
