"""Compile-time check of the policies' `aggregation.protection` (components.domain.protection).

The compiler refuses, all problems at once: policies asking for different protections; a
compiled rule or server optimizer that cannot run when the coordinator sees only a sum or
ciphertexts; `he` unless every member site's policy asks for it (all sites encrypt under one
shared context); and a protection whose pipeline stages are not built (`UNBUILT`), saying
so, rather than compiling a pipeline that would show the coordinator every update.
"""

from __future__ import annotations

from components.domain.federation import Federation
from components.domain.protection import (
    PROTECTION_HE,
    UNBUILT,
    ProtectionConflict,
    federation_protection,
    rule_conflicts,
)
from pipelines.residency.checker import ResidencyViolationError


class ProtectionError(ResidencyViolationError):
    """The policies' update protection cannot hold in this pipeline; `problems`, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.violations = []
        self.problems = list(problems)
        n = len(self.problems)
        header = f"{n} update-protection problem{'s' if n != 1 else ''} (nothing was written):"
        Exception.__init__(self, "\n".join([header, *(f"  {p}" for p in self.problems)]))


def check_protection(
    federation: Federation,
    rule: str,
    server_optimizer: str,
    server_learning_rate: float,
) -> str:
    """The federation's protection; ProtectionError listing every problem (see module doc)."""
    asked = {p.id: p.aggregation.protection for p in federation.governing.values()}
    try:
        protection = federation_protection(asked)
    except ProtectionConflict as exc:
        raise ProtectionError([str(exc)]) from None
    problems = rule_conflicts(protection, rule, server_optimizer, server_learning_rate)
    if protection == PROTECTION_HE:
        # every member encrypts under the one shared context; a site whose own policy says
        # otherwise would export in the clear and the coordinator could not add it
        clear = sorted(
            {federation.policy_of(s).id for s in federation.sites}
            - {pid for pid, p in asked.items() if p == PROTECTION_HE}
        )
        if clear:
            problems.append(
                f"aggregation.protection he needs every member site's policy to ask for it; "
                f"{', '.join(clear)} do(es) not (their sites would export in the clear, which "
                "the coordinator cannot add to ciphertexts): set aggregation.protection he there"
            )
    if protection in UNBUILT:
        by = ", ".join(sorted(pid for pid, p in asked.items() if p == protection))
        problems.append(
            f"aggregation.protection {protection} (policies {by}) is refused: "
            f"{UNBUILT[protection]}; until then set it to none"
        )
    if problems:
        raise ProtectionError(problems)
    return protection
