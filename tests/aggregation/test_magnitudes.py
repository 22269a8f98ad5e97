"""Weights and magnitudes before plain FedAvg (issue #11 item 5), by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from components.aggregation.magnitudes import cap_counts, lower_median, norm_guard, update_norm


def test_lower_median():
    assert lower_median([3.0]) == 3.0
    assert lower_median([5.0, 1.0]) == 1.0
    assert lower_median([1.0, 9.0, 2.0]) == 2.0
    assert lower_median([4.0, 1.0, 3.0, 2.0]) == 2.0
    with pytest.raises(ValueError):
        lower_median([])


def test_update_norm_does_not_overflow_on_3e38():
    tensors = {"w": np.full((2, 2), 3e38, np.float32), "b": np.array([3e38], np.float32)}
    # √5 · 3e38 (float32 3e38 is 2.9999999e38)
    assert update_norm(tensors) == pytest.approx(math.sqrt(5) * float(np.float32(3e38)), rel=1e-12)
    assert update_norm({"w": np.array([3.0, 4.0], np.float32)}) == 5.0


def test_counts_are_capped_by_the_declared_maximum_or_the_fallback():
    claims = {"a": 10**12, "b": 10, "c": 20}
    weights, notes = cap_counts(claims, {"a": (30, "a data.num_examples.max"), "b": None})
    # b and c have no declared maximum: 10 × the lower median claim 20 = 200 (both below)
    assert weights == {"a": 30.0, "b": 10.0, "c": 20.0}
    assert notes == {
        "a": "claimed 1000000000000 examples, above 30 (a data.num_examples.max); weighted as 30"
    }
    weights, notes = cap_counts(claims, {})
    assert weights == {"a": 200.0, "b": 10.0, "c": 20.0} and list(notes) == ["a"]
    assert cap_counts({}, {}) == ({}, {})


def test_norm_guard_rejects_beyond_the_factor_of_the_median():
    assert norm_guard({"a": 1.0, "b": 2.0, "c": 30.0}, 10.0) == {
        "c": "norm guard: update L2 norm 30 is 15× the round's median update norm 2 "
        "(limit 10×, coordinator policy aggregation.norm_guard_factor)"
    }
    assert norm_guard({"a": 1.0, "b": 2.0, "c": 20.0}, 10.0) == {}  # exactly 10×: kept
    assert list(norm_guard({"a": 1.0, "b": math.inf}, 10.0)) == ["b"]  # two: the smaller rules
    assert norm_guard({"a": 5.0}, 10.0) == {}  # nothing to compare with
    assert norm_guard({"a": 0.0, "b": 0.0, "c": 1.0}, 10.0) == {}  # no scale
