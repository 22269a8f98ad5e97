"""The run's one DP-off decision over every site's policy (pure, hand-checked cases)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.domain.models import Policy
from components.privacy.dp_off import DpPolicyError, decide_dp_off, require_dp_allowed

REPO = Path(__file__).resolve().parents[2]


def _policy(policy_id: str, allow_dp_off: bool) -> Policy:
    body = yaml.safe_load((REPO / "policies" / "eu-health.yaml").read_text())
    body["id"] = policy_id
    body["dp"]["allow_dp_off"] = allow_dp_off
    return Policy.parse_obj(body)


OPEN = _policy("open-lab", True)
STRICT = _policy("strict-health", False)


def test_dp_on_is_always_allowed() -> None:
    decision = decide_dp_off(True, {"a": STRICT, "b": STRICT})
    assert decision.allowed and decision.refusing == () and decision.reason is None


def test_dp_off_allowed_only_when_every_policy_allows_it() -> None:
    assert decide_dp_off(False, {"a": OPEN, "b": OPEN}).allowed
    one = decide_dp_off(False, {"a": OPEN, "b": STRICT}, "--param dp_enabled=false")
    assert not one.allowed and one.refusing == ("b",)
    assert one.reason is not None
    assert one.reason.startswith("--param dp_enabled=false refused")
    assert "b (policy strict-health)" in one.reason and "a (" not in one.reason
    both = decide_dp_off(False, {"z": STRICT, "b": OPEN, "c": STRICT})
    assert both.refusing == ("c", "z")  # sorted, every refusing site named
    assert "c (policy strict-health), z (policy strict-health)" in str(both.reason)


def test_no_sites_means_nothing_refuses() -> None:
    assert decide_dp_off(False, {}).allowed


def test_require_raises_the_decisions_reason() -> None:
    require_dp_allowed(False, {"a": OPEN})
    with pytest.raises(DpPolicyError, match=r"site-x \(policy strict-health\)"):
        require_dp_allowed(False, {"site-x": STRICT})
