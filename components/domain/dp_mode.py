"""Which DP mode a federation runs (`dp.mode` of its policies) and what refuses it (pure).

* `local` (default): DP-SGD at every site; each update carries its full noise, so no trust in
  other sites or in the coordinator is needed.
* `distributed`: each site clips its model delta and adds only a 1/h share of Skellam noise
  (`components.privacy.skellam`), h = `dp.min_honest_sites`. The epsilon holds for the *sum*
  of at least h honest sites' vectors, so:
  - the coordinator must see only that sum: `aggregation.protection` secagg (a coordinator
    that sees single updates would see a 1/h share of the noise only);
  - at least h sites must exist, and every aggregate the site contributes to must hold at least
    h contributions: h <= its policy's `aggregation.min_sites` (the quorum it guarantees);
  - one federation sums one kind of vector: policies asking for different modes are refused;
  - every site and the coordinator derive the same mu from the policy (`skellam.round_plan`):
    the members' policies must agree on `dp.epsilon_per_round`, `dp.delta` and
    `dp.min_honest_sites`;
  - weights are 1 per site (the sensitivity assumes it): `export.reveal_num_examples` false.
"""

from __future__ import annotations

from collections.abc import Mapping

from components.domain.models import Policy
from components.domain.protection import PROTECTION_SECAGG

MODE_LOCAL = "local"
MODE_DISTRIBUTED = "distributed"


def dp_mode_problems(policies: Mapping[str, Policy]) -> list[str]:
    """Why the members' policies ({site id: governing policy}) cannot run their DP mode here
    (empty: they can)."""
    asked: dict[str, list[str]] = {}
    for site_id, policy in sorted(policies.items()):
        asked.setdefault(policy.dp.mode, []).append(f"{site_id} ({policy.id})")
    if len(asked) > 1:
        parts = "; ".join(f"{m} by {', '.join(ids)}" for m, ids in sorted(asked.items()))
        return [
            f"sites ask for different DP modes ({parts}): one federation sums one kind of "
            "update; make their policies' dp.mode agree"
        ]
    if MODE_DISTRIBUTED not in asked:
        return []
    problems: list[str] = []
    num_sites = len(policies)
    seen: set[str] = set()
    for policy in (policies[s] for s in sorted(policies)):
        if policy.id in seen:
            continue
        seen.add(policy.id)
        h = policy.dp.min_honest_sites or 0
        if policy.aggregation.protection != PROTECTION_SECAGG:
            problems.append(
                f"policy {policy.id}: dp.mode distributed needs aggregation.protection secagg, "
                f"not {policy.aggregation.protection}: each site adds only 1/{h} of the noise, "
                "and a coordinator that sees single updates would see too little noise"
            )
        if h > num_sites:
            problems.append(
                f"policy {policy.id}: dp.min_honest_sites {h} is more than the federation's "
                f"{num_sites} site(s): the sum could never carry the full noise"
            )
        if h > policy.aggregation.min_sites:
            problems.append(
                f"policy {policy.id}: dp.min_honest_sites {h} is more than its "
                f"aggregation.min_sites {policy.aggregation.min_sites}: an aggregate of fewer "
                f"than {h} sites would carry less noise than accounted; raise min_sites to {h} "
                "or lower min_honest_sites"
            )
    distinct = {p.id: p for p in policies.values()}
    limits = {
        (p.dp.epsilon_per_round, p.dp.delta, p.dp.min_honest_sites) for p in distinct.values()
    }
    if len(limits) > 1:
        shown = "; ".join(
            f"{pid}: epsilon_per_round {p.dp.epsilon_per_round:g}, delta {p.dp.delta:g}, "
            f"min_honest_sites {p.dp.min_honest_sites}"
            for pid, p in sorted(distinct.items())
        )
        problems.append(
            "dp.mode distributed: the members' policies must agree on dp.epsilon_per_round, "
            f"dp.delta and dp.min_honest_sites (one noise variance mu for the sum): {shown}"
        )
    weighted = sorted(pid for pid, p in distinct.items() if p.export.reveal_num_examples)
    if weighted:
        problems.append(
            f"dp.mode distributed: policies {', '.join(weighted)} set "
            "export.reveal_num_examples, so the sites would mask row-count weights; the "
            "Skellam sensitivity assumes weight 1 per site (set it to false)"
        )
    return problems
