"""Quorum of a round (pure): enough valid updates, or the round fails and nothing is published."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class QuorumError(RuntimeError):
    """Too few valid updates for the round; the global model stays as it was."""

    def __init__(
        self,
        *,
        round_index: int,
        valid: Sequence[str],
        required: int,
        why: str,
        rejected: Mapping[str, str],
        abstained: Mapping[str, str],
    ) -> None:
        def listing(items: Mapping[str, str]) -> str:
            return "; ".join(f"{site} ({reason})" for site, reason in sorted(items.items())) or "-"

        super().__init__(
            f"round {round_index}: quorum not met: {len(valid)} valid update(s) "
            f"[{', '.join(sorted(valid)) or '-'}], need {required} ({why}); "
            f"rejected {len(rejected)}: {listing(rejected)}; "
            f"abstained {len(abstained)}: {listing(abstained)}. "
            f"Nothing was published; the global model is unchanged."
        )
        self.round_index = round_index
        self.valid = list(valid)
        self.required = required
        self.rejected = dict(rejected)
        self.abstained = dict(abstained)


def required_sites(min_sites: int, policy_min_sites: Mapping[str, int]) -> tuple[int, str]:
    """The quorum: max of the pipeline's `min_sites` and every contributing site's policy
    `aggregation.min_sites` ({site_id: min_sites}); at least 1. Returns (count, explanation)."""
    required, why = max(1, min_sites), f"pipeline min_sites={min_sites}"
    for site, count in sorted(policy_min_sites.items()):
        if count > required:
            required, why = count, f"policy of {site}: aggregation.min_sites={count}"
    return required, why


def check_quorum(
    *,
    round_index: int,
    valid: Sequence[str],
    min_sites: int,
    policy_min_sites: Mapping[str, int],
    rejected: Mapping[str, str],
    abstained: Mapping[str, str],
) -> int:
    """Raise `QuorumError` unless len(valid) >= the required count; return that count.

    policy_min_sites: `aggregation.min_sites` of the policies of the sites in `valid`.
    """
    required, why = required_sites(min_sites, policy_min_sites)
    if len(valid) < required:
        raise QuorumError(
            round_index=round_index,
            valid=valid,
            required=required,
            why=why,
            rejected=rejected,
            abstained=abstained,
        )
    return required


class RunQuorumError(RuntimeError):
    """Too few sites can take part in the run at all; nobody trains, nothing is charged."""


def sites_taking_part(
    summaries: Mapping[str, Mapping[str, Any] | None],
) -> tuple[list[str], dict[str, str]]:
    """(sites whose validation passed, {site: why it abstains}) from every site's validation
    summary ({site_id: summary.json body, None when unreadable}); a summary without
    `passed: true` abstains with its reason (data contract, privacy budget, ...)."""
    passed: list[str] = []
    abstained: dict[str, str] = {}
    for site in sorted(summaries):
        summary = summaries[site]
        if summary is None:
            abstained[site] = f"site {site}: validation summary unreadable"
        elif summary.get("passed") is True:
            passed.append(site)
        else:
            abstained[site] = str(summary.get("reason") or f"site {site}: validation failed")
    return passed, abstained


def check_run_quorum(
    summaries: Mapping[str, Mapping[str, Any] | None], min_sites: int
) -> list[str]:
    """The sites taking part in the run (`sites_taking_part`); `RunQuorumError` naming every
    abstaining site with its reason when fewer than `min_sites` (at least 1) can take part, so
    the run stops before anyone trains instead of spending the others' budgets on rounds the
    aggregate would refuse."""
    passed, abstained = sites_taking_part(summaries)
    required = max(1, min_sites)
    if len(passed) < required:
        reasons = "; ".join(f"{site} ({why})" for site, why in abstained.items())
        raise RunQuorumError(
            f"quorum cannot hold: {len(passed)} site(s) can take part "
            f"[{', '.join(passed) or '-'}], every aggregate needs {required} (the strictest "
            f"aggregation.min_sites); abstaining: {reasons or '-'}. The run stops before anyone "
            "trains; no privacy budget was spent."
        )
    return passed
