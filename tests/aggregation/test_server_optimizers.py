"""Server optimizers: hand-computed steps, state round trip, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from components.aggregation.server_optimizers import (
    FedAdam,
    FedAvgM,
    FedAvgStep,
    FedYogi,
    OptimizerStateError,
    build_server_optimizer,
)
from components.common.tensors import dump_tensors, load_tensors


def f32(*x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def test_fedavg_step_moves_along_delta():
    opt = FedAvgStep(learning_rate=0.5)
    params, state = opt.apply({"w": f32(1, 2)}, {"w": f32(2, -2)}, opt.init_state({"w": f32(0, 0)}))
    np.testing.assert_array_equal(params["w"], f32(2, 1))
    assert state == {}


def test_fedavgm_accumulates_momentum_over_rounds():
    opt = FedAvgM(learning_rate=1.0, momentum=0.5)
    x = {"w": f32(1, 2)}
    state = opt.init_state(x)
    x, state = opt.apply(x, {"w": f32(2, -2)}, state)  # v = [2, -2]
    np.testing.assert_array_equal(x["w"], f32(3, 0))
    x, state = opt.apply(x, {"w": f32(1, 1)}, state)  # v = 0.5·[2, -2] + [1, 1] = [2, 0]
    np.testing.assert_array_equal(state["momentum/w"], f32(2, 0))
    np.testing.assert_array_equal(x["w"], f32(5, 0))


def test_fedadam_first_step_by_hand():
    # τ=1 so v₀=1; β₁=β₂=0.5. Δ=7: m = 3.5, v = 1 + (49-1)·0.5 = 25, step = 0.6·3.5/(5+1) = 0.35.
    # Δ=0 (an all-zero update): m = 0, the weight does not move.
    opt = FedAdam(learning_rate=0.6, beta_1=0.5, beta_2=0.5, tau=1.0)
    x, state = opt.apply(
        {"w": f32(0, 0, 1)}, {"w": f32(7, -7, 0)}, opt.init_state({"w": f32(0, 0, 0)})
    )
    np.testing.assert_allclose(x["w"], f32(0.35, -0.35, 1), rtol=1e-6)
    np.testing.assert_array_equal(state["m/w"], f32(3.5, -3.5, 0))
    np.testing.assert_array_equal(state["v/w"], f32(25, 25, 0.5))
    assert float(state["step"]) == 1.0


def test_fedyogi_two_steps_by_hand():
    # v₀=1, Δ=4: v = 1 + 0.5·sign(16-1)·16 = 9, m = 2, step = 0.6·2/(3+1) = 0.3.
    # Next Δ=0: m = 1, v stays 9 (Yogi's additive update with Δ²=0), step = 0.6·1/4 = 0.15.
    opt = FedYogi(learning_rate=0.6, beta_1=0.5, beta_2=0.5, tau=1.0)
    x = {"w": f32(0, 0)}
    x, state = opt.apply(x, {"w": f32(4, -4)}, opt.init_state(x))
    np.testing.assert_allclose(x["w"], f32(0.3, -0.3), rtol=1e-6)
    np.testing.assert_array_equal(state["v/w"], f32(9, 9))
    x, state = opt.apply(x, {"w": f32(0, 0)}, state)
    np.testing.assert_allclose(x["w"], f32(0.45, -0.45), rtol=1e-6)
    np.testing.assert_array_equal(state["v/w"], f32(9, 9))
    assert float(state["step"]) == 2.0


def test_fedyogi_second_moment_shrinks_additively_toward_small_updates():
    # v = 1 + 0.5·sign(0.25 - 1)·0.25 = 0.875 (Adam would give 0.625)
    opt = FedYogi(learning_rate=1.0, beta_1=0.5, beta_2=0.5, tau=1.0)
    _, state = opt.apply({"w": f32(0)}, {"w": f32(0.5)}, opt.init_state({"w": f32(0)}))
    np.testing.assert_array_equal(state["v/w"], f32(0.875))


@pytest.mark.parametrize("name", ["fedavgm", "fedadam", "fedyogi"])
def test_state_survives_the_npz_round_trip_and_inputs_are_not_mutated(name):
    opt = build_server_optimizer(name, 0.1)
    params = {"dense/kernel": np.ones((2, 3), np.float32), "dense/bias": f32(0, 1, 2)}
    delta = {"dense/kernel": np.full((2, 3), 0.5, np.float32), "dense/bias": f32(1, 1, 1)}
    kept = {n: v.copy() for n, v in params.items()}
    x1, s1 = opt.apply(params, delta, opt.init_state(params))
    s1 = load_tensors(dump_tensors(s1))  # how the coordinator persists it between rounds
    x2, _ = opt.apply(x1, delta, s1)
    for n in params:
        np.testing.assert_array_equal(params[n], kept[n])
        assert x2[n].dtype == np.float32
        assert np.all(x2[n] > x1[n]) and np.all(x1[n] > params[n])


def test_refusals_name_the_problem():
    opt = build_server_optimizer("fedadam", 0.01, beta_1=0.8, tau=1e-2)
    assert opt == FedAdam(learning_rate=0.01, beta_1=0.8, tau=1e-2)
    state = opt.init_state({"a": f32(0)})
    with pytest.raises(OptimizerStateError, match="state lacks 'm/b'"):
        opt.apply({"b": f32(0)}, {"b": f32(1)}, state)
    with pytest.raises(OptimizerStateError, match=r"delta 'a' has shape \(2,\)"):
        opt.apply({"a": f32(0)}, {"a": f32(1, 2)}, state)
    with pytest.raises(OptimizerStateError, match="unknown server optimizer 'sgd'"):
        build_server_optimizer("sgd", 1.0)
    with pytest.raises(OptimizerStateError, match=r"fedavgm: unknown parameter\(s\) \['beta_1'\]"):
        build_server_optimizer("fedavgm", 1.0, beta_1=0.9)
    with pytest.raises(OptimizerStateError, match=r"beta_2 must be in \[0, 1\)"):
        build_server_optimizer("fedyogi", 1.0, beta_2=1.0)
