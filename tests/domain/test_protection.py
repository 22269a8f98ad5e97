"""Update protection (pure): which protection a federation's policies ask for, and which
rules and server optimizers can run when the coordinator sees only a sum or ciphertexts."""

from __future__ import annotations

import pytest

from components.aggregation.rules import RULES
from components.domain.protection import (
    SUM_RULES,
    ProtectionConflict,
    federation_protection,
    rule_conflicts,
)


def test_the_federation_takes_the_protection_any_policy_asks_for() -> None:
    assert federation_protection({"a": "none", "b": "none"}) == "none"
    assert federation_protection({"a": "none", "b": "secagg"}) == "secagg"
    assert federation_protection({"a": "he", "b": "he", "c": "none"}) == "he"


def test_policies_asking_for_different_protections_are_refused_naming_them() -> None:
    with pytest.raises(ProtectionConflict, match=r"he by b; secagg by a, c"):
        federation_protection({"a": "secagg", "b": "he", "c": "secagg"})
    with pytest.raises(ProtectionConflict, match="policy a: aggregation.protection 'tls'"):
        federation_protection({"a": "tls"})


@pytest.mark.parametrize("protection", ["secagg", "he"])
def test_only_fedavg_runs_on_a_sum(protection: str) -> None:
    assert {"fedavg"} == SUM_RULES
    assert rule_conflicts(protection, "fedavg") == []
    for rule in sorted(set(RULES) - SUM_RULES):
        (problem,) = rule_conflicts(protection, rule)
        assert f"rule {rule!r} cannot run with aggregation.protection {protection}" in problem
    (krum,) = rule_conflicts(protection, "multi_krum")
    assert "distances between single updates" in krum
    (median,) = rule_conflicts(protection, "median")
    assert "coordinate-wise median" in median


def test_he_refuses_server_optimizers_secagg_keeps_them() -> None:
    assert rule_conflicts("secagg", "fedavg", "fedadam", 0.1) == []
    (problem,) = rule_conflicts("he", "fedavg", "fedadam", 0.1)
    assert "server_optimizer 'fedadam'" in problem and "plain FedAvg" in problem
    assert len(rule_conflicts("he", "fedavg", "fedavg", 2.0)) == 1
    assert rule_conflicts("none", "median", "fedyogi", 0.1) == []
