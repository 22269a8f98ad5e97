"""Geometric median (smoothed Weiszfeld, RFA) against hand-computed medians."""

from __future__ import annotations

import numpy as np
import pytest

from components.aggregation.geometric_median import weiszfeld_weights
from components.aggregation.krum import gram_matrix
from components.aggregation.rules import AggregationError, aggregate
from components.aggregation.updates import check_updates


def upd(w, b=None) -> dict[str, np.ndarray]:
    out = {"w": np.asarray(w, dtype=np.float32)}
    if b is not None:
        out["b"] = np.asarray(b, dtype=np.float32)
    return out


def test_symmetric_points_give_their_centre_in_one_step():
    # the mean (1, 1) is equidistant from all four corners: Weiszfeld's first step keeps it
    ups = [upd([0, 0]), upd([2, 0]), upd([0, 2]), upd([2, 2])]
    gram = gram_matrix(ups, check_updates(ups))
    w, steps = weiszfeld_weights(gram)
    np.testing.assert_allclose(w, [0.25] * 4)
    assert steps == 1
    np.testing.assert_allclose(aggregate(ups, "geometric_median")["w"], [1, 1])


def test_one_dimension_gives_the_median_not_the_mean():
    # g(v) = |v| + |v − 1| + |v − 10| is least at v = 1 (the mean, 3.67, is not robust)
    out = aggregate([upd([0]), upd([1]), upd([10])], "geometric_median")
    np.testing.assert_allclose(out["w"], [1], atol=1e-4)


@pytest.mark.parametrize("first", [0, 3])  # outlier listed first: the Gram is recentred
def test_a_majority_at_one_point_is_the_median_whatever_the_outliers(first):
    # a point holding ≥ half the updates minimises Σ‖xᵢ − v‖ (its subgradient contains 0)
    far = [upd([1e6, -1e6], [3e5]), upd([-5e5, 7], [-1e6])]
    near = [upd([1, 2], [3])] * 3
    ups = far + near if first == 0 else near + far
    out = aggregate(ups, "geometric_median")
    np.testing.assert_allclose(out["w"], [1, 2], atol=1e-3)
    np.testing.assert_allclose(out["b"], [3], atol=1e-3)


def test_fermat_point_of_a_right_triangle_with_a_120_degree_view():
    # triangle (0,0), (1,0), (0,1): the Fermat point sees every side under 120°;
    # by symmetry it lies on x = y at t with angle condition t = (3 − √3)/6
    t = (3 - np.sqrt(3)) / 6
    out = aggregate([upd([0, 0]), upd([1, 0]), upd([0, 1])], "geometric_median", tol=1e-12)
    np.testing.assert_allclose(out["w"], [t, t], atol=1e-5)


def test_distances_use_every_tensor():
    # in 'w' alone update 2 is central; 'b' makes update 0 the far one
    ups = [upd([0], [100]), upd([1], [0]), upd([2], [0])]
    out = aggregate(ups, "geometric_median", tol=1e-12)
    assert abs(out["b"][0]) < 1.0 and 0.9 < out["w"][0] < 2.0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"nu": 0.0}, "nu must be > 0"),
        ({"tol": -1.0}, "tol must be ≥ 0"),
        ({"max_iter": 0}, "max_iter must be an integer ≥ 1"),
        ({"max_iter": 2.5}, "max_iter must be an integer ≥ 1"),
    ],
)
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(AggregationError, match=message):
        aggregate([upd([1]), upd([2])], "geometric_median", **params)
    with pytest.raises(AggregationError, match="takes no weights"):
        aggregate([upd([1]), upd([2])], "geometric_median", weights=[1, 2])
