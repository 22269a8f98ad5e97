"""Compile-time check of the policies' `aggregation.protection` (components.domain.protection).

The compiler refuses, all problems at once: policies asking for different protections; a
compiled rule or server optimizer that cannot run when the coordinator sees only a sum or
ciphertexts; `he` or `secagg` unless every member site's policy asks for it (all sites
encrypt under one shared context, or all mask: a site exporting in the clear could not be
added, and its own policy would make its export refuse); a protection whose pipeline stages
are not built (`UNBUILT`), saying so, rather than compiling a pipeline that would show the
coordinator every update; and, for `secagg`, what the SecAgg+ stages need: a coordinator
signing key (the roster and the unmasking request are signed), a signing key per site (the
key advertisements are signed), policies that agree on `export.reveal_num_examples` (it
decides the FedAvg weight every site masks: uniform, or the row count, which then needs a
cap every site declares) and at least 2 sites; the policies' `aggregation.secagg` (graph, threshold, norm bound, word size) must
agree and hold for the federation's size (each problem names the field and the policy);
and a policy that sets `aggregation.secagg` under another protection (it would be ignored).
`secagg_settings` turns a federation into the
one `SecAggSettings` its tasks share.
"""

from __future__ import annotations

from components.domain.canonical import canonical_json
from components.domain.federation import Federation
from components.domain.models import SecAggParameters
from components.domain.protection import (
    PROTECTION_HE,
    PROTECTION_SECAGG,
    UNBUILT,
    ProtectionConflict,
    federation_protection,
    rule_conflicts,
)
from components.secagg.errors import SecAggError
from components.secagg.settings import SecAggSettings, parameter_problems
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
    stray = _stray_secagg_parameters(federation)
    try:
        protection = federation_protection(asked)
    except ProtectionConflict as exc:
        raise ProtectionError([str(exc), *stray]) from None
    problems = stray + rule_conflicts(protection, rule, server_optimizer, server_learning_rate)
    if protection in (PROTECTION_HE, PROTECTION_SECAGG):
        # every member encrypts under the one shared context (he) or masks (secagg); a site
        # whose own policy says otherwise would export in the clear and the coordinator
        # could not add it to ciphertexts or a masked sum
        clear = sorted(
            {federation.policy_of(s).id for s in federation.sites}
            - {pid for pid, p in asked.items() if p == protection}
        )
        if clear:
            problems.append(
                f"aggregation.protection {protection} needs every member site's policy to ask "
                f"for it; {', '.join(clear)} do(es) not (their sites would export in the "
                "clear, which the coordinator cannot add to "
                + ("ciphertexts" if protection == PROTECTION_HE else "a masked sum")
                + f"): set aggregation.protection {protection} there"
            )
    if protection in UNBUILT:
        by = ", ".join(sorted(pid for pid, p in asked.items() if p == protection))
        problems.append(
            f"aggregation.protection {protection} (policies {by}) is refused: "
            f"{UNBUILT[protection]}; until then set it to none"
        )
    if protection == PROTECTION_SECAGG:
        problems += _secagg_problems(federation)
    if problems:
        raise ProtectionError(problems)
    return protection


def _stray_secagg_parameters(federation: Federation) -> list[str]:
    """A policy that sets `aggregation.secagg` under another protection: nothing would read
    those parameters, so the compiler refuses them rather than ignore them."""
    policies = {p.id: p for p in federation.governing.values()}
    return [
        f"policy {pid}: aggregation.secagg is set but its aggregation.protection is "
        f"{p.aggregation.protection}; SecAgg+ parameters apply only under protection secagg: "
        "remove aggregation.secagg or set aggregation.protection secagg"
        for pid, p in sorted(policies.items())
        if p.aggregation.secagg is not None and p.aggregation.protection != PROTECTION_SECAGG
    ]


def _weight_caps(federation: Federation) -> dict[str, int | None]:
    """site -> the most rows it may claim as its weight (as aggregate's count caps)."""
    caps: dict[str, int | None] = {}
    for sid, site in federation.sites.items():
        declared = site.data.num_examples if site.data else None
        policy = federation.policy_of(sid)
        caps[sid] = declared.max if declared is not None else policy.aggregation.max_num_examples
    return caps


