"""DP mode of a federation (pure): the policy fields and what refuses distributed mode."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from components.domain.dp_mode import dp_mode_problems
from components.domain.models import Policy
from tests.support.example_federation import example_federation


def _with(
    policy: Policy, *, mode: str, h: int | None, protection: str = "secagg", min_sites: int = 0
) -> Policy:
    dp = policy.dp.copy(update={"mode": mode, "min_honest_sites": h})
    agg = policy.aggregation.copy(
        update={"protection": protection, "min_sites": min_sites or policy.aggregation.min_sites}
    )
    return policy.copy(update={"dp": dp, "aggregation": agg})


def _members(mode: str = "distributed", **kw) -> dict[str, Policy]:
    fed = example_federation()
    return {sid: _with(fed.policy_of(sid), mode=mode, **kw) for sid in fed.sites}


def test_local_is_the_default_and_needs_nothing() -> None:
    fed = example_federation()
    members = {sid: fed.policy_of(sid) for sid in fed.sites}
    assert {p.dp.mode for p in members.values()} == {"local"}
    assert dp_mode_problems(members) == []


def test_the_policy_schema_ties_min_honest_sites_to_distributed_mode() -> None:
    body = example_federation().policies["eu-health"].dict()
    body["dp"]["mode"] = "distributed"
    with pytest.raises(ValidationError, match="dp.mode distributed needs dp.min_honest_sites"):
        Policy.parse_obj(body)
    body["dp"].update(mode="local", min_honest_sites=2)
    with pytest.raises(ValidationError, match="applies to dp.mode distributed only"):
        Policy.parse_obj(body)
    body["dp"].update(mode="distributed", min_honest_sites=2)
    assert Policy.parse_obj(body).dp.min_honest_sites == 2


def test_distributed_with_secagg_and_h_within_the_quorum_compiles() -> None:
    assert dp_mode_problems(_members(h=2, min_sites=2)) == []


def test_members_must_agree_on_the_limits_that_fix_mu_and_mask_weight_one() -> None:
    members = _members(h=2, min_sites=2)
    boston = members["clinic-boston"]
    dp = boston.dp.copy(update={"epsilon_per_round": 2.0})
    export = boston.export.copy(update={"reveal_num_examples": True})
    members["clinic-boston"] = boston.copy(update={"dp": dp, "export": export})
    agree, weights = dp_mode_problems(members)
    assert "must agree on dp.epsilon_per_round, dp.delta and dp.min_honest_sites" in agree
    assert "eu-health: epsilon_per_round 3, delta 1e-05, min_honest_sites 2; us-health: " in agree
    assert "policies us-health set export.reveal_num_examples" in weights


def test_distributed_without_secagg_is_refused_naming_the_policy() -> None:
    problems = dp_mode_problems(_members(h=2, protection="none"))
    assert [p.split(":")[0] for p in problems] == ["policy us-health", "policy eu-health"]
    assert problems[1].startswith(
        "policy eu-health: dp.mode distributed needs aggregation.protection secagg, not none"
    )
    assert "would see too little noise" in problems[1]


def test_more_honest_sites_than_sites_or_than_the_quorum_is_refused() -> None:
    problems = dp_mode_problems(_members(h=4, min_sites=4))
    assert any(
        "dp.min_honest_sites 4 is more than the federation's 3 site(s)" in p for p in problems
    )
    problems = dp_mode_problems(_members(h=3, min_sites=2))
    assert any(
        "dp.min_honest_sites 3 is more than its aggregation.min_sites 2" in p for p in problems
    )


def test_mixed_modes_are_refused_naming_both() -> None:
    members = _members(h=2)
    fed = example_federation()
    members["clinic-boston"] = fed.policy_of("clinic-boston")
    (problem,) = dp_mode_problems(members)
    assert "sites ask for different DP modes" in problem
    assert "distributed by hospital-berlin (eu-health), hospital-paris (eu-health)" in problem
    assert "local by clinic-boston (us-health)" in problem


def test_distributed_mode_refuses_a_run_without_dp_naming_the_sites() -> None:
    from components.privacy.dp_off import decide_dp_off

    decision = decide_dp_off(False, _members(h=2))
    assert not decision.allowed
    assert decision.refusing == ("clinic-boston", "hospital-berlin", "hospital-paris")
    assert "dp.mode is distributed in the policies of clinic-boston (policy us-health)" in (
        decision.reason or ""
    )
    assert decide_dp_off(True, _members(h=2)).allowed
