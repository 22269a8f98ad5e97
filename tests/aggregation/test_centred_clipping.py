"""Centred clipping (Karimireddy et al. 2021) against hand-computed steps."""

from __future__ import annotations

import numpy as np
import pytest

from components.aggregation.rules import AggregationError, aggregate

# 1-D updates 0, 1, 2, 100: sums of distances 103, 101, 101, 297, so the medoid is 1 (the
# lower index of the tie between 1 and 2)
UPS = [{"w": np.array([x], np.float32)} for x in (0, 1, 2, 100)]


def test_one_step_with_tau():
    # from v = 1: differences −1, 0, 1, 99 clipped to τ = 2: −1, 0, 1, 2 → v = 1 + 2/4
    assert aggregate(UPS, "centred_clipping", tau=2.0, iters=1)["w"][0] == 1.5


def test_two_steps_with_tau():
    # from 1.5: −1.5, −0.5, 0.5, 98.5 → −1.5, −0.5, 0.5, 2 → v = 1.5 + 0.5/4
    assert aggregate(UPS, "centred_clipping", tau=2.0, iters=2)["w"][0] == 1.625


def test_default_tau_is_the_median_distance_to_the_medoid():
    # distances to 1: 1, 0, 1, 99 → τ = 1; clipped −1, 0, 1, 1 → v = 1 + 1/4
    assert aggregate(UPS, "centred_clipping", iters=1)["w"][0] == 1.25


def test_a_huge_tau_is_the_mean_after_one_step():
    out = aggregate(UPS, "centred_clipping", tau=1e9, iters=1)
    assert out["w"][0] == pytest.approx(103 / 4)


def test_clipping_uses_the_norm_over_all_tensors():
    # medoid (0, 0) (sums of distances 10, 10, 20); update 2 is 10 away over both tensors
    # (6 in 'w' alone), so τ = 5 halves it: v = (6, 8)/2/3 = (1, 4/3)
    zero = {"w": np.array([0.0], np.float32), "b": np.array([0.0], np.float32)}
    ups = [zero, zero, {"w": np.array([6.0], np.float32), "b": np.array([8.0], np.float32)}]
    out = aggregate(ups, "centred_clipping", tau=5.0, iters=1)
    np.testing.assert_allclose([out["w"][0], out["b"][0]], [1, 4 / 3], rtol=1e-6)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tau": 0.0}, "tau must be > 0"),
        ({"tau": float("inf")}, "tau must be > 0"),
        ({"iters": 0}, "iters must be an integer ≥ 1"),
        ({"iters": 1.5}, "iters must be an integer ≥ 1"),
    ],
)
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(AggregationError, match=message):
        aggregate(UPS, "centred_clipping", **params)
