"""Compile-time check of the policies' `dp.mode` (components.domain.dp_mode).

The compiler refuses, all problems at once: members asking for different modes; distributed
mode without secure aggregation, with more assumed honest sites than sites or than the quorum
its policy guarantees; and distributed mode itself while its stages are not built.
"""

from __future__ import annotations

from components.domain.dp_mode import dp_mode_problems
from components.domain.federation import Federation
from pipelines.residency.checker import ResidencyViolationError


class DpModeError(ResidencyViolationError):
    """The policies' DP mode cannot hold in this pipeline; `problems`, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.violations = []
        self.problems = list(problems)
        n = len(self.problems)
        header = f"{n} DP-mode problem{'s' if n != 1 else ''} (nothing was written):"
        Exception.__init__(self, "\n".join([header, *(f"  {p}" for p in self.problems)]))


def check_dp_mode(federation: Federation) -> None:
    """DpModeError listing every problem of the members' `dp.mode` (see module doc)."""
    members = {sid: federation.policy_of(sid) for sid in federation.sites}
    problems = dp_mode_problems(members)
    if problems:
        raise DpModeError(problems)