def _secagg_problems(federation: Federation) -> list[str]:
    problems = []
    if federation.coordinator.signing is None:
        problems.append(
            f"aggregation.protection secagg: coordinator {federation.coordinator.id} names no "
            "signing.public_key (the SecAgg+ roster and unmasking request are signed with it)"
        )
    unsigned = sorted(s for s, site in federation.sites.items() if site.signing is None)
    if unsigned:
        problems.append(
            f"aggregation.protection secagg: site(s) {', '.join(unsigned)} name no "
            "signing.public_key (their SecAgg+ key advertisements are signed with it)"
        )
    reveal = {sid: federation.policy_of(sid).export.reveal_num_examples for sid in federation.sites}
    if len(set(reveal.values())) > 1:
        shown = ", ".join(f"{s}: {v}" for s, v in sorted(reveal.items()))
        problems.append(
            "aggregation.protection secagg: the sites' policies disagree on "
            f"export.reveal_num_examples ({shown}); it decides the FedAvg weight every site "
            "masks (uniform or its row count), so make them agree"
        )
    elif any(reveal.values()):
        uncapped = sorted(s for s, c in _weight_caps(federation).items() if c is None)
        if uncapped:
            problems.append(
                "aggregation.protection secagg with row-count weights: site(s) "
                f"{', '.join(uncapped)} declare no data.num_examples.max and their policy no "
                "aggregation.max_num_examples; the fixed point needs a largest weight"
            )
    if len(federation.sites) < 2:
        problems.append("aggregation.protection secagg needs at least 2 member sites")
    else:
        problems += _parameter_problems(federation)
    return problems


def _secagg_parameters(federation: Federation) -> tuple[SecAggParameters, str]:
    """The policies' `aggregation.secagg` (the defaults when none sets it) and who set it;
    ProtectionError when policies set different values."""
    given = {
        pid: p.aggregation.secagg
        for pid, p in {q.id: q for q in federation.governing.values()}.items()
        if p.aggregation.secagg is not None
    }
    if len({canonical_json(v) for v in given.values()}) > 1:
        shown = "; ".join(f"{pid}: {canonical_json(v)}" for pid, v in sorted(given.items()))
        raise ProtectionError(
            [
                "aggregation.protection secagg: the policies disagree on aggregation.secagg "
                f"({shown}); every site masks with one graph and one fixed point, so make them "
                "agree (a policy that leaves it out follows the ones that set it)"
            ]
        )
    if not given:
        return SecAggParameters(), "the defaults (no policy sets aggregation.secagg)"
    return next(iter(given.values())), "policy " + ", ".join(sorted(given))


def _parameter_problems(federation: Federation) -> list[str]:
    try:
        params, by = _secagg_parameters(federation)
    except ProtectionError as exc:
        return exc.problems
    return [
        f"aggregation.secagg.{field} ({by}): {problem}"
        for field, problem in parameter_problems(
            len(federation.sites), params.neighbours, params.threshold, params.word_bits
        )
    ]


def secagg_settings(federation: Federation) -> SecAggSettings:
    """The SecAgg+ settings of a federation that passed `check_protection` with secagg."""
    caps = _weight_caps(federation)
    reveal = any(federation.policy_of(sid).export.reveal_num_examples for sid in federation.sites)
    params, _ = _secagg_parameters(federation)
    common = {
        "num_sites": len(federation.sites),
        "neighbours": params.neighbours,
        "threshold": params.threshold,
        "norm_bound": params.norm_bound,
        "modulus_bits": params.word_bits,
    }
    try:
        if reveal:
            return SecAggSettings(
                **common,
                weighting="num_examples",
                max_weight=float(max(c for c in caps.values() if c is not None)),
            )
        return SecAggSettings(**common)
    except SecAggError as exc:
        raise ProtectionError([f"aggregation.protection secagg: {exc}"]) from None


def federation_protection_of(federation: Federation) -> str:
    """The protection the federation's policies ask for (none when they conflict: the
    compiler's `check_protection` refuses those before the DAG is built)."""
    asked = {p.id: p.aggregation.protection for p in federation.governing.values()}
    try:
        return federation_protection(asked)
    except ProtectionConflict:
        return "none"
