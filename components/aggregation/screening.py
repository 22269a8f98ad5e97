"""The aggregate executor's anomaly step: score the verified updates, advance site health,
skip quarantined sites (pure; the executor passes the previous model's `health` in and
stores the new one in the next model's meta)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.aggregation.anomaly import DEFAULT_THRESHOLDS, Thresholds, score_round
from components.aggregation.collect import Collected
from components.aggregation.site_health import Health, advance, history, quarantined


@dataclass(frozen=True)
class Screening:
    """`report` goes into round.json under `anomaly`; `health` into the model meta."""

    report: dict[str, Any]
    health: Health


def screen(
    collected: Collected,
    health: Mapping[str, Mapping[str, Any]],
    round_index: int,
    quarantine_after: int | None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Screening:
    """Move quarantined sites from `collected.verified` to `collected.rejected` (with the
    reason), score the rest, and quarantine a site that reaches `quarantine_after`
    consecutive flagged rounds (its update is skipped this round already)."""
    skipped = {s: r for s, r in quarantined(health).items() if s in collected.verified}
    scores = score_round(
        {s: u.tensors for s, u in collected.verified.items() if s not in skipped},
        thresholds,
        history(health),
    )
    new_health, newly = advance(health, scores, round_index, quarantine_after)
    skipped.update(newly)
    for site, reason in skipped.items():
        del collected.verified[site]
        collected.rejected[site] = reason
    report = {
        "centre": "cosine-screened geometric median of the updates",
        "thresholds": vars(thresholds),
        "quarantine_after": quarantine_after,
        "scores": {s.site: s.as_json() for s in scores},
        "flagged": {s.site: s.explanation for s in scores if s.flagged},
        "quarantined": dict(sorted(skipped.items())),
    }
    return Screening(report, new_health)
