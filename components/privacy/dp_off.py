"""Whether a run may train without DP: one decision over every site's policy (pure).

Whatever asks for DP off (`fedpipe run --no-dp`, `--param dp_enabled=false`, the Kubeflow
UI's run form) is answered by `decide_dp_off`, before any site trains: the local runner asks
it over all member sites' policies before it starts anything; in the compiled pipeline every
site's `validate` asks it over its own policy, and no site trains before every validate has
passed (initialize waits for them all, every train for initialize), so one refusing site
stops the run before anyone trains; `train` asks again as defence in depth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from components.domain.models import Policy


class DpPolicyError(RuntimeError):
    """Training without DP where a site's policy does not allow it (names sites and policies)."""


@dataclass(frozen=True)
class DpOffDecision:
    """`allowed`: the run may go ahead with this `dp_enabled`; `refusing`: the sites whose
    policy sets `dp.allow_dp_off: false` (empty when DP is on); `reason`: why not, or None."""

    allowed: bool
    refusing: tuple[str, ...]
    reason: str | None


def decide_dp_off(
    dp_enabled: bool, policies: Mapping[str, Policy], asked_by: str = "dp_enabled=false"
) -> DpOffDecision:
    """May the run train with `dp_enabled` under `policies` ({site_id: governing policy})?

    DP on is always allowed. DP off only when every site's policy sets `dp.allow_dp_off`;
    otherwise refused, naming each refusing site with its policy and `asked_by` (what asked:
    a flag, a parameter)."""
    if dp_enabled:
        return DpOffDecision(True, (), None)
    distributed = tuple(sid for sid in sorted(policies) if policies[sid].dp.mode == "distributed")
    if distributed:
        named = ", ".join(f"{sid} (policy {policies[sid].id})" for sid in distributed)
        return DpOffDecision(
            False,
            distributed,
            f"{asked_by} refused: dp.mode is distributed in the policies of {named}; distributed "
            "DP trains with DP on (each site adds its Skellam share); set dp.mode local to "
            "experiment without DP. Nothing was trained.",
        )
    refusing = tuple(sid for sid in sorted(policies) if not policies[sid].dp.allow_dp_off)
    if not refusing:
        return DpOffDecision(True, (), None)
    named = ", ".join(f"{sid} (policy {policies[sid].id})" for sid in refusing)
    return DpOffDecision(
        False,
        refusing,
        f"{asked_by} refused: dp.allow_dp_off is false in the policies of {named}; "
        "train with DP (dp_enabled=true) or change those policies. Nothing was trained.",
    )


def require_dp_allowed(
    dp_enabled: bool, policies: Mapping[str, Policy], asked_by: str = "dp_enabled=false"
) -> None:
    """`decide_dp_off`, raising DpPolicyError with its reason when refused."""
    decision = decide_dp_off(dp_enabled, policies, asked_by)
    if not decision.allowed:
        raise DpPolicyError(decision.reason)
