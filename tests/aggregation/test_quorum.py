"""Quorum (pure): the required count and the error that names counts and sites."""

from __future__ import annotations

import pytest

from components.aggregation.quorum import QuorumError, check_quorum, required_sites


def test_required_is_the_max_of_pipeline_and_policies():
    assert required_sites(2, {}) == (2, "pipeline min_sites=2")
    assert required_sites(2, {"a": 2, "b": 3, "c": 1}) == (
        3,
        "policy of b: aggregation.min_sites=3",
    )
    assert required_sites(0, {}) == (1, "pipeline min_sites=0")  # never an empty aggregate


def test_quorum_met_returns_required():
    assert (
        check_quorum(
            round_index=1,
            valid=["a", "b"],
            min_sites=2,
            policy_min_sites={"a": 2, "b": 2},
            rejected={"c": "NaN"},
            abstained={},
        )
        == 2
    )


def test_quorum_error_names_counts_and_sites():
    with pytest.raises(QuorumError) as info:
        check_quorum(
            round_index=4,
            valid=["a"],
            min_sites=1,
            policy_min_sites={"a": 2},
            rejected={"c": "signature does not verify"},
            abstained={"b": "validation failed"},
        )
    err = info.value
    assert (err.round_index, err.valid, err.required) == (4, ["a"], 2)
    assert str(err) == (
        "round 4: quorum not met: 1 valid update(s) [a], need 2 (policy of a: "
        "aggregation.min_sites=2); rejected 1: c (signature does not verify); abstained 1: b "
        "(validation failed). Nothing was published; the global model is unchanged."
    )


def test_no_valid_update_at_all_fails():
    with pytest.raises(QuorumError, match=r"0 valid update\(s\) \[-\], need 1"):
        check_quorum(
            round_index=1, valid=[], min_sites=0, policy_min_sites={}, rejected={}, abstained={}
        )
