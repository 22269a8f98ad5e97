"""Cosine-screened geometric median against hand-computed centres."""

from __future__ import annotations

import numpy as np
import pytest

from components.aggregation.krum import gram_matrix
from components.aggregation.rules import AggregationError, aggregate
from components.aggregation.screened_geometric_median import (
    absolute_gram,
    cosines,
    kept,
    reference_dots,
    screened_weights,
)
from components.aggregation.updates import check_updates


def upd(w, b=None) -> dict[str, np.ndarray]:
    out = {"w": np.asarray(w, dtype=np.float32)}
    if b is not None:
        out["b"] = np.asarray(b, dtype=np.float32)
    return out


def test_absolute_gram_and_cosines_by_hand():
    # x = (1, 0), (0, 2), (3, 4); relative to x₀: d = (0, 0), (−1, 2), (2, 4)
    ups = [upd([1, 0]), upd([0, 2]), upd([3, 4])]
    layout = check_updates(ups)
    dots = reference_dots(ups, layout, 0)
    np.testing.assert_allclose(dots, [1, 0, 3])
    inner = absolute_gram(gram_matrix(ups, layout), dots, 0)
    np.testing.assert_allclose(inner, [[1, 0, 3], [0, 4, 8], [3, 8, 25]])
    # v = x₂ = (3, 4): cos = 3/5, 8/(2·5), 1
    np.testing.assert_allclose(cosines(inner, np.array([0, 0, 1.0])), [0.6, 0.8, 1.0])
    # v = 3x₀ + 2x₁ − x₂ = 0: no direction, all nan
    assert np.isnan(cosines(inner, np.array([3.0, 2.0, -1.0]))).all()
    # a zero update has cosine 0: x = (0, 0), (1, 0), v = x₁
    np.testing.assert_allclose(cosines(np.array([[0, 0], [0, 1.0]]), np.array([0, 1.0])), [0, 1])


def test_kept_drops_non_positive_cosines_but_keeps_a_majority():
    np.testing.assert_array_equal(kept(np.array([0.5, -0.2, 0.1, 0.0, 0.3]), 0.0), [0, 2, 4])
    # only 1 of 5 positive: the 3 (= ⌊5/2⌋ + 1) highest stay, ties to the lower index
    np.testing.assert_array_equal(kept(np.array([0.5, -0.2, -0.1, -0.1, -0.3]), 0.0), [0, 2, 3])
    np.testing.assert_array_equal(kept(np.array([np.nan, np.nan]), 0.0), [0, 1])


def test_sign_flipped_updates_are_dropped_and_the_rest_gives_their_median():
    # 3 honest updates on the x axis (1, 0), (2, 0), (3, 0); 2 attackers send −x of two of
    # them. The geometric median of all five is pulled into [−1, 1] (the 1-D median of
    # −2, −1, 1, 2, 3 is 1) and lies on the axis; every honest cosine to it is +1, the
    # attackers' −1: they are dropped and the median of 1, 2, 3 is 2.
    ups = [upd([-1, 0]), upd([-2, 0]), upd([1, 0]), upd([2, 0]), upd([3, 0])]
    assert aggregate(ups, "geometric_median", tol=1e-12)["w"][0] == pytest.approx(1, abs=1e-4)
    out = aggregate(ups, "screened_geometric_median", tol=1e-12)
    np.testing.assert_allclose(out["w"], [2, 0], atol=1e-4)
    layout = check_updates(ups)
    gram = gram_matrix(ups, layout)
    w, cos = screened_weights(gram, reference_dots(ups, layout, 0), 0, tol=1e-12)
    np.testing.assert_allclose(cos, [-1, -1, 1, 1, 1], atol=1e-6)
    assert w[0] == w[1] == 0.0 and w.sum() == pytest.approx(1.0)


def test_an_update_across_the_centre_is_dropped_in_any_tensor_order():
    # honest (2, 0, b=1), (2, 0.5, b=1), (2, −0.5, b=1); an update orthogonal to them
    # (0, 0, b=0) and one opposite (−4, 0, b=−2): the plain geometric median moves toward
    # them (w < 2), the screened one is the median of the honest three, (2, 0, 1)
    honest = [upd([2, 0], [1]), upd([2, 0.5], [1]), upd([2, -0.5], [1])]
    bad = [upd([0, 0], [0]), upd([-4, 0], [-2])]
    for ups in (honest + bad, bad + honest):
        plain = aggregate(ups, "geometric_median", tol=1e-12)
        assert plain["w"][0] < 1.9
        out = aggregate(ups, "screened_geometric_median", tol=1e-12)
        np.testing.assert_allclose(out["w"], [2, 0], atol=1e-4)
        np.testing.assert_allclose(out["b"], [1], atol=1e-4)


def test_without_dissent_it_is_the_geometric_median():
    # all cosines positive: nothing dropped, the Fermat point of a triangle in the positive
    # quadrant, (1,1) + t·… as the plain geometric median gives it
    ups = [upd([1, 1]), upd([2, 1]), upd([1, 2])]
    plain = aggregate(ups, "geometric_median", tol=1e-12)
    out = aggregate(ups, "screened_geometric_median", tol=1e-12)
    np.testing.assert_allclose(out["w"], plain["w"], atol=1e-6)
    t = (3 - np.sqrt(3)) / 6  # the Fermat point of (0,0), (1,0), (0,1), shifted by (1, 1)
    np.testing.assert_allclose(out["w"], [1 + t, 1 + t], atol=1e-5)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"min_cosine": 1.0}, r"screened_geometric_median: min_cosine must be in \[-1, 1\)"),
        ({"min_cosine": float("nan")}, "min_cosine must be in"),
        ({"nu": 0.0}, "screened_geometric_median: nu must be > 0"),
        ({"max_iter": 0}, "screened_geometric_median: max_iter must be an integer ≥ 1"),
    ],
)
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(AggregationError, match=message):
        aggregate([upd([1]), upd([2])], "screened_geometric_median", **params)
    with pytest.raises(AggregationError, match="takes no weights"):
        aggregate([upd([1]), upd([2])], "screened_geometric_median", weights=[1, 2])
