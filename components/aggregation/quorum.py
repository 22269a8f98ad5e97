"""Quorum of a round (pure): enough valid updates, or the round fails and nothing is published."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


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
