"""Update protection (`aggregation.protection` of a policy): what the coordinator may see (pure).

* `none`: the coordinator reads each site's (DP-noised, signed) update.
* `secagg`: secure aggregation (SecAgg+, `components/secagg/`): the coordinator learns only
  the sum of the masked, quantized updates of the sites that finished the round.
* `he`: homomorphic encryption (CKKS): the coordinator adds ciphertexts and never holds the
  secret key; the sites decrypt the aggregate.

With `secagg` or `he` the coordinator cannot see single updates, so no rule that needs
them can run there: coordinate-wise robust rules (median, trimmed mean), distance-based ones
(Krum, Multi-Krum, geometric median, centred clipping) and the coordinator's norm bound
(`norm_bounded_mean`: norm bounding then happens at the site, before masking) are refused,
as is per-update anomaly scoring. Only `fedavg` (a weighted sum) works on a sum. With `he`
the coordinator publishes an *encrypted* aggregate the sites decrypt, so it cannot apply a
server optimizer either: only plain FedAvg (`server_optimizer` fedavg, learning rate 1).

A federation's protection is the one its policies ask for: a policy that says `secagg` or
`he` binds the whole round (its site's update must not be seen alone); policies asking for
two different protections cannot both hold and are refused.
"""

from __future__ import annotations

from collections.abc import Mapping

PROTECTION_NONE = "none"
PROTECTION_SECAGG = "secagg"
PROTECTION_HE = "he"
PROTECTIONS = (PROTECTION_NONE, PROTECTION_SECAGG, PROTECTION_HE)

# The rules that work on a sum of updates (all others need single updates).
SUM_RULES = frozenset({"fedavg"})
_WHY_NOT = {
    "median": "a coordinate-wise median needs every single update",
    "trimmed_mean": "a coordinate-wise trimmed mean needs every single update",
    "krum": "Krum scores the distances between single updates",
    "multi_krum": "Multi-Krum scores the distances between single updates",
    "geometric_median": "the geometric median iterates over single updates",
    "centred_clipping": "centred clipping clips each single update",
    "screened_geometric_median": "the screen compares single updates with their median",
    "norm_bounded_mean": "the coordinator cannot bound norms it cannot see (sites clip instead)",
}
# Stages not built yet: the compiler refuses these protections until they are wired
# (both are: secagg in pipelines/dag.py + components/secagg_stages/, he at export/aggregate).
UNBUILT: dict[str, str] = {}


# What the report says under each protection about the checks the coordinator cannot run.
OFF_UNDER_PROTECTION = (
    "robust rules, the FedAvg norm guard and per-update anomaly scoring are off: the "
    "coordinator sees only the sum of the masked updates, not one site's update (sites clip "
    "their updates to the norm bound before masking instead)"
)


class ProtectionConflict(ValueError):
    """Policies asking for protections that cannot hold together, or a rule that cannot run
    under the protection; the message names the policies / parameter and why."""


def federation_protection(protections: Mapping[str, str]) -> str:
    """The protection of a federation from {policy id: its `aggregation.protection`}.

    `none` when no policy asks for one; the one asked for otherwise; ProtectionConflict when
    two policies ask for different ones."""
    asked: dict[str, list[str]] = {}
    for policy_id, protection in sorted(protections.items()):
        if protection not in PROTECTIONS:
            raise ProtectionConflict(
                f"policy {policy_id}: aggregation.protection {protection!r} must be one of "
                f"{', '.join(PROTECTIONS)}"
            )
        if protection != PROTECTION_NONE:
            asked.setdefault(protection, []).append(policy_id)
    if len(asked) > 1:
        parts = "; ".join(f"{p} by {', '.join(ids)}" for p, ids in sorted(asked.items()))
        raise ProtectionConflict(
            f"policies ask for different update protections ({parts}): one federation "
            "aggregates one way; make their aggregation.protection agree"
        )
    return next(iter(asked), PROTECTION_NONE)


def rule_conflicts(
    protection: str, rule: str, server_optimizer: str = "fedavg", server_learning_rate: float = 1.0
) -> list[str]:
    """Why `rule` / the server optimizer cannot run under `protection` (empty: they can)."""
    if protection == PROTECTION_NONE:
        return []
    problems = []
    if rule not in SUM_RULES:
        why = _WHY_NOT.get(rule, "it is not a sum of updates")
        problems.append(
            f"rule {rule!r} cannot run with aggregation.protection {protection}: {why}; "
            "the coordinator sees only the sum (use rule fedavg; robust rules and anomaly "
            "scoring are off)"
        )
    if protection == PROTECTION_HE and (server_optimizer != "fedavg" or server_learning_rate != 1):
        problems.append(
            f"server_optimizer {server_optimizer!r} (server_learning_rate "
            f"{server_learning_rate:g}) cannot run with aggregation.protection he: the "
            "coordinator only adds ciphertexts and the sites decrypt; use plain FedAvg "
            "(server_optimizer fedavg, server_learning_rate 1.0)"
        )
    return problems
