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


def test_sites_taking_part_from_the_validation_summaries():
    from components.aggregation.quorum import sites_taking_part

    summaries = {
        "c": {"passed": False, "reason": "site c abstains: privacy budget: spent"},
        "a": {"passed": True, "reason": None},
        "b": None,
        "d": {"passed": "yes"},  # only a literal true passes
    }
    assert sites_taking_part(summaries) == (
        ["a"],
        {
            "b": "site b: validation summary unreadable",
            "c": "site c abstains: privacy budget: spent",
            "d": "site d: validation failed",
        },
    )


def test_run_quorum_holds_without_an_exhausted_site_and_fails_naming_it_when_it_cannot():
    from components.aggregation.quorum import RunQuorumError, check_run_quorum

    exhausted = {"passed": False, "reason": "site c abstains: privacy budget: 5 rounds > 50"}
    ok = {"passed": True}
    # one of three sites cannot afford the run: 2 of 3 keep a quorum of 2, the run goes on
    assert check_run_quorum({"a": ok, "b": ok, "c": exhausted}, 2) == ["a", "b"]
    # a quorum of 3 cannot hold: the run stops before anyone trains, naming the reason
    with pytest.raises(RunQuorumError) as stopped:
        check_run_quorum({"a": ok, "b": ok, "c": exhausted}, 3)
    assert str(stopped.value).startswith(
        "quorum cannot hold: 2 site(s) can take part [a, b], every aggregate needs 3"
    )
    assert "abstaining: c (site c abstains: privacy budget: 5 rounds > 50)" in str(stopped.value)
    # min_sites below 1 still needs one site
    with pytest.raises(RunQuorumError, match="needs 1"):
        check_run_quorum({"c": exhausted}, 0)
